// Types of the lock simulation (lock_sim.ts): its events, options and results.

import type { Message } from "../../server/core/messages.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { Violation } from "./checkers.ts";
import type { LockBugName, LockSwarm } from "./swarm.ts";
import type { ClientReply, ClientRequest, ClientTimer } from "./sim_client.ts";
import type { GuardOutcome, GuardWrite } from "./sim_guard.ts";

export type LockEvent =
  | { readonly kind: "tick"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "peer"; readonly message: Message }
  | { readonly kind: "toNode"; readonly node: NodeId; readonly client: string; readonly request: ClientRequest }
  | { readonly kind: "toClient"; readonly client: string; readonly reply: ClientReply }
  | { readonly kind: "clientTimer"; readonly client: string; readonly timer: ClientTimer }
  | { readonly kind: "toGuard"; readonly write: GuardWrite }
  | { readonly kind: "guardCommit"; readonly write: GuardWrite; readonly checkedOnArrival: boolean }
  | { readonly kind: "fromGuard"; readonly client: string; readonly outcome: GuardOutcome }
  | { readonly kind: "nemesis" }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "heal" }
  | { readonly kind: "livenessDeadline" };

export interface LockRunOptions {
  readonly seed: number;
  readonly bug: LockBugName | null;
  /** Negative control: some client clocks run slower than 1 - rho, some pauses go unnoticed. */
  readonly breakDriftBound?: boolean;
  readonly swarm?: Partial<LockSwarm>;
  /** Compare replicas' stateHash (default true); off, the token checks must catch divergence alone. */
  readonly compareStateHashes?: boolean;
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
