// Plain data shared by the Raft core, storage and transport. PURE: no imports from node:* or npm.
//
// Numbers are safe integers; names carry their unit (Index, Term, Ticks). A NodeId is a short
// stable string chosen by the operator ("a", "b", "w"); a node whose disk was wiped must join
// under a new id (see server/storage's identity check).

export type NodeId = string;
export type Term = number;
export type Index = number;

export const NO_NODE: NodeId = "";

/** What a node must have on disk before it sends any message that depends on it. */
export interface HardState {
  readonly term: Term;
  /** Candidate voted for in `term`, or NO_NODE. */
  readonly vote: NodeId;
  /** Highest index known committed. Persisted so a restart does not re-apply from zero. */
  readonly commit: Index;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NO_NODE, commit: 0 };

export type EntryType = "normal" | "config";

/**
 * One log entry. `normal` entries carry application bytes (empty bytes = the leader's no-op);
 * `config` entries carry an encoded ConfChange (see conf_change.ts).
 */
export interface Entry {
  readonly term: Term;
  readonly index: Index;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/**
 * The membership. `voters` is the incoming majority; `votersOutgoing` is non-empty only while in
 * a joint configuration (both majorities are then needed). `learnersNext` are outgoing voters that
 * become learners when the joint configuration is left. `witnesses` flags members (voters or
 * learners) that keep the log but never apply it (issue: witness).
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly learnersNext: readonly NodeId[];
  readonly witnesses: readonly NodeId[];
  /** Leave the joint configuration automatically once it is applied. */
  readonly autoLeave: boolean;
}

export const EMPTY_CONF_STATE: ConfState = {
  voters: [],
  votersOutgoing: [],
  learners: [],
  learnersNext: [],
  witnesses: [],
  autoLeave: false,
};

export interface SnapshotMetadata {
  /** Last index the snapshot covers. */
  readonly index: Index;
  readonly term: Term;
  /** Membership as of `index`. */
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** State machine image; empty for a witness's metadata-only marker. */
  readonly data: Uint8Array;
}

/** Everything a node reads back from disk when it starts. */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /**
   * Entries, contiguous, in index order: after the snapshot, or after `logStart` when the member
   * keeps its log below its snapshot from the W3 floor for a witness (churn issue 4).
   */
  readonly entries: readonly Entry[];
  /**
   * Only while the log is kept below the snapshot: the index just before the first entry, its
   * term and the membership there (which the snapshot, taken later, cannot give).
   */
  readonly logStart?: SnapshotMetadata;
}

export const EMPTY_PERSISTED_STATE: PersistedState = {
  hardState: EMPTY_HARD_STATE,
  snapshot: null,
  entries: [],
};
