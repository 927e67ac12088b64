// The leader's view of one follower: every transition lives here as a method (etcd-io/raft's
// tracker/progress.go notes its transitions are "strewn around"; ours are not). PURE.
//
//   probe:     one AppendEntries at a time until the follower's match point is found.
//   replicate: pipelined; up to `inflightMax` AppendEntries outstanding.
// A snapshot send parks the follower in probe with the probe sent, so a lost snapshot is
// retried after the next heartbeat response rather than waiting for a status report.

import { assert } from "./assert.ts";
import type { Index } from "./types.ts";

export type ProgressState = "probe" | "replicate";

/** Bounded window of in-flight AppendEntries, identified by their last index. */
export class Inflights {
  private readonly lastIndexes: Index[] = [];
  constructor(readonly inflightMax: number) {
    assert(inflightMax >= 1, "inflightMax must be at least 1");
  }
  add(lastIndex: Index): void {
    assert(!this.full(), "inflights overflow");
    const prev = this.lastIndexes[this.lastIndexes.length - 1];
    assert(prev === undefined || lastIndex > prev, "inflight indexes must increase");
    this.lastIndexes.push(lastIndex);
  }
  /** Frees every message whose last index is at or below `index` (acknowledged). */
  freeLE(index: Index): void {
    let n = 0;
    while (n < this.lastIndexes.length && (this.lastIndexes[n] ?? Infinity) <= index) n++;
    this.lastIndexes.splice(0, n);
  }
  full(): boolean {
    return this.lastIndexes.length >= this.inflightMax;
  }
  count(): number {
    return this.lastIndexes.length;
  }
  reset(): void {
    this.lastIndexes.length = 0;
  }
}

export class Progress {
  match: Index = 0;
  next: Index;
  state: ProgressState = "probe";
  /** In probe: an AppendEntries (or snapshot) is outstanding; wait for an answer or heartbeat. */
  probeSent = false;
  /** Match as of the previous heartbeat answer: unchanged with a full window means stalled. */
  matchAtLastHeartbeat: Index = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /**
   * The follower's latest answer said it is recovering lost log data (messages.ts
   * AppendResponseMessage.recovering): its match does not count towards a commit. Replication to
   * it goes on as usual; the flag is set from every answer before that answer's index is used.
   */
  recovering = false;
  readonly inflights: Inflights;

  constructor(next: Index, inflightMax: number) {
    this.next = next;
    this.inflights = new Inflights(inflightMax);
  }

  becomeProbe(): void {
    this.state = "probe";
    this.probeSent = false;
    this.next = this.match + 1;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.probeSent = false;
    this.next = this.match + 1;
    this.inflights.reset();
  }

  /** After sending a snapshot at `snapshotIndex`: wait in probe for its acknowledgement. */
  sentSnapshot(snapshotIndex: Index): void {
    this.state = "probe";
    this.inflights.reset();
    this.next = snapshotIndex + 1;
    this.probeSent = true;
  }

  /** A success response: raises match (never lowers it; stale answers are no-ops). */
  maybeUpdate(index: Index): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A recovering follower rejected our newest append at or below its match (raft.ts
   * noteRecovering): the match we recorded is gone from its log. Back to probe from match 0; the
   * next probe starts at the append it rejected (`rejectedIndex`), so maybeDecrTo takes that
   * rejection's hint.
   */
  forgetMatch(rejectedIndex: Index): void {
    this.match = 0;
    this.matchAtLastHeartbeat = 0;
    this.state = "probe";
    this.probeSent = false;
    this.inflights.reset();
    this.next = Math.max(rejectedIndex + 1, 1);
  }

  /** After sending entries up to `lastIndex` in replicate state. */
  sentEntries(lastIndex: Index, entryCount: number): void {
    if (this.state === "replicate") {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else {
      this.probeSent = true;
    }
  }

  /**
   * A rejection of an append whose prevIndex was `rejected`; `hintIndex` is the highest index the
   * follower might still match. Returns false for a stale rejection (already superseded).
   */
  maybeDecrTo(rejected: Index, hintIndex: Index): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hintIndex + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    return this.state === "probe" ? this.probeSent : this.inflights.full();
  }

  describe(): string {
    const paused = this.isPaused() ? " paused" : "";
    const recovering = this.recovering ? " recovering" : "";
    return `${this.state} match=${this.match} next=${this.next}${paused} inflight=${this.inflights.count()}${recovering}`;
  }
}
