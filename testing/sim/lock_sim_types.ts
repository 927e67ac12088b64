// Types of the lock simulation (lock_sim.ts): its events, options and results.

import type { Message } from "../../server/core/messages.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { Violation } from "./checkers.ts";
import { LOCK_BUG_NAMES, type LockBugName, type LockSwarm } from "./swarm.ts";
import type { GuardOutcome, GuardWrite } from "./sim_guard.ts";

/** The lock simulation's bug switches: swarm.ts' LockBugName, plus the SDK's (SdkBugName). */
export type LockSimBugName = LockBugName | SdkBugName;
export const LOCK_SIM_BUG_NAMES: readonly LockSimBugName[] = [...LOCK_BUG_NAMES, "leaseStartAfterReply"];

/**
 * The SDK's test-only switches (client-sdk/client.ts ClientRuntime), set on every simulated
 * client: `leaseStartAfterReply` takes a lease's t0 when the grant's or renewal's answer arrives,
 * not before its first attempt is sent.
 */
export type SdkBugName = "leaseStartAfterReply";

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
  | { readonly kind: "livenessDeadline" };

export interface LockRunOptions {
  readonly seed: number;
  readonly bug: LockSimBugName | null;
  /** Negative control: some client clocks run slower than 1 - rho, some pauses go unnoticed. */
  readonly breakDriftBound?: boolean;
  readonly swarm?: Partial<LockSwarm>;
  /** Compare replicas' stateHash (default true); off, the token checks must catch divergence alone. */
  readonly compareStateHashes?: boolean;
  /**
   * The SDK clients' deadline on a blocking acquire, 4 TTLs (default true). Off, a waiter queued
   * on a member that catches up by snapshot is never answered (sdk_client.ts acquireTimeoutMs).
   */
  readonly acquireDeadline?: boolean;
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
}

export interface LockRunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  /** Expected observations of the negative control (overlapping beliefs), never failures. */
  readonly observations: { readonly overlaps: number; readonly details: readonly string[] };
  readonly traceHash: string;
  readonly stats: LockRunStats;
  readonly swarm: string;
}
