// What the gRPC api layer (server/api) needs from the node: submit a command and learn its
// outcome, run a linearizable read, and follow state-machine events. Implemented by
// server/node/raft_node.ts; a fake implements it in the api layer's unit tests.

import type { ConfChange } from "../core/conf_change.ts";
import type { Role } from "../core/ready.ts";
import type { ConfState, Index, NodeId, Term } from "../core/types.ts";
import type { ClientCommand } from "../state/commands.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { ApplyResult, StateEvent } from "../state/results.ts";

export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** Where to send a client that reached a follower. */
export interface LeaderHint {
  readonly leaderId: NodeId;
  /** The leader's client-API address, when known. */
  readonly leaderAddress: string | null;
}

export type SubmitOutcome =
  /** Committed and applied; `result` is the state machine's answer (ok or an error code). */
  | { readonly kind: "applied"; readonly result: ApplyResult }
  /** Never proposed: this node is not the leader. Safe to retry elsewhere. */
  | { readonly kind: "notLeader"; readonly hint: LeaderHint | null }
  /** Never proposed: no leader, leadership moving, shutting down. */
  | { readonly kind: "unavailable"; readonly reason: string }
  /** Never proposed: this node's queue of pending requests is full. Retry HERE after retryAfterMs. */
  | Overloaded
  /**
   * Proposed, then leadership was lost (or the call was cancelled) before its fate was known.
   * It may or may not commit: retry with the SAME (clientId, seq) and the session table answers.
   */
  | { readonly kind: "outcomeUnknown"; readonly reason: string };

export type ReadOutcome<T> =
  | { readonly kind: "read"; readonly value: T; readonly index: Index }
  | { readonly kind: "notLeader"; readonly hint: LeaderHint | null }
  | { readonly kind: "unavailable"; readonly reason: string }
  | Overloaded;

/** The leader is busy, not gone: its queue of requests awaiting commit or a read is full. */
export interface Overloaded {
  readonly kind: "overloaded";
  readonly reason: string;
  /** A hint for the client: about one heartbeat interval, when the next commit round drains the queue. */
  readonly retryAfterMs: number;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly leader: NodeId;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  readonly confState: ConfState;
  /** Recovering lost log data (server/core/raft.ts "Recovery"): no vote, not counted in commits. */
  readonly recovering?: boolean;
}

/** Events of one applied entry, delivered synchronously in log order. */
export type EventListener = (events: readonly StateEvent[], index: Index) => void;

/**
 * The member's state machine was replaced by a snapshot's image up to `index` (a lagging member
 * caught up by InstallSnapshot): the entries the snapshot covers were never applied here, so they
 * emitted no events. A listener waiting for one (a blocking Acquire's grant, an Observe stream's
 * next leader) re-checks what it waits for in `machine`: this member's state at `index`, local
 * and read-only (not a linearizable read). Delivered synchronously, in log order with the events.
 */
export type RestoreListener = (machine: LockStateMachine, index: Index) => void;

export type AdminOutcome =
  | { readonly kind: "ok" }
  | { readonly kind: "notLeader"; readonly hint: LeaderHint | null }
  | { readonly kind: "refused"; readonly reason: string };

/**
 * Why a membership change must not be proposed on top of configuration `cs` (null: it may). The
 * node evaluates it when it proposes, against the configuration the change will apply to: no
 * change is pending then (the core refuses a second one), so nothing can overtake the check.
 */
export type MembershipPrecondition = (cs: ConfState) => string | null;

export interface NodeApi {
  submit(command: ClientCommand, options?: CallOptions): Promise<SubmitOutcome>;
  /** ReadIndex: the query runs on the leader's state machine once it is linearizable. */
  read<T>(query: (machine: LockStateMachine) => T, options?: CallOptions): Promise<ReadOutcome<T>>;
  /**
   * Subscribe BEFORE submitting a blocking acquire so no grant event can be missed. `onRestored`
   * is told when a snapshot replaces the state (the entries it covers emit no events).
   */
  subscribe(listener: EventListener, onRestored?: RestoreListener): () => void;
  status(): NodeStatus;
  /** Asynchronous because a parked Ready's background write may hold inputs back (raft_node.ts). */
  transferLeader(to: NodeId): Promise<AdminOutcome>;
  /** `precondition` refusing: "refused" with its reason, nothing proposed (server/api/membership_rules.ts). */
  changeMembership(change: ConfChange, precondition?: MembershipPrecondition): Promise<AdminOutcome>;
  /** Client-API address of every member (for leader hints and the Members call). */
  memberAddresses(): ReadonlyMap<NodeId, string>;
  /** This member's state machine now: local, not linearizable (Cluster.Status shows its freeze). */
  stateMachine?(): LockStateMachine | undefined;
}
