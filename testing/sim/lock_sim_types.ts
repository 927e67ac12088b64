// Types of the lock simulation (lock_sim.ts): its events, options and results.

import type { Message } from "../../server/core/messages.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { CheckName, Violation } from "./checkers.ts";
import { LOCK_BUG_NAMES, type LockBugName, type LockSwarm } from "./swarm.ts";
import type { CrashPointOp } from "./sim_disk.ts";
import type { GuardOutcome, GuardWrite } from "./sim_guard.ts";
import type { ReaderReply, ReaderRequest, ReaderTimer } from "./sim_reader.ts";

/**
 * The lock simulation's bug switches: swarm.ts' LockBugName, plus the production RaftNode's
 * (NodeBugName), plus the SDK's (SdkBugName).
 */
export type LockSimBugName = LockBugName | NodeBugName | SdkBugName;
export const LOCK_SIM_BUG_NAMES: readonly LockSimBugName[] = [
  ...LOCK_BUG_NAMES,
  "readBeforeApplied",
  "sendBeforePersist",
  "leaseStartAfterReply",
];

/**
 * The production RaftNode's test-only switches (server/node/raft_node.ts RaftNodeOptions):
 * `readBeforeApplied` serves a confirmed read before the state machine applied up to its read
 * index; `sendBeforePersist` (the Ready loop's, as in the Raft simulator) sends a Ready's
 * messages, append acknowledgements included, before its write is synced.
 */
export type NodeBugName = "readBeforeApplied" | "sendBeforePersist";

/**
 * The SDK's test-only switches (client-sdk/client.ts ClientRuntime), set on every simulated
 * client: `leaseStartAfterReply` takes a lease's t0 when the grant's or renewal's answer arrives,
 * not before its first attempt is sent.
 */
export type SdkBugName = "leaseStartAfterReply";

/**
 * The checks of checkers.ts, plus the read check run once at the end of a run (lock_checkers.ts
 * ReadHistory): every answered Status / ValidateToken read, with the log's grants and releases,
 * is linearizable against the token-register model of testing/chaos/checker.
 */
export type LockCheckName = CheckName | "read-linearizable";

export interface LockViolation extends Omit<Violation, "check"> {
  readonly check: LockCheckName;
}

/**
 * The apply-lag fault of one node (drawn per seed, lock_sim.ts): the core hands out at most
 * `committedEntriesPerReadyMax` committed entries per Ready (etcd's MaxCommittedSizePerReady), the
 * node handles at most `readiesPerPassMax` Readies per pass, and a pass runs at most every
 * `passEveryMs` (a slow state machine or disk: input reaches the core at once, the Ready loop
 * runs at its own pace). Applied then lags commit across passes.
 */
export interface ApplyLag {
  readonly committedEntriesPerReadyMax: number;
  readonly readiesPerPassMax: number;
  readonly passEveryMs: number;
}

export type LockEvent =
  | { readonly kind: "tick"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "peer"; readonly message: Message }
  /** A message of the simulated gRPC (sim_client.ts) arriving at `to`, a node or a client. */
  | { readonly kind: "wire"; readonly to: string; readonly deliver: () => void }
  /** A timer of an SDK client (sdk_client.ts); fire() is false if it was cleared meanwhile. */
  | { readonly kind: "sdkTimer"; readonly client: string; readonly fire: () => boolean }
  | { readonly kind: "toGuard"; readonly write: GuardWrite }
  | { readonly kind: "guardCommit"; readonly write: GuardWrite; readonly checkedOnArrival: boolean }
  | { readonly kind: "fromGuard"; readonly client: string; readonly outcome: GuardOutcome }
  | { readonly kind: "nemesis" }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "heal" }
  | { readonly kind: "livenessDeadline" }
  /** A node's next Ready-loop pass (work left by the last one, or a slow node's own pace). */
  | { readonly kind: "pass"; readonly node: NodeId; readonly incarnation: number }
  /** The fsync of a background write (backgroundWrites) returning, in the process that started it. */
  | { readonly kind: "backgroundSync"; readonly node: NodeId; readonly incarnation: number; readonly sync: () => void }
  | { readonly kind: "toReaderNode"; readonly node: NodeId; readonly reader: string; readonly request: ReaderRequest }
  | { readonly kind: "toReader"; readonly reader: string; readonly reply: ReaderReply }
  | { readonly kind: "readerTimer"; readonly reader: string; readonly timer: ReaderTimer };

export interface LockRunOptions {
  readonly seed: number;
  readonly bug: LockSimBugName | null;
  /** Negative control: some client clocks run slower than 1 - rho, some pauses go unnoticed. */
  readonly breakDriftBound?: boolean;
  readonly swarm?: Partial<LockSwarm>;
  /** Checks whose violations are not recorded (a run that shows what else a bug breaks). */
  readonly disabledChecks?: readonly CheckName[];
  /** Compare replicas' stateHash (default true); off, the token checks must catch divergence alone. */
  readonly compareStateHashes?: boolean;
  /**
   * The SDK clients' deadline on a blocking acquire, 4 TTLs (default false: none). It was the
   * workaround for waiters queued on a member that catches up by snapshot, never answered before
   * the node told its waiters of a restore (sdk_client.ts acquireTimeoutMs).
   */
  readonly acquireDeadline?: boolean;
  /**
   * The leader's write in the background (RaftNodeOptions.backgroundWrites, as tenured runs): its
   * sync is an event of its own, 0-4 ms later (default false, so the seeds' traces stay).
   */
  readonly backgroundWrites?: boolean;
  /** Apply lag: "drawn" (default: from the seed, on about half of the seeds), "off", or fixed for every node. */
  readonly applyLag?: "drawn" | "off" | ApplyLag;
  readonly debug?: boolean;
}

export interface LockRunStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  crashes: number;
  partitions: number;
  pauses: number;
  clientPauses: number;
  unawarePauses: number;
  /** SDK clients paused as a Lease answer arrived (lock_sim.ts replyPauses). */
  replyPauses: number;
  leaderElections: number;
  grants: number;
  beliefs: number;
  guardAccepted: number;
  guardRejected: number;
  leasesLost: number;
  simulatedMs: number;
  /** Simulated time from healing until the liveness goal was met (-1: never). */
  recoveryMs: number;
  /** Nodes with the apply-lag fault, and the largest commit - applied seen on any node. */
  slowNodes: number;
  applyLagMax: number;
  /** Reads issued by the readers, answered (recorded), refused (notLeader, unavailable). */
  reads: number;
  readsAnswered: number;
  readsRefused: number;
  /** Operations (reads plus the log's grants and releases) and search steps of the read check. */
  readCheckOps: number;
  readCheckSteps: number;
  /** 1 if the read check's search budget ran out (no verdict). */
  readCheckUnknown: number;
  /** Readers of members the churn added (READERS_PER_MEMBER each), and the reads they got answered. */
  churnReaders: number;
  churnReadsAnswered: number;
  /** Leader commit advances checked by commit-not-durable (checkers.ts). */
  durableCommitChecks: number;
  /**
   * Snapshot restores told to a blocking wait (wait_grant.ts) queued on the restoring member: the
   * waits that, before the node told them, were never answered.
   */
  restoresToWaiters: number;
  /** Crashes armed as crash points inside a Ready (sim_disk.ts), those that fired, and before which operation. */
  crashPointsArmed: number;
  crashesInReady: number;
  /** Background writes started (backgroundWrites): each sync a later event of its own. */
  backgroundWrites: number;
  /** Of those, the ones whose process crashed before the sync returned (their writes lost). */
  backgroundWritesLost: number;
  crashesInReadyBefore: Record<CrashPointOp, number>;
}

export interface LockRunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly LockViolation[];
  /** Expected observations of the negative control (overlapping beliefs), never failures. */
  readonly observations: { readonly overlaps: number; readonly details: readonly string[] };
  readonly traceHash: string;
  readonly stats: LockRunStats;
  readonly swarm: string;
}
