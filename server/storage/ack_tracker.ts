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
// "store >= record" holds at every instant, crash or not.

import type { Index, NodeId, Term } from "../core/types.ts";
import type { AckRecord, AckRecordFile, RecordedWal } from "./ack_record.ts";
import type { StorageWrite } from "./raft_storage.ts";

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
}

export class AckTracker {
  private recordNow: AckRecord;
  private durable: DurableProgress;
  private writtenAtMs: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Record writes since open, for the benchmark and tests. */
  writes = 0;

  constructor(private readonly options: AckTrackerOptions) {
    this.recordNow = options.record;
    this.durable = options.durable;
    this.writtenAtMs = options.nowMs();
  }

  get record(): AckRecord {
    return this.recordNow;
  }

  /** Marks the store open (the WAL must exist from now until a clean close) with the exact state. */
  markOpen(): void {
    this.write({ ...this.durable, open: true });
  }

  beforeSave(write: StorageWrite): void {
    const nextLast = lastIndexAfter(write);
    if (nextLast !== null && nextLast < this.recordNow.lastIndex) this.write({ lastIndex: nextLast });
  }

  afterSave(write: StorageWrite): void {
    const hardState = write.hardState;
    this.durable = {
      term: hardState?.term ?? this.durable.term,
      vote: hardState?.vote ?? this.durable.vote,
      commit: hardState?.commit ?? this.durable.commit,
      lastIndex: lastIndexAfter(write) ?? this.durable.lastIndex,
    };
    const r = this.recordNow;
    if (this.durable.term !== r.term || this.durable.vote !== r.vote) return this.write(this.durable);
    const behind = this.durable.lastIndex !== r.lastIndex || this.durable.commit !== r.commit;
    if (!behind) return;
    const entriesBehind = this.durable.lastIndex - r.lastIndex;
    const due =
      entriesBehind >= this.options.policy.watermarkEntries ||
      this.options.nowMs() - this.writtenAtMs >= this.options.policy.watermarkIntervalMs;
    if (due) return this.write(this.durable);
    this.armTimer();
  }

  /** Clean close, step 1 (before the TRUNCATE checkpoint): the exact state, no WAL expectation. */
  beforeCheckpoint(): void {
    this.stopTimer();
    this.write({ ...this.durable, wal: null });
  }

  /** Clean close, step 2 (after the checkpoint): raft.db alone holds everything. */
  markClosed(): void {
    this.write({ ...this.durable, open: false, wal: null });
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
      this.write(this.durable);
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
    const d = this.durable;
    if (next.term === d.term && next.vote === d.vote && next.commit === d.commit && next.lastIndex === d.lastIndex) this.stopTimer();
  }
}

/** The log's last index once `write` is applied, or null if it leaves the log's end alone. */
function lastIndexAfter(write: StorageWrite): Index | null {
  const lastEntry = write.entries.at(-1);
  if (lastEntry !== undefined) return lastEntry.index;
  return write.snapshot?.metadata.index ?? null;
}
