// Core configuration, its limits and the test-only bug switches. PURE.
//
// The batch limits here are one side of relations asserted at startup by server/limits.ts
// (assertLimits): a full-size entry fits an append batch, and the largest batch fits a peer frame.

import { assert } from "./assert.ts";
import type { Random } from "./random.ts";
import type { Index, NodeId } from "./types.ts";

/**
 * Deliberate bugs for proving that the simulator's checkers have teeth. All off in production;
 * the server's config loader never sets them.
 */
export interface BugSwitches {
  /** Commit an entry of an older term by counting replicas (Raft paper, Figure 8). */
  readonly commitOldTermByCounting: boolean;
  /** Leave the vote out of the persisted hard state (a restart forgets whom it voted for). */
  readonly skipPersistVote: boolean;
  /** Truncate the log after prevIndex unconditionally, even below the commit index. */
  readonly truncateBelowCommit: boolean;
  /** Grant votes without Raft's log up-to-date check. */
  readonly voteWithoutLogCheck: boolean;
  /** A witness truncates at its commit index instead of the floor the leader sends (W3). */
  readonly truncateWitnessAtCommit: boolean;
  /** A witness keeps only entry metadata (term, index), not the data (dragonboat-style). */
  readonly witnessMetadataOnlyLog: boolean;
  /**
   * The leader counts its own new entry towards the commit when it appends it, before the Ready
   * that carries it is durable (etcd-io/raft's appendEntry shape; ready.ts "Self-durability").
   */
  readonly commitBeforeSelfDurable: boolean;
  /**
   * A member started in recovery (RaftConfig.recovery: storage found it lost log data it may have
   * acknowledged) ignores that and votes, campaigns and counts towards commits at once, as if its
   * shortened log were all it ever acknowledged (issue 13: the vote that loses a commit).
   */
  readonly trustCorruptLog: boolean;
  /**
   * A candidate takes a vote response's commit hint (messages.ts committedIndex) without checking
   * that its own entry there has the hinted term: it commits whatever it holds at that index.
   */
  readonly commitHintWithoutTermCheck: boolean;
}

export const NO_BUGS: BugSwitches = {
  commitOldTermByCounting: false,
  skipPersistVote: false,
  truncateBelowCommit: false,
  voteWithoutLogCheck: false,
  truncateWitnessAtCommit: false,
  witnessMetadataOnlyLog: false,
  commitBeforeSelfDurable: false,
  trustCorruptLog: false,
  commitHintWithoutTermCheck: false,
};

/**
 * The largest data of one log entry (an encoded state-machine command or conf change) the
 * cluster is sized for. The state machine refuses a larger command (COMMAND_BYTES_MAX is this
 * value), and server/limits.ts asserts that an entry this large fits an append batch and a frame.
 */
export const ENTRY_DATA_BYTES_MAX = 64 * 1024;

/** Defaults of the RaftConfig limits (makeRaftConfig); server/limits.ts relates them to frames. */
export const RAFT_LIMITS_DEFAULT = {
  entriesPerMessageMax: 512,
  bytesPerMessageMax: 1 << 20,
  inflightMessagesMax: 64,
  uncommittedEntriesMax: 10_000,
  pendingReadsMax: 4096,
  committedEntriesPerReadyMax: 4096,
} as const;

export interface RaftConfig {
  readonly id: NodeId;
  /** Followers campaign after a random timeout in [electionTimeoutTicks, 2*electionTimeoutTicks). */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down. */
  readonly checkQuorum: boolean;
  /** AppendEntries batching: at most this many entries and (about) this many bytes per message. */
  readonly entriesPerMessageMax: number;
  readonly bytesPerMessageMax: number;
  /** Pipelining: AppendEntries outstanding per follower in replicate state. */
  readonly inflightMessagesMax: number;
  /** Proposals refused while this many entries are appended but not committed. */
  readonly uncommittedEntriesMax: number;
  /** ReadIndex requests waiting for confirmation. */
  readonly pendingReadsMax: number;
  /** Committed entries handed out per Ready. */
  readonly committedEntriesPerReadyMax: number;
  /** Index the application's state machine already holds (0 if it rebuilds from the snapshot). */
  readonly appliedIndex: Index;
  readonly random: Random;
  readonly bugs: BugSwitches;
  /**
   * Set at start when storage found that this member lost log data it may have acknowledged: its
   * durable log ends below `untilIndex`, the last index its ack record says was durable (a cut or
   * deleted WAL, a store rebuilt after main-file corruption). Until it has caught up from a leader
   * to there, the member does not vote, does not campaign and is not counted towards a commit
   * (raft.ts "Recovery"; Protocol-Aware Recovery, FAST 2018). null: a normal start.
   */
  readonly recovery: { readonly untilIndex: Index } | null;
  /**
   * true: when acks advance the commit index, the leader sends every follower an (empty) append
   * with it at once (etcd-io/raft's bcastAppend). false: the new commit index reaches followers
   * with the next append or heartbeat (at most heartbeatIntervalTicks later), which saves each
   * follower a pass, a write and a response per commit, and the leader two responses: on a
   * loaded 2-core machine that round was the largest cost beside the fsyncs (issue 14). Safety
   * is the same (a follower's commit index may lag; nothing is committed or acked earlier).
   * Sent at once all the same: a membership change's commit, and every commit while a follower
   * recovers or the configuration has a witness (raft.ts commitByAcks). tenured runs with false
   * (lock1 about 1.5x the cycles/s, session 30); the core's default stays true (the scenario
   * scripts and the simulator's default). false lost liveness at 10,000 seeds until vote
   * responses carried the commit index (random seeds 4521, 9849, 8351, 9906: members that never
   * learned a membership change committed); clean at 10,000 since.
   */
  readonly sendCommitAtOnce: boolean;
  /** Deterministic log lines (no timestamps); scenario scripts print them. */
  readonly logger: ((line: string) => void) | null;
}

export type RaftConfigInput = Pick<RaftConfig, "id" | "random"> & Partial<Omit<RaftConfig, "id" | "random">>;

export function makeRaftConfig(input: RaftConfigInput): RaftConfig {
  const config: RaftConfig = {
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1,
    preVote: true,
    checkQuorum: true,
    ...RAFT_LIMITS_DEFAULT,
    appliedIndex: 0,
    bugs: NO_BUGS,
    recovery: null,
    sendCommitAtOnce: true,
    logger: null,
    ...input,
  };
  validateRaftConfig(config);
  return config;
}

export function validateRaftConfig(c: RaftConfig): void {
  assert(c.id.length > 0, "raft config: id must be non-empty");
  assert(c.heartbeatIntervalTicks >= 1, "raft config: heartbeatIntervalTicks must be >= 1");
  assert(c.electionTimeoutTicks > c.heartbeatIntervalTicks, "raft config: electionTimeoutTicks must exceed heartbeatIntervalTicks");
  assert(c.entriesPerMessageMax >= 1, "raft config: entriesPerMessageMax must be >= 1");
  assert(c.bytesPerMessageMax >= 1, "raft config: bytesPerMessageMax must be >= 1");
  assert(c.inflightMessagesMax >= 1, "raft config: inflightMessagesMax must be >= 1");
  assert(c.uncommittedEntriesMax >= 1, "raft config: uncommittedEntriesMax must be >= 1");
  assert(c.pendingReadsMax >= 1, "raft config: pendingReadsMax must be >= 1");
  assert(c.committedEntriesPerReadyMax >= 1, "raft config: committedEntriesPerReadyMax must be >= 1");
  assert(
    c.recovery === null || (Number.isSafeInteger(c.recovery.untilIndex) && c.recovery.untilIndex >= 0),
    "raft config: recovery.untilIndex must be a non-negative integer",
  );
}
