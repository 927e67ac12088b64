// The log as the core sees it: an in-memory copy of the entries after the latest snapshot, with
// marks for what is durable (stableIndex), committed and applied. Lock-service entries are tiny
// and the log is compacted by snapshots, so holding it in memory keeps the core free of I/O
// (the node loop persists what a Ready hands it). PURE.
//
//   start <= snapshot.index < ... stableIndex ... lastIndex()      (entries: start+1 .. lastIndex)
//   applied <= applying <= committed <= lastIndex()
//
// `start` is the index just before the first entry held. It is the snapshot's index except on a
// leader that RETAINS entries below its latest snapshot (compact's retainFrom) because a witness
// may still need them (witness_rules.retainedLogStart, churn issue 4). Storage keeps them too
// (RaftStorage.saveSnapshotAndCompact's logStart), so a log loaded from disk may start below its
// snapshot, at the persisted log start (PersistedState.logStart).

import { assert } from "./assert.ts";
import type { Entry, Index, PersistedState, Snapshot, Term } from "./types.ts";

export interface RaftLogBugs {
  /** Test-only: truncate after prevIndex unconditionally, even committed entries. */
  readonly truncateBelowCommit: boolean;
}

export class RaftLog {
  /** The latest snapshot (index 0 / term 0 when none). */
  snapshot: Snapshot | null;
  private entries: Entry[];
  /** The index just before the first entry held, and its term (the snapshot's, unless retaining). */
  private start: Index;
  private startTerm: Term;
  /** Highest index durable on this node's disk. */
  stableIndex: Index;
  /** A snapshot received from the leader that is not yet durable. */
  pendingSnapshot: Snapshot | null = null;
  committed: Index;
  /** Highest index handed to the application in a Ready (not yet acknowledged). */
  applying: Index;
  /** Highest index the application has applied (acknowledged by advance()). */
  applied: Index;

  constructor(
    state: PersistedState,
    appliedIndex: Index,
    private readonly bugs: RaftLogBugs,
  ) {
    this.snapshot = state.snapshot;
    this.entries = [...state.entries];
    const snapIndex = state.snapshot?.metadata.index ?? 0;
    this.start = snapIndex;
    this.startTerm = state.snapshot?.metadata.term ?? 0;
    if (state.logStart !== undefined) {
      // Kept below the snapshot (storage kept it for a witness, churn issue 4).
      assert(state.logStart.index < snapIndex, "log start not below the snapshot");
      this.start = state.logStart.index;
      this.startTerm = state.logStart.term;
      assert(this.term(snapIndex) === state.snapshot?.metadata.term, "log kept below the snapshot disagrees with its term");
    }
    const first = this.entries[0];
    assert(first === undefined || first.index === this.start + 1, "log does not start after its start");
    this.stableIndex = this.lastIndex();
    this.committed = Math.max(state.hardState.commit, snapIndex);
    assert(this.committed <= this.lastIndex(), "hard state commit is beyond the log");
    this.applied = Math.max(appliedIndex, snapIndex);
    assert(this.applied <= this.committed, "applied index is beyond commit");
    this.applying = this.applied;
  }

  snapshotIndex(): Index {
    return this.snapshot?.metadata.index ?? 0;
  }

  firstIndex(): Index {
    return this.start + 1;
  }

  /** The index just before the first entry held (below snapshotIndex() while retaining). */
  startIndex(): Index {
    return this.start;
  }

  /** The start's term (the snapshot's unless retaining below it). */
  startTermOf(): Term {
    return this.startTerm;
  }

  lastIndex(): Index {
    const last = this.entries[this.entries.length - 1];
    return last ? last.index : this.start;
  }

  lastTerm(): Term {
    return this.term(this.lastIndex()) ?? 0;
  }

  /**
   * An empty disk: no snapshot, not even the bootstrap one, and no entries. Such a log holds
   * nothing, not even index 0: every cluster starts from a snapshot at index 0 that carries its
   * bootstrap configuration (bootstrap.ts), so an empty node must match no append, not even one at
   * prevIndex 0, and the leader sends it a snapshot instead (raft.ts onAppendResponse), the
   * index-0 one included (churn issue 1).
   */
  isEmpty(): boolean {
    return this.snapshot === null && this.entries.length === 0;
  }

  /** Term of `index`, or undefined when compacted away, beyond the end, or the log is empty. */
  term(index: Index): Term | undefined {
    if (index === this.start) return this.isEmpty() ? undefined : this.startTerm;
    if (index < this.start || index > this.lastIndex()) return undefined;
    return this.entries[index - this.start - 1]?.term;
  }

  entry(index: Index): Entry | undefined {
    const offset = index - this.start - 1;
    return offset >= 0 ? this.entries[offset] : undefined;
  }

  matchTerm(index: Index, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft's election restriction: is (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi] limited by count and bytes (at least one entry when any is in range).
   * Undefined when lo was compacted: the caller must send a snapshot instead.
   */
  slice(lo: Index, hi: Index, countMax: number, bytesMax: number): Entry[] | undefined {
    if (lo < this.firstIndex()) return undefined;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= hi && out.length < countMax; i++) {
      const e = this.entry(i);
      assert(e !== undefined, `entry ${i} missing inside the log`);
      bytes += e.data.length + 24;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /** Entries not yet durable, to be persisted by the next Ready. */
  unstableEntries(): Entry[] {
    const from = Math.max(this.stableIndex + 1, this.firstIndex());
    const to = this.lastIndex();
    return from > to ? [] : (this.slice(from, to, Infinity, Infinity) ?? []);
  }

  /** Leader append of new entries at the end. */
  appendNew(entries: readonly Entry[]): void {
    for (const e of entries) {
      assert(e.index === this.lastIndex() + 1, "leader append must extend the log by one");
      this.entries.push(e);
    }
  }

  /** The index of the first entry that conflicts with (or extends) our log; 0 if all match. */
  findConflict(entries: readonly Entry[]): Index {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Follower append (AppendEntries). Returns the last index now known to match the leader, or
   * undefined when (prevIndex, prevTerm) does not match our log.
   */
  maybeAppend(prevIndex: Index, prevTerm: Term, leaderCommit: Index, entries: readonly Entry[]): Index | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    if (this.bugs.truncateBelowCommit) {
      // Deliberately wrong (hashicorp/raft#113 shape): a stale, shorter append cuts acked entries.
      this.truncateAfter(prevIndex);
      for (const e of entries) this.entries.push(e);
    } else {
      const conflict = this.findConflict(entries);
      if (conflict !== 0) {
        assert(conflict > this.committed, `conflict at ${conflict} is at or below commit ${this.committed}`);
        const first = entries[0];
        assert(first !== undefined, "conflict without entries");
        this.truncateAfter(conflict - 1);
        for (const e of entries.slice(conflict - first.index)) this.entries.push(e);
      }
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  private truncateAfter(index: Index): void {
    const keep = Math.max(0, index - this.start);
    this.entries.length = Math.min(this.entries.length, keep);
    this.stableIndex = Math.min(this.stableIndex, index);
  }

  commitTo(index: Index): void {
    if (index <= this.committed) return;
    if (!this.bugs.truncateBelowCommit) {
      assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  /**
   * Finds the largest index <= `index` whose term is <= `term` (fast backtracking: the leader
   * skips a whole conflicting term per round trip instead of one entry).
   */
  findConflictByTerm(index: Index, term: Term): Index {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.start; i--) {
      const t = this.term(i);
      if (t !== undefined && t <= term) return i;
    }
    return i;
  }

  /** Committed entries that are durable here and not yet handed out, up to `countMax`. */
  nextCommittedEntries(countMax: number): Entry[] {
    const hi = Math.min(this.committed, this.stableIndex);
    const lo = Math.max(this.applying + 1, this.firstIndex());
    if (lo > hi || this.pendingSnapshot !== null) return [];
    return this.slice(lo, hi, countMax, Infinity) ?? [];
  }

  /** A snapshot from the leader replaces the whole log (an empty log takes even the index-0 one). */
  restore(snapshot: Snapshot): void {
    const idx = snapshot.metadata.index;
    assert(idx > this.committed || this.isEmpty(), "restore of a snapshot at or below commit");
    this.snapshot = snapshot;
    this.entries = [];
    this.start = idx;
    this.startTerm = snapshot.metadata.term;
    this.stableIndex = Math.min(this.stableIndex, idx);
    this.pendingSnapshot = snapshot;
    this.committed = idx;
  }

  /**
   * A snapshot made locally by the application at an applied index: drop the covered prefix, but
   * keep the entries after `retainFrom` (a leader retaining for a witness; default: none kept).
   */
  compact(snapshot: Snapshot, retainFrom: Index = snapshot.metadata.index): void {
    const idx = snapshot.metadata.index;
    assert(idx <= this.applied, `compact at ${idx} beyond applied ${this.applied}`);
    if (idx > this.snapshotIndex()) {
      assert(this.term(idx) === snapshot.metadata.term, "compact snapshot term does not match the log");
      this.snapshot = snapshot;
    }
    this.dropTo(Math.min(idx, retainFrom));
  }

  /** Drops retained entries up to `index` (at most the snapshot's index; never un-drops). */
  releaseTo(index: Index): void {
    this.dropTo(Math.min(index, this.snapshotIndex()));
  }

  private dropTo(index: Index): void {
    if (index <= this.start) return;
    const term = this.term(index);
    assert(term !== undefined, `no term for the new log start ${index}`);
    this.entries = this.entries.slice(index - this.start);
    this.start = index;
    this.startTerm = term;
  }

  /** Acknowledges persistence of everything handed out up to `index` in `term`. */
  stableTo(index: Index, term: Term): void {
    if (this.term(index) === term && index > this.stableIndex) this.stableIndex = index;
  }

  stableSnapshotTo(snapshot: Snapshot): void {
    if (this.pendingSnapshot === snapshot) {
      this.pendingSnapshot = null;
      this.stableIndex = Math.max(this.stableIndex, snapshot.metadata.index);
      this.applying = Math.max(this.applying, snapshot.metadata.index);
      this.applied = Math.max(this.applied, snapshot.metadata.index);
    }
  }

  acceptApplying(index: Index): void {
    assert(index <= this.committed, "handing out an uncommitted entry");
    this.applying = Math.max(this.applying, index);
  }

  appliedTo(index: Index): void {
    assert(index <= this.applying, `applied ${index} beyond handed-out ${this.applying}`);
    this.applied = Math.max(this.applied, index);
  }
}
