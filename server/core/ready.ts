// The Ready/Advance contract between the pure core and the node loop (etcd-io/raft's Ready).
// PURE.
//
// The node loop, for every Ready, in this order:
//   1. PERSIST in one durable transaction: `snapshot` (if any; it replaces the whole log), then
//      `entries` (truncating any stored suffix from the first entry's index), then `hardState`.
//      Nothing of step 2 may happen before this transaction is durable (fsync returned): a vote
//      granted, an entry acknowledged or a term adopted must survive a crash before anyone hears
//      of it.
//   2. SEND `messages`. They may be lost, duplicated or reordered; the core copes.
//   3. APPLY: restore the state machine from `snapshot` (if any), then apply `committedEntries`
//      in order. Config entries are applied by the core itself in advance().
//   4. Serve `readStates`: a read registered with context c may answer once the state machine
//      has applied index >= readState.index.
//   5. ADVANCE: core.advance(ready). Only then may the next Ready be taken.
//
// Durable means durable at every point in between: a crash may stop the process between ANY two
// storage operations of one Ready (the simulator, testing/sim, crashes there: before a write,
// between the entries and the hard state, before the fsync, between the fsync and the send), and
// whatever a message of this Ready promises must already be on disk when it leaves. So the hard
// state is never written after the send (a vote that leaves before it is durable is a double
// vote after a crash), and the Ready is persisted in one transaction, not one per part.
//
// Self-durability (the leader's own acknowledgement). A leader counts itself towards the commit
// of an entry only once that entry is durable on its own disk, as a follower counts only once its
// appendResponse leaves after its write. The core raises the leader's own progress (match) in
// advance(rd), to the end of the durable log that rd made so, never when it appends the entry;
// `rd.entries` are not yet counted while the Ready is outstanding. Enforced by an assertion in
// the core's commit rule (the leader's self-count never exceeds its durable log, so a commit is
// always held by a quorum whose leader vote is durable). Because the self-ack is this separate
// event, a loop may one day send `messages` IN PARALLEL with its own fsync (followers may then
// acknowledge entries before the leader's write completes; the commit still waits for a quorum
// of durable copies, counting the leader's only when its write returns, as etcd-io/raft does with
// MsgStorageAppendResp to self). The node loop can do so for a leader (server/node/ready_loop.ts,
// leaderSendsBeforePersist, off by default): a Ready with entries, term and vote unchanged and no snapshot sends
// its appends and heartbeats, is persisted in the next turn, and only then advanced; every other
// message (acknowledgements, votes, responses) still waits for the write.

import type { Message } from "./messages.ts";
import type { Entry, HardState, Index, NodeId, Snapshot, Term } from "./types.ts";

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Volatile state, reported when it changes (not persisted). */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
  readonly term: Term;
}

/** A ReadIndex answer: the read with `context` is linearizable once `index` is applied. */
export interface ReadState {
  readonly index: Index;
  readonly context: number;
}

export interface Ready {
  /** Changed soft state or null. Informational; nothing to persist. */
  readonly softState: SoftState | null;
  /** Hard state to persist before sending, or null when unchanged. */
  readonly hardState: HardState | null;
  /** A snapshot from the leader to persist (before entries) and restore, or null. */
  readonly snapshot: Snapshot | null;
  /**
   * Entries to persist before sending; may overwrite a stored suffix. A leader's own entries here
   * count towards the commit only after advance() acknowledges them (self-durability, above).
   */
  readonly entries: readonly Entry[];
  /** Entries to apply, all committed and already durable here. */
  readonly committedEntries: readonly Entry[];
  /**
   * Messages to send AFTER the persist step is durable; a leader's appends and heartbeats may
   * leave before it when term and vote are unchanged (Self-durability, above).
   */
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /** True when hardState (term/vote) or entries changed: the write must be fsynced. */
  readonly mustSync: boolean;
}
