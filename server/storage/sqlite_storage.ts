// Durable Raft storage on better-sqlite3. One file, raft.db, in the data directory, in WAL mode
// with synchronous=FULL: a commit returns only after the WAL is fsynced. Every save() is ONE
// transaction, so what a Ready asks for is either all on disk or not at all before any of its
// messages is sent; a commit-index-only write (sync: false) skips the fsync (README, Durability). Every row carries a CRC32 (checksum.ts) and load() refuses a store whose rows,
// gaps or commit index do not add up (storage_checks.ts). A LOCK file keeps other processes out.
//
// SQLite cannot see what it silently dropped, so before it opens the database we check its WAL
// ourselves (wal_check.ts), and we keep a record outside SQLite of what was made durable
// (ack_record.ts, written by ack_tracker.ts from save()); the store must hold at least that
// (startup_checks.ts). A clean close checkpoints the WAL into raft.db, so raft.db holds the live
// pages and its integrity check and row checksums see damage to them.
//
// Recovery (issue 13 point 2; README "Recovery"): when the evidence shows lost or damaged log
// data and the ack record is intact, open() keeps the evidence (evidence.ts), cuts the WAL back to
// what SQLite would read, or moves a damaged raft.db aside and starts an empty store with the
// record's identity, raises term and vote to the record's, and reports recovery() = { untilIndex:
// the record's last index }: the node starts its core in recovery (RaftConfig.recovery), so the
// member neither votes nor counts towards a commit until it has caught up from a leader. The
// record keeps claiming untilIndex until the store holds it again (ack_tracker.ts). Without an
// intact record the loss cannot be bounded: refused (OPERATOR_ADVICE).

import Database from "better-sqlite3";
import { mkdirSync, realpathSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { assert } from "../core/assert.ts";
import type { HardState, Index, PersistedState, Snapshot, SnapshotMetadata } from "../core/types.ts";
import { encodeConfState, entryChecksum, hardStateChecksum, identityChecksum, snapshotChecksum } from "./checksum.ts";
import { AckRecordFile, ackRecordPath, readAckRecord } from "./ack_record.ts";
import type { AckRecord, RecordedWal } from "./ack_record.ts";
import { AckTracker, DEFAULT_ACK_POLICY } from "./ack_tracker.ts";
import type { AckPolicy } from "./ack_tracker.ts";
import { acquireLock, releaseLock } from "./lock_file.ts";
import { StorageCorruptError } from "./raft_storage.ts";
import type { RaftStorage, StorageIdentity, StorageWrite } from "./raft_storage.ts";
import { assertCompactValid, assertIdentityShape, assertWriteValid, corruptError, isSafeCount } from "./storage_checks.ts";
import type { LogView } from "./storage_checks.ts";
import { OPERATOR_ADVICE, assessWal, describeLosses, lossesAgainstRecord, raisedHardState, recordClaimsNothing } from "./startup_checks.ts";
import { checkWal, readWalSalts } from "./wal_check.ts";
import { WalSync } from "./wal_sync.ts";
import { inspectReadOnly, readPageSizeBytes } from "./sqlite_inspect.ts";
import type { Inspection } from "./sqlite_inspect.ts";
import { decodeHardStateRow, decodeIdentityRow, prepareReads, readVerifiedState } from "./sqlite_rows.ts";
import { cutWal, dropWalIndex, keepWalCopy, moveStoreAside } from "./evidence.ts";

export const DB_FILE_NAME = "raft.db";
export const WAL_FILE_NAME = `${DB_FILE_NAME}-wal`;
/** 2: the store keeps an ack record beside raft.db (1: written before it existed; upgraded). */
const SCHEMA_VERSION = 2;
const SCHEMA_VERSION_BEFORE_ACK_RECORD = 1;

// The log start below the snapshot while a member keeps entries for a witness (churn issue 4):
// its index, term and membership (checksum as a snapshot row with empty data). Added after schema
// 2 without a version bump: open() creates it in an older store (an older build refuses a log kept
// below its snapshot as a gap).
const LOG_START_TABLE = `CREATE TABLE IF NOT EXISTS log_start (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  idx INTEGER NOT NULL, term INTEGER NOT NULL, conf_state TEXT NOT NULL,
  checksum INTEGER NOT NULL) STRICT;
`;

// Singleton tables use `id = 1`. STRICT makes SQLite refuse values of the wrong type.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS identity (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  cluster_id TEXT NOT NULL, node_id TEXT NOT NULL, checksum INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS hard_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  term INTEGER NOT NULL, vote TEXT NOT NULL, commit_index INTEGER NOT NULL,
  checksum INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS entries (
  idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL,
  checksum INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  idx INTEGER NOT NULL, term INTEGER NOT NULL, conf_state TEXT NOT NULL, data BLOB NOT NULL,
  checksum INTEGER NOT NULL) STRICT;
${LOG_START_TABLE}`;

type Row = Record<string, unknown>;

export interface SqliteStorageOptions {
  readonly dataDir: string;
  /** When the ack record's watermark is rewritten (default DEFAULT_ACK_POLICY). */
  readonly ackPolicy?: AckPolicy;
  /** Non-fatal findings at open (an old store given its first ack record; storage_recovery). */
  readonly warn?: (fields: Record<string, unknown>) => void;
}

/** What open() found and repaired; the node starts its core in recovery until untilIndex. */
export interface StorageRecovery {
  /** The last index the ack record says was durable before the loss (RaftConfig.recovery). */
  readonly untilIndex: Index;
  /** What the evidence showed, one line each. */
  readonly found: readonly string[];
  /** Where the damaged files were kept (copied or moved aside). */
  readonly evidence: readonly string[];
}

/** The store as inspected, read-only, before a read-write connection opens it. */
type Inspected =
  | { readonly kind: "ok"; readonly inspection: Inspection }
  | { readonly kind: "corrupt"; readonly error: StorageCorruptError };

/** What the write checks read of the stored rows (SqliteStorage.stored). */
interface StoredPosition {
  readonly hardState: HardState;
  readonly snapshot: { readonly index: Index; readonly term: number } | null;
  readonly lastIndex: Index;
  /** The term at lastIndex (the entry's, or the snapshot's; 0 for an empty store). */
  readonly lastTerm: number;
}

export class SqliteStorage implements RaftStorage {
  /** Set when synchronous=FULL could not be restored after an unsynced save (fatal for writes). */
  private synchronousLost = false;
  private closed = false;
  private readonly where: string;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly saveTransaction: (write: StorageWrite) => void;
  private readonly compactTransaction: (snapshot: Snapshot, logStart: SnapshotMetadata | null) => void;
  private readonly loadTransaction: () => PersistedState;
  private tracker: AckTracker | null = null;
  private readonly saveCounts = { synced: 0, unsynced: 0 };
  private ackFile: AckRecordFile | null = null;
  private recoveryFound: StorageRecovery | null = null;
  /** The state the inspection verified at open: the first load() returns it (no second read). */
  private preloaded: PersistedState | null = null;
  /** saveInBackground's fsync of the WAL on the thread pool (wal_sync.ts). */
  private readonly walSync: WalSync;
  /**
   * A commit-index-only hard state (StorageWrite.sync false) saved but not yet written: it goes
   * into the next synced write's transaction (or a compaction's, or close()'s), so the commit path
   * runs no SQLite transaction for it. A crash (a process crash too, not only a power failure as
   * for the unsynced transaction it replaced) loses this commit index, which Raft need not keep;
   * a clean close keeps it.
   */
  private unwrittenHardState: HardState | null = null;
  /**
   * What view() reads, as of the last write that committed (null: not read yet). This process is
   * the store's only writer (LOCK), so the rows cannot change under it; every write path updates
   * it only after its transaction committed, and any other write of those rows drops it.
   */
  private stored: StoredPosition | null = null;

  private constructor(
    private readonly db: Database.Database,
    readonly dataDir: string,
    private readonly lockPath: string,
  ) {
    this.where = `sqlite store ${dataDir}`;
    this.walSync = new WalSync(path.join(dataDir, WAL_FILE_NAME));
    this.sql = prepareStatements(db);
    this.saveTransaction = db.transaction((write: StorageWrite) => this.writeRows(write));
    this.compactTransaction = db.transaction((snapshot: Snapshot, logStart: SnapshotMetadata | null) =>
      this.compactRows(snapshot, logStart),
    );
    this.loadTransaction = db.transaction(() => this.readState());
  }

  /**
   * Opens (creating if needed) the store in `dataDir`; throws StorageLockedError if held, and
   * StorageCorruptError if the WAL, raft.db or the ack record show damage or lost data that it
   * cannot recover from (no intact ack record). Recoverable findings: recovery() (file header).
   */
  static open(options: SqliteStorageOptions): SqliteStorage {
    mkdirSync(options.dataDir, { recursive: true });
    const dataDir = realpathSync(options.dataDir);
    const lockPath = acquireLock(dataDir);
    try {
      return SqliteStorage.openLocked(dataDir, lockPath, options);
    } catch (error) {
      releaseLock(lockPath);
      throw error;
    }
  }

  private static openLocked(dataDir: string, lockPath: string, options: SqliteStorageOptions): SqliteStorage {
    const where = `sqlite store ${dataDir}`;
    const dbPath = path.join(dataDir, DB_FILE_NAME);
    const walPath = path.join(dataDir, WAL_FILE_NAME);
    const recordPath = ackRecordPath(dataDir);
    const record = readRecordOrRefuse(dataDir);
    const generation = record?.generation ?? 0;
    const found: string[] = [];
    const evidence: string[] = [];
    let walMissing: string | null = null;
    // Before SQLite opens it: SQLite's recovery would silently drop what follows a bad frame.
    const walFinding = assessWal({ walPath, recordPath, record, wal: checkWal(walPath, readPageSizeBytes(dbPath)) });
    if (walFinding !== null) {
      if (record === null) {
        throw new StorageCorruptError(
          `${walFinding.detail}; no ack record says what this member acknowledged (a store older than ack records), so it ` +
            `cannot recover; refusing to start. ${OPERATOR_ADVICE}`,
        );
      }
      // A missing WAL is a loss only if the store then lacks what the record claims (startRecord):
      // any exit that skips close() (a fatal stop, a signal during shutdown) lets better-sqlite3's
      // exit hook close the database, and SQLite's close checkpoints the WAL into raft.db and
      // deletes it, record still "open", nothing lost.
      if (walFinding.kind === "missing") walMissing = walFinding.detail;
      else found.push(walFinding.detail);
      if (walFinding.kind !== "missing") evidence.push(keepWalCopy(walPath, generation));
      // Cut where SQLite stops reading: from here on SQLite and our check agree on the WAL.
      if (walFinding.kind === "corrupt") cutWal(walPath, walFinding.cutAtBytes);
      dropWalIndex(dbPath);
    }
    // Then through a read-only connection, which never checkpoints the WAL away (evidence).
    let inspected = inspect(dbPath, where);
    if (inspected.kind === "corrupt") {
      if (record === null) throw inspected.error;
      if (record.identity === null) throw unknownIdentity(findingOf(inspected.error), recordPath);
      found.push(findingOf(inspected.error));
      evidence.push(moveStoreAside(dataDir, DB_FILE_NAME, generation));
      inspected = inspect(dbPath, where);
      if (inspected.kind === "corrupt") throw inspected.error; // nothing is left to be damaged
    }
    const { inspection } = inspected;
    if (record === null && inspection.version === SCHEMA_VERSION) {
      throw new StorageCorruptError(
        `${recordPath} is missing, but raft.db (schema ${SCHEMA_VERSION}) was always written with one: without it the ` +
          `store cannot show it still holds what it acknowledged, nor whom it voted for; refusing to start. ${OPERATOR_ADVICE}`,
      );
    }
    if (record !== null && record.identity !== null && inspection.identity !== null) {
      const a = record.identity;
      const b = inspection.identity;
      if (a.clusterId !== b.clusterId || a.nodeId !== b.nodeId) {
        throw new StorageCorruptError(
          `${recordPath} belongs to member "${a.nodeId}" of cluster "${a.clusterId}", raft.db to "${b.nodeId}" of ` +
            `"${b.clusterId}": files of two data directories mixed; refusing to start. ${OPERATOR_ADVICE}`,
        );
      }
    }
    const db = new Database(dbPath);
    let store: SqliteStorage | null = null;
    try {
      const version = guardSqlite(where, () => configure(db, inspection.version));
      store = new SqliteStorage(db, dataDir, lockPath);
      const opened = store;
      guardSqlite(where, () => opened.startRecord(record, { ...inspection, version }, { found, evidence, walMissing }, options));
      return store;
    } catch (error) {
      store?.ackFile?.close();
      db.close();
      throw error;
    }
  }

  /**
   * Compares the store with the record (found: what open() already saw), starts recovery when
   * anything acknowledged is lost, then starts the record and marks the store open.
   */
  private startRecord(
    record: AckRecord | null,
    inspection: Inspection,
    seen: { readonly found: string[]; readonly evidence: string[]; readonly walMissing: string | null },
    options: SqliteStorageOptions,
  ): void {
    const { version } = inspection;
    let progress = inspection.progress;
    this.preloaded = inspection.state;
    let raised: HardState | null = null;
    if (record !== null && !recordClaimsNothing(record)) {
      const losses = lossesAgainstRecord(record, { hardState: progress, lastIndex: progress.lastIndex });
      if (losses.length > 0) {
        if (seen.walMissing !== null) seen.found.push(seen.walMissing);
        seen.found.push(describeLosses(ackRecordPath(this.dataDir), record, losses));
      }
      if (seen.found.length > 0) {
        raised = this.rebuildAfterLoss(record, progress, seen.found);
        if (raised !== null) progress = { ...progress, ...raised };
        this.recoveryFound = { untilIndex: Math.max(record.lastIndex, progress.lastIndex), found: seen.found, evidence: seen.evidence };
      }
    }
    this.ackFile = new AckRecordFile(this.dataDir);
    const identity = record?.identity ?? inspection.identity ?? this.identity();
    const initial: AckRecord = record ?? { generation: 0, ...progress, open: true, wal: null, identity };
    this.tracker = new AckTracker({
      file: this.ackFile,
      record: { ...initial, identity },
      durable: progress,
      policy: options.ackPolicy ?? DEFAULT_ACK_POLICY,
      readWal: () => this.recordedWal(),
      nowMs: () => performance.now(),
      recoveryUntil: this.recoveryFound?.untilIndex ?? null,
    });
    this.tracker.markOpen();
    if (record === null && version === SCHEMA_VERSION_BEFORE_ACK_RECORD) {
      options.warn?.({ event: "ack_record_created", dataDir: this.dataDir, from: progress, warning: "store written before ack records" });
    }
    const recovery = this.recoveryFound;
    if (recovery !== null) {
      options.warn?.({
        event: "storage_recovery",
        dataDir: this.dataDir,
        found: recovery.found,
        untilIndex: recovery.untilIndex,
        lastIndex: progress.lastIndex,
        ...(raised !== null ? { raisedHardState: { term: raised.term, vote: raised.vote } } : {}),
        evidence: recovery.evidence,
        warning:
          `log data lost or damaged: this member starts without voting and is not counted towards commits until it has ` +
          `caught up from the leader to index ${recovery.untilIndex} (recovery_done)`,
      });
    }
    // Only now: a raft.db of this version without a record is refused as a lost record.
    if (version !== SCHEMA_VERSION) this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  /**
   * Recovery, inside open: a store rebuilt empty gets the record's identity back (so it is not
   * bootstrapped again), and term and vote are raised to the record's when they went back.
   * Returns the raised hard state, or null when the store's was not behind.
   */
  private rebuildAfterLoss(
    record: AckRecord,
    progress: { readonly term: number; readonly vote: string; readonly commit: number },
    found: readonly string[],
  ): HardState | null {
    if (this.identity() === null) {
      if (record.identity === null) throw unknownIdentity(`${this.where}: ${found.join("; ")}`, ackRecordPath(this.dataDir));
      const { clusterId, nodeId } = record.identity;
      this.sql.putIdentity.run(clusterId, nodeId, identityChecksum(record.identity));
    }
    const raised = raisedHardState(record, progress);
    if (raised === null) return null;
    this.stored = null;
    this.sql.putHardState.run(raised.term, raised.vote, raised.commit, hardStateChecksum(raised));
    if (this.preloaded !== null) this.preloaded = { ...this.preloaded, hardState: raised };
    return raised;
  }

  /** What open() found and repaired (the node starts its core in recovery), or null. */
  recovery(): StorageRecovery | null {
    return this.recoveryFound;
  }

  private recordedWal(): RecordedWal | null {
    const now = readWalSalts(path.join(this.dataDir, WAL_FILE_NAME));
    if (now === null || now.salts === null) return null;
    return { ...now.salts, bytes: now.bytes };
  }

  load(): PersistedState {
    this.assertOpen();
    const preloaded = this.preloaded;
    this.preloaded = null;
    const read = preloaded ?? guardSqlite(this.where, () => this.loadTransaction());
    const state = this.unwrittenHardState === null ? read : { ...read, hardState: this.unwrittenHardState };
    // Again on the verified rows: the store never holds less than the record says (any time),
    // but for the last index the record keeps claiming while the store recovers.
    const lastIndex = Math.max(state.entries.at(-1)?.index ?? 0, state.snapshot?.metadata.index ?? 0);
    const tracker = this.ack();
    const record = tracker.record;
    const losses = lossesAgainstRecord(record, { hardState: state.hardState, lastIndex }).filter(
      (loss) => tracker.recovering === null || !loss.startsWith("last log index"),
    );
    if (losses.length > 0) {
      throw new StorageCorruptError(
        `${this.where}: ${describeLosses(ackRecordPath(this.dataDir), record, losses)}. ` +
          `The disk dropped writes it had confirmed while the store was open; this member must not vote or serve on that.`,
      );
    }
    return state;
  }

  save(write: StorageWrite): void {
    this.assertOpen();
    const empty = write.hardState === null && write.snapshot === null && write.entries.length === 0;
    if (empty) return;
    const tracker = this.ack();
    this.preloaded = null;
    if (write.sync === false) {
      // Checked now, as the transaction would have (only a commit index may go unsynced), and
      // held for the next write: see unwrittenHardState.
      assertWriteValid(this.view(), write);
      if (write.hardState !== null) this.unwrittenHardState = write.hardState;
      tracker.afterSave(write, false);
      this.saveCounts.unsynced++;
      return;
    }
    const merged = this.withUnwritten(write);
    tracker.beforeSave(merged);
    guardSqlite(this.where, () => this.saveTransaction(merged));
    this.wrote(merged);
    tracker.afterSave(merged, true); // durable now: term/vote at once, the watermark now and then
    this.saveCounts.synced++;
  }

  /**
   * `write` with the unwritten commit-index-only hard state in it, unless it has its own (checked
   * against the unwritten one: view()). The caller clears it once its transaction committed.
   */
  private withUnwritten(write: StorageWrite): StorageWrite {
    const unwritten = this.unwrittenHardState;
    return unwritten === null || write.hardState !== null ? write : { ...write, hardState: unwritten };
  }

  /** Writes the unwritten hard state on its own, unsynced (before a compaction and at close). */
  private writeUnwritten(): void {
    const unwritten = this.unwrittenHardState;
    if (unwritten === null) return;
    const write: StorageWrite = { hardState: unwritten, snapshot: null, entries: [], sync: false };
    guardSqlite(this.where, () => this.saveWithoutSync(write));
    this.wrote(write);
  }

  /** A write committed (the unwritten hard state with it, if any): what view() reads follows it. */
  private wrote(write: StorageWrite): void {
    this.unwrittenHardState = null;
    const s = this.stored;
    if (s === null) return;
    const last = write.entries.at(-1);
    const snapshot = write.snapshot === null ? s.snapshot : { index: write.snapshot.metadata.index, term: write.snapshot.metadata.term };
    const end = last ?? (write.snapshot === null ? null : write.snapshot.metadata);
    this.stored = {
      hardState: write.hardState ?? s.hardState,
      snapshot,
      lastIndex: end?.index ?? s.lastIndex,
      lastTerm: end?.term ?? s.lastTerm,
    };
  }

  /**
   * save() whose fsync runs off the event loop: the transaction is committed now at
   * synchronous=NORMAL (in the WAL, crash-consistent, not yet durable), then the WAL is fsynced
   * on the thread pool (wal_sync.ts) and `done(null)` runs once the write is as durable as a
   * save() that returned; `done(error)` if that failed (fatal: the write may be lost). Until
   * `done` runs nothing else of this store may be called but close() (the Ready loop holds its
   * next write back). A synced write only: an unsynced one has nothing to wait for.
   */
  saveInBackground(write: StorageWrite, done: (error: Error | null) => void): void {
    this.assertOpen();
    assert(write.sync !== false, `${this.where}: saveInBackground of an unsynced write; use save()`);
    const tracker = this.ack();
    this.preloaded = null;
    const merged = this.withUnwritten(write);
    tracker.beforeSave(merged);
    guardSqlite(this.where, () => this.saveWithoutSync(merged));
    this.wrote(merged);
    this.walSync.sync((error) => {
      if (error !== null) return done(error);
      // After close() the checkpoint there made it durable and the record is final: claim nothing.
      if (!this.closed) {
        tracker.afterSave(merged, true);
        this.saveCounts.synced++;
      }
      done(null);
    });
  }

  /**
   * The save transaction at synchronous=NORMAL, so its commit appends to the WAL without an
   * fsync: saveInBackground's (its fdatasync follows on the thread pool) and the held
   * commit-index-only hard state's (writeUnwritten: before a compaction, at close). The WAL is
   * append-only and the next fsync covers the whole file, so such a write becomes durable with
   * it, in order. (SQLite in WAL mode also syncs the WAL before any checkpoint, at NORMAL as at
   * FULL.)
   */
  private saveWithoutSync(write: StorageWrite): void {
    this.sql.synchronousNormal.run();
    try {
      this.saveTransaction(write);
    } finally {
      this.restoreSynchronousFull();
    }
  }

  private restoreSynchronousFull(): void {
    try {
      this.sql.synchronousFull.run();
    } catch (error) {
      // Left at NORMAL, every later save would be unsynced while reported synced: refuse them.
      this.synchronousLost = true;
      throw error;
    }
  }

  /** Saves since open, by whether they were fsynced (tests, benchmarks). */
  saveCountsSinceOpen(): { readonly synced: number; readonly unsynced: number } {
    return { ...this.saveCounts };
  }

  /** Ack record writes since open (tools/bench_storage.ts, tests). */
  ackRecordWrites(): number {
    return this.ack().writes;
  }

  /** True if raft.db holds any Raft state (hard state, entry or snapshot). */
  holdsRaftState(): boolean {
    this.assertOpen();
    return guardSqlite(this.where, () => this.sql.anyState.get() !== undefined);
  }

  saveSnapshotAndCompact(snapshot: Snapshot, logStart: SnapshotMetadata | null = null): void {
    this.assertOpen();
    this.preloaded = null;
    this.writeUnwritten(); // the stored commit is then at least the snapshot's index, as before
    guardSqlite(this.where, () => this.compactTransaction(snapshot, logStart));
    // The last index stays (the snapshot lies within the log); the snapshot position moves.
    if (this.stored !== null) this.stored = { ...this.stored, snapshot: { index: snapshot.metadata.index, term: snapshot.metadata.term } };
  }

  identity(): StorageIdentity | null {
    this.assertOpen();
    return guardSqlite(this.where, () => decodeIdentityRow(this.sql.reads.identity.get() as Row | undefined, this.where));
  }

  setIdentity(identity: StorageIdentity): void {
    this.assertOpen();
    assertIdentityShape(identity);
    assert(this.identity() === null, `${this.where}: identity already set; written only once`);
    const { clusterId, nodeId } = identity;
    guardSqlite(this.where, () => this.sql.putIdentity.run(clusterId, nodeId, identityChecksum(identity)));
    this.tracker?.setIdentity(identity); // the record can give it back if raft.db is lost
  }

  /**
   * Checkpoints the WAL into raft.db (TRUNCATE), records the exact final state as a clean close,
   * closes the database and releases LOCK. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // A clean close keeps the last commit index (the checkpoint below makes it durable). While
      // a background save is in flight there is none: that save took it (withUnwritten).
      if (!this.walSync.syncing() && !this.synchronousLost) this.writeUnwritten();
      const tracker = this.ack();
      tracker.beforeCheckpoint();
      const result = this.db.pragma("wal_checkpoint(TRUNCATE)") as { busy: number }[];
      // busy: another connection holds a read lock; SQLite's own checkpoint at close retries.
      assert(result.length === 1, `${this.where}: wal_checkpoint returned ${result.length} rows`);
      tracker.markClosed();
      this.db.close();
    } finally {
      this.walSync.close();
      this.ackFile?.close();
      releaseLock(this.lockPath);
    }
  }

  private assertOpen(): void {
    assert(!this.closed, `${this.where}: used after close()`);
    assert(!this.walSync.syncing(), `${this.where}: used while a background save's fsync is in flight`);
    assert(!this.synchronousLost, `${this.where}: PRAGMA synchronous could not be set back to FULL; refusing writes`);
  }

  private ack(): AckTracker {
    assert(this.tracker !== null, `${this.where}: ack record not started`);
    return this.tracker;
  }

  /** Runs inside saveTransaction: check first, then write; a throw rolls everything back. */
  private writeRows(write: StorageWrite): void {
    assertWriteValid(this.view(), write);
    if (write.snapshot !== null) {
      this.sql.deleteAllEntries.run();
      this.sql.deleteLogStart.run();
      this.putSnapshot(write.snapshot);
    }
    const first = write.entries[0];
    if (first !== undefined) {
      // Conflict truncation; a plain append (above the last index) has nothing to delete.
      if (first.index <= this.storedPosition().lastIndex) this.sql.deleteEntriesFrom.run(first.index);
      for (const entry of write.entries) {
        const { index, term, type, data } = entry;
        this.sql.putEntry.run(index, term, type, toBuffer(data), entryChecksum(entry));
      }
    }
    if (write.hardState !== null) {
      const { term, vote, commit } = write.hardState;
      this.sql.putHardState.run(term, vote, commit, hardStateChecksum(write.hardState));
    }
  }

  private compactRows(snapshot: Snapshot, logStart: SnapshotMetadata | null): void {
    assertCompactValid(this.view(), snapshot, logStart);
    this.putSnapshot(snapshot);
    if (logStart === null) this.sql.deleteLogStart.run();
    else {
      const { index, term, confState } = logStart;
      const confStateJson = encodeConfState(confState);
      const checksum = snapshotChecksum(logStart, confStateJson, new Uint8Array(0));
      this.sql.putLogStart.run(index, term, confStateJson, checksum);
    }
    this.sql.deleteEntriesBelow.run((logStart?.index ?? snapshot.metadata.index) + 1);
  }

  private putSnapshot(snapshot: Snapshot): void {
    const { index, term, confState } = snapshot.metadata;
    const confStateJson = encodeConfState(confState);
    const checksum = snapshotChecksum(snapshot.metadata, confStateJson, snapshot.data);
    this.sql.putSnapshot.run(index, term, confStateJson, toBuffer(snapshot.data), checksum);
  }

  /**
   * What the write checks need, read inside the write's transaction. The snapshot's index and
   * term only, never its image: the checks need no more, and reading the image back (select,
   * checksum, decode, copy) made every save O(state). The row was checksum-verified at load.
   */
  private view(): LogView {
    const stored = this.storedPosition();
    return {
      hardState: this.unwrittenHardState ?? stored.hardState,
      snapshot: stored.snapshot,
      lastIndex: stored.lastIndex,
      // A plain append asks for the last entry's term: known without a read.
      termAt: (index) => (index === stored.lastIndex && index > (stored.snapshot?.index ?? 0) ? stored.lastTerm : this.termAt(index)),
    };
  }

  /** The hard state, snapshot position and last index as stored, read once and then followed. */
  private storedPosition(): StoredPosition {
    if (this.stored !== null) return this.stored;
    const snapshot = this.readSnapshotPosition();
    const snapshotIndex = snapshot?.index ?? 0;
    const last = (this.sql.lastIndex.get() as Row).last;
    const lastIndex = typeof last === "number" ? Math.max(last, snapshotIndex) : snapshotIndex;
    const lastTerm = lastIndex === snapshotIndex ? (snapshot?.term ?? 0) : this.termAt(lastIndex);
    if (lastTerm === null) throw corruptError(this.where, "entries", `no entry at the last index ${lastIndex}`);
    this.stored = { hardState: this.readHardState(), snapshot, lastIndex, lastTerm };
    return this.stored;
  }

  private termAt(index: Index): number | null {
    const row = this.sql.termAt.get(index) as Row | undefined;
    return typeof row?.term === "number" ? row.term : null;
  }

  private readState(): PersistedState {
    return readVerifiedState(this.sql.reads, this.where);
  }

  private readHardState(): HardState {
    return decodeHardStateRow(this.sql.reads.hardState.get() as Row | undefined, this.where);
  }

  private readSnapshotPosition(): { readonly index: Index; readonly term: number } | null {
    const row = this.sql.snapshotPosition.get() as Row | undefined;
    if (row === undefined) return null;
    const { idx: index, term } = row;
    if (!isSafeCount(index) || !isSafeCount(term)) throw corruptError(this.where, "snapshot", "row has wrong types");
    return { index, term };
  }
}

/** Sets WAL + FULL and creates the tables of a new store; returns the schema version. */
function configure(db: Database.Database, version: number): number {
  const journalMode = db.pragma("journal_mode = WAL", { simple: true });
  assert(journalMode === "wal", "SQLite refused WAL mode");
  db.pragma("synchronous = FULL"); // fsync the WAL on every commit: durable when save() returns
  const synchronous = db.pragma("synchronous", { simple: true });
  assert(synchronous === 2, "synchronous=FULL not applied");
  const known = version === 0 || version === SCHEMA_VERSION_BEFORE_ACK_RECORD || version === SCHEMA_VERSION;
  if (!known) throw new Error(`${db.name}: schema version ${version}, expected ${SCHEMA_VERSION}`);
  // The tables, but not yet the version: that is set once the ack record exists (startRecord).
  if (version === 0) db.exec(SCHEMA);
  else db.exec(LOG_START_TABLE); // a no-op unless the store predates the table
  return version;
}

/** raft.db read-only: its inspection, or the corruption found in it (integrity_check, a row, SQLite's own). */
function inspect(dbPath: string, where: string): Inspected {
  try {
    return { kind: "ok", inspection: guardSqlite(where, () => inspectReadOnly(dbPath, where)) };
  } catch (error) {
    if (error instanceof StorageCorruptError) return { kind: "corrupt", error };
    throw error;
  }
}

/** Recovery would rebuild raft.db, but the record predates identities: whose store it was is unknown. */
function unknownIdentity(finding: string, recordPath: string): StorageCorruptError {
  return new StorageCorruptError(
    `${finding}; raft.db would have to be rebuilt, but ${recordPath} holds no member identity (written before records ` +
      `held one, or before the member was bootstrapped), so it cannot say whose it was; refusing to start. ${OPERATOR_ADVICE}`,
  );
}

/** A refusal's message without the refusal and the advice: what was found (for storage_recovery). */
function findingOf(error: StorageCorruptError): string {
  return error.message.replace(/; refusing to (start|serve it)\. .*$/s, "");
}

/** The record, or null if there is none; a damaged one is refused (never a torn write: rename). */
function readRecordOrRefuse(dataDir: string): AckRecord | null {
  const read = readAckRecord(dataDir);
  if (read.kind === "absent") return null;
  if (read.kind === "ok") return read.record;
  throw new StorageCorruptError(
    `${ackRecordPath(dataDir)}: ${read.detail}: the record of what this member acknowledged is damaged, so the store ` +
      `cannot show it still holds it, nor whom it voted for (recovery needs it); refusing to start. ${OPERATOR_ADVICE}`,
  );
}

function prepareStatements(db: Database.Database) {
  return {
    reads: prepareReads(db, true), // configure() created log_start in any older store
    putIdentity: db.prepare("INSERT INTO identity (id, cluster_id, node_id, checksum) VALUES (1, ?, ?, ?)"),
    putHardState: db.prepare("INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index, checksum) " + "VALUES (1, ?, ?, ?, ?)"),
    putSnapshot: db.prepare("INSERT OR REPLACE INTO snapshot (id, idx, term, conf_state, data, checksum) " + "VALUES (1, ?, ?, ?, ?, ?)"),
    lastIndex: db.prepare("SELECT MAX(idx) AS last FROM entries"),
    // Index and term only: SQLite then reads no overflow page of the image (view()).
    snapshotPosition: db.prepare("SELECT idx, term FROM snapshot WHERE id = 1"),
    synchronousNormal: db.prepare("PRAGMA synchronous = NORMAL"),
    synchronousFull: db.prepare("PRAGMA synchronous = FULL"),
    anyState: db.prepare("SELECT 1 FROM hard_state UNION ALL SELECT 1 FROM entries UNION ALL SELECT 1 FROM snapshot LIMIT 1"),
    termAt: db.prepare("SELECT term FROM entries WHERE idx = ?"),
    putEntry: db.prepare("INSERT INTO entries (idx, term, type, data, checksum) VALUES (?, ?, ?, ?, ?)"),
    deleteEntriesFrom: db.prepare("DELETE FROM entries WHERE idx >= ?"),
    deleteEntriesBelow: db.prepare("DELETE FROM entries WHERE idx < ?"),
    deleteAllEntries: db.prepare("DELETE FROM entries"),
    putLogStart: db.prepare("INSERT OR REPLACE INTO log_start (id, idx, term, conf_state, checksum) VALUES (1, ?, ?, ?, ?)"),
    deleteLogStart: db.prepare("DELETE FROM log_start"),
  };
}

/** better-sqlite3 binds Buffers as BLOBs; wrap without copying. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** SQLite's own corruption errors become StorageCorruptError: same meaning, one type to catch. */
function guardSqlite<T>(where: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof Database.SqliteError && /^SQLITE_(CORRUPT|NOTADB)/.test(error.code)) {
      throw new StorageCorruptError(`${where}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
