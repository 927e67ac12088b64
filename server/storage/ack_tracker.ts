// When the ack record is rewritten, driven by SqliteStorage.save (which knows what it made
// durable), never by the node loop:
//
// - term or vote changed: at once, after the SQLite commit and before save() returns, so before
//   any message that depends on them is sent (one extra rename + 2 fsyncs per election step);
// - the last durable index or commit moved: when it is `watermarkEntries` past the record, or
//   `watermarkIntervalMs` after the last write (a timer, so an idle member catches up too). So at
//   most that much can vanish unseen; writing it on every save would double the fsyncs per Ready;
// - before a save that will leave the log SHORTER than the record (conflict truncation of an
//   uncommitted suffix, a snapshot below it): the record is lowered first, so a crash between
//   the two never looks like lost data;
// - at a clean close: the exact final state, after the WAL is checkpointed away.
//
// The record only ever claims what is already durable (it is written after the commit), so
// "store >= record" holds at every instant, crash or not. One exception, on purpose: while the
// member recovers lost log data (recoveryUntil, sqlite_storage.ts) the record keeps claiming the
// last index it had acknowledged before the loss, until the store holds that much again, so a
// restart in the middle of the recovery finds the loss again instead of a member that may vote.

import { assert } from "../core/assert.ts";
import type { Index, NodeId, Term } from "../core/types.ts";
import type { AckRecord, AckRecordFile, RecordedWal } from "./ack_record.ts";
import type { StorageIdentity, StorageWrite } from "./raft_storage.ts";

export interface AckPolicy {
  readonly watermarkEntries: number;
  readonly watermarkIntervalMs: number;
}

/** setTimeout's limit (a signed 32-bit ms count); a longer interval is cut to it. */
const TIMER_MS_MAX = 2 ** 31 - 1;

export const DEFAULT_ACK_POLICY: AckPolicy = { watermarkEntries: 256, watermarkIntervalMs: 1000 };

export interface DurableProgress {
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: Index;
  readonly lastIndex: Index;
}

export interface AckTrackerOptions {
  readonly file: AckRecordFile;
  /** The record as it is on disk now. */
  readonly record: AckRecord;
  /** What the store holds now (>= the record). */
  readonly durable: DurableProgress;
  readonly policy: AckPolicy;
  /** The WAL's header salts and size now, or null without a header. */
  readonly readWal: () => RecordedWal | null;
  readonly nowMs: () => number;
  /**
   * The store lost log data and recovers up to this index (the record's last index before the
   * loss): the record's lastIndex stays at least this until the durable log reaches it. null:
   * not recovering.
   */
  readonly recoveryUntil?: Index | null;
}

export class AckTracker {
  private recordNow: AckRecord;
  private durable: DurableProgress;
  private writtenAtMs: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private recoveryUntil: Index | null;
  /** The highest commit index written without fsync since the last synced write, or null. */
  private unsyncedCommit: Index | null = null;
  /** Record writes since open, for the benchmark and tests. */
  writes = 0;

  constructor(private readonly options: AckTrackerOptions) {
    this.recordNow = options.record;
    this.durable = options.durable;
    this.writtenAtMs = options.nowMs();
    this.recoveryUntil = options.recoveryUntil ?? null;
  }

  /** The index the record keeps claiming while the store recovers (null: not recovering). */
  get recovering(): Index | null {
    return this.recoveryUntil;
  }

  /** The identity was just written to raft.db: the record carries it from now on. */
  setIdentity(identity: StorageIdentity): void {
    this.write({ identity });
  }

  get record(): AckRecord {
    return this.recordNow;
  }

  /** Marks the store open (the WAL must exist from now until a clean close) with the exact state. */
  markOpen(): void {
    this.write({ ...this.claimed(this.durable), open: true });
  }

  beforeSave(write: StorageWrite): void {
    const nextLast = lastIndexAfter(write);
    if (nextLast === null) return;
    const lowered = this.recoveryUntil === null ? nextLast : Math.max(nextLast, this.recoveryUntil);
    if (lowered < this.recordNow.lastIndex) this.write({ lastIndex: lowered });
  }

  /**
   * `synced` false (a commit-index-only write without fsync, StorageWrite.sync): nothing is
   * claimed yet; its commit index becomes durable with the next synced write (the WAL is
   * append-only and that write fsyncs all of it), and only then may the record claim it.
   */
  afterSave(write: StorageWrite, synced = true): void {
    const hardState = write.hardState;
    if (!synced) {
      assert(lastIndexAfter(write) === null && (hardState === null || hardState.term === this.durable.term), "unsynced write");
      if (hardState !== null) this.unsyncedCommit = Math.max(this.unsyncedCommit ?? 0, hardState.commit);
      return;
    }
    const commit = Math.max(hardState?.commit ?? this.durable.commit, this.unsyncedCommit ?? 0);
    this.unsyncedCommit = null;
    this.durable = {
      term: hardState?.term ?? this.durable.term,
      vote: hardState?.vote ?? this.durable.vote,
      commit,
      lastIndex: lastIndexAfter(write) ?? this.durable.lastIndex,
    };
    if (this.recoveryUntil !== null && this.durable.lastIndex >= this.recoveryUntil) this.recoveryUntil = null;
    const r = this.recordNow;
    const claim = this.claimed(this.durable);
    if (claim.term !== r.term || claim.vote !== r.vote) return this.write(claim);
    const behind = claim.lastIndex !== r.lastIndex || claim.commit !== r.commit;
    if (!behind) return;
    const entriesBehind = claim.lastIndex - r.lastIndex;
    const due =
      entriesBehind >= this.options.policy.watermarkEntries ||
      this.options.nowMs() - this.writtenAtMs >= this.options.policy.watermarkIntervalMs;
    if (due) return this.write(claim);
    this.armTimer();
  }

  /** Clean close, step 1 (before the TRUNCATE checkpoint): the exact state, no WAL expectation. */
  beforeCheckpoint(): void {
    this.stopTimer();
    this.write({ ...this.claimed(this.durable), wal: null });
  }

  /** Clean close, step 2 (after the checkpoint): raft.db alone holds everything. */
  markClosed(): void {
    // The checkpoint synced the WAL (and raft.db): an unsynced commit index is durable now.
    if (this.unsyncedCommit !== null) this.durable = { ...this.durable, commit: Math.max(this.durable.commit, this.unsyncedCommit) };
    this.unsyncedCommit = null;
    this.write({ ...this.claimed(this.durable), open: false, wal: null });
  }

  /** What the record says of `d`: d itself, but at least recoveryUntil as last index while recovering. */
  private claimed(d: DurableProgress): DurableProgress {
    if (this.recoveryUntil === null || d.lastIndex >= this.recoveryUntil) return d;
    return { ...d, lastIndex: this.recoveryUntil };
  }

  stopTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private armTimer(): void {
    if (this.timer !== null) return;
    const sinceMs = this.options.nowMs() - this.writtenAtMs;
    const waitMs = Math.min(TIMER_MS_MAX, Math.max(0, this.options.policy.watermarkIntervalMs - sinceMs));
    this.timer = setTimeout(() => {
      this.timer = null;
      // A throw here is uncaught: fatal in tenured (server/process_main.ts), as in save().
      this.write(this.claimed(this.durable));
    }, waitMs);
    this.timer.unref(); // never keeps a process alive
  }

  private write(changes: Partial<AckRecord>): void {
    const wal = "wal" in changes ? (changes.wal ?? null) : this.options.readWal();
    const next: AckRecord = { ...this.recordNow, ...changes, wal, generation: this.recordNow.generation + 1 };
    this.options.file.write(next);
    this.recordNow = next;
    this.writtenAtMs = this.options.nowMs();
    this.writes++;
    const d = this.claimed(this.durable);
    if (next.term === d.term && next.vote === d.vote && next.commit === d.commit && next.lastIndex === d.lastIndex) this.stopTimer();
  }
}

/** The log's last index once `write` is applied, or null if it leaves the log's end alone. */
function lastIndexAfter(write: StorageWrite): Index | null {
  const lastEntry = write.entries.at(-1);
  if (lastEntry !== undefined) return lastEntry.index;
  return write.snapshot?.metadata.index ?? null;
}
