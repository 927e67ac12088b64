// The simulated disk's ack record: a small durable record beside the log, kept by the rules of
// production's server/storage/ack_tracker.ts (read that file's header; this mirrors it):
//
// - term or vote changed: rewritten at once, after the write is synced and before save() returns,
//   so before any message that depends on them leaves (exact);
// - the last durable index or commit moved: rewritten when it is `watermarkEntries` past the
//   record, or `watermarkIntervalMs` after the last record write (production's timer; here the
//   simulation polls it on the node's ticks, and a crash stops it as it stops the process);
// - before a save that leaves the log SHORTER than the record (a conflict truncation, a snapshot
//   below it): lowered first, so a crash between the two never looks like lost data;
// - it only ever claims what is already durable, so "disk >= record" holds at every instant.
//
// One field production does not have (yet): `recoveringUntil`, the index a member that lost data
// must catch up to before it votes again (RaftConfig.recovery). It must be durable: the member's
// own saves during recovery lower `lastIndex` (the third rule above), so a crash in the middle of
// a recovery would otherwise restart it as a normal member holding less than it acknowledged.
//
// The disk's lies (sim_disk_lies.ts) never touch this record; a wiped disk loses it with
// everything else, and a member without one is refused at start (sim_startup.ts), as production
// refuses a store whose ack record is gone.

import type { HardState, Index, NodeId, Term } from "../../server/core/types.ts";
import type { StorageWrite } from "../../server/storage/raft_storage.ts";

export interface SimAckRecord {
  readonly generation: number;
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: Index;
  /** Every entry up to here (or a snapshot covering it) was durable when this was written. */
  readonly lastIndex: Index;
  /** > 0: the member is recovering lost data up to here (see the file header). */
  readonly recoveringUntil: Index;
}

/** As production's AckPolicy (ack_tracker.ts): when the watermark is rewritten. */
export interface SimAckPolicy {
  readonly watermarkEntries: number;
  readonly watermarkIntervalMs: number;
}

/** Production's default (DEFAULT_ACK_POLICY): every 256 entries or 1 s. */
export const PRODUCTION_ACK_POLICY: SimAckPolicy = { watermarkEntries: 256, watermarkIntervalMs: 1000 };

/**
 * The simulator's default: a watermark on every save, so the record is exact at every crash. With
 * production's window a loss confined to the writes after the last record write cannot be seen
 * (server/storage/README.md "What cannot be detected"), and a recovery that ends at a lagging
 * watermark may end below what the member acknowledged: the checkers then fire, rightly (README
 * "The disk lies"; `--ack-watermark 256` runs it).
 */
export const EXACT_ACK_POLICY: SimAckPolicy = { watermarkEntries: 1, watermarkIntervalMs: 1000 };

interface Progress {
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: Index;
  readonly lastIndex: Index;
}

export class SimAckTracker {
  private recordNow: SimAckRecord;
  private durable: Progress;
  private writtenAtMs: number;
  /** A write is due at the next poll (production's timer is armed). */
  private timerArmed = false;
  /** The commit index of unsynced writes since the last synced one (production's unsyncedCommit). */
  private unsyncedCommit: number | null = null;
  writes = 0;

  constructor(
    hardState: HardState,
    lastIndex: Index,
    private readonly policy: SimAckPolicy,
    private readonly nowMs: () => number,
  ) {
    this.durable = { term: hardState.term, vote: hardState.vote, commit: hardState.commit, lastIndex };
    this.recordNow = { generation: 1, ...this.durable, recoveringUntil: 0 };
    this.writtenAtMs = nowMs();
  }

  get record(): SimAckRecord {
    return this.recordNow;
  }

  /** ack_tracker.beforeSave: lowered first when the write will leave the log shorter than the record. */
  beforeSave(write: StorageWrite): void {
    const nextLast = lastIndexAfter(write);
    if (nextLast !== null && nextLast < this.recordNow.lastIndex) this.write({ lastIndex: nextLast });
  }

  /**
   * ack_tracker.afterSave: the write is durable; term/vote at once, the watermark when due. An
   * unsynced write (a commit index only) is claimed only with the next synced one.
   */
  afterSave(write: StorageWrite, synced = true): void {
    const hs = write.hardState;
    if (!synced) {
      if (hs !== null) this.unsyncedCommit = Math.max(this.unsyncedCommit ?? 0, hs.commit);
      return;
    }
    const lastIndex = lastIndexAfter(write) ?? this.durable.lastIndex;
    const unsyncedCommit = this.unsyncedCommit ?? 0;
    this.unsyncedCommit = null;
    if (hs !== null) this.durable = { term: hs.term, vote: hs.vote, commit: Math.max(hs.commit, unsyncedCommit), lastIndex };
    else if (unsyncedCommit > this.durable.commit) this.durable = { ...this.durable, commit: unsyncedCommit, lastIndex };
    else if (lastIndex !== this.durable.lastIndex) this.durable = { ...this.durable, lastIndex };
    const r = this.recordNow;
    if (this.durable.term !== r.term || this.durable.vote !== r.vote) return this.write(this.durable);
    if (this.durable.lastIndex === r.lastIndex && this.durable.commit === r.commit) return;
    const due =
      this.durable.lastIndex - r.lastIndex >= this.policy.watermarkEntries ||
      this.nowMs() - this.writtenAtMs >= this.policy.watermarkIntervalMs;
    if (due) return this.write(this.durable);
    this.timerArmed = true;
  }

  /** Production's timer: the watermark catches up `watermarkIntervalMs` after the last write. */
  poll(): void {
    if (!this.timerArmed || this.nowMs() - this.writtenAtMs < this.policy.watermarkIntervalMs) return;
    this.write(this.durable);
  }

  /** The process is gone: so is its timer (the record stays as last written). */
  crash(): void {
    this.timerArmed = false;
    this.unsyncedCommit = null;
  }

  /**
   * At start, after the damaged part of the log was dropped (sim_startup.ts): what the disk now
   * holds, and the recovery target. The record keeps claiming what it claimed (the loss stays
   * visible to a later start) except where the repaired disk holds more.
   */
  restart(durable: Progress, recoveringUntil: Index): void {
    this.durable = durable;
    this.timerArmed = false;
    if (recoveringUntil !== this.recordNow.recoveringUntil) this.write({ recoveringUntil });
  }

  /** The core caught up (RaftCore.recovering() turned false): the member is whole again. */
  recoveryDone(): void {
    if (this.recordNow.recoveringUntil !== 0) this.write({ recoveringUntil: 0 });
  }

  private write(changes: Partial<SimAckRecord>): void {
    this.recordNow = { ...this.recordNow, ...changes, generation: this.recordNow.generation + 1 };
    this.writtenAtMs = this.nowMs();
    this.writes++;
    const r = this.recordNow;
    const d = this.durable;
    if (r.term === d.term && r.vote === d.vote && r.commit === d.commit && r.lastIndex === d.lastIndex) this.timerArmed = false;
  }
}

/** The log's last index once `write` is applied, or null if it leaves the log's end alone (as ack_tracker.ts). */
function lastIndexAfter(write: StorageWrite): Index | null {
  const lastEntry = write.entries.at(-1);
  if (lastEntry !== undefined) return lastEntry.index;
  return write.snapshot?.metadata.index ?? null;
}
