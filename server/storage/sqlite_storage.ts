// Durable Raft storage on better-sqlite3. One file, raft.db, in the data directory, in WAL mode
// with synchronous=FULL: a commit returns only after the WAL is fsynced. Every save() is ONE
// transaction, so what a Ready asks for is either all on disk or not at all before any of its
// messages is sent. Every row carries a CRC32 (checksum.ts) and load() refuses a store whose rows,
// gaps or commit index do not add up (storage_checks.ts). A LOCK file keeps other processes out.

import Database from "better-sqlite3";
import { mkdirSync, realpathSync } from "node:fs";
import path from "node:path";
import { assert } from "../core/assert.ts";
import { EMPTY_HARD_STATE } from "../core/types.ts";
import type { Entry, HardState, PersistedState, Snapshot } from "../core/types.ts";
import { encodeConfState, entryChecksum, hardStateChecksum, identityChecksum, snapshotChecksum } from "./checksum.ts";
import { acquireLock, releaseLock } from "./lock_file.ts";
import { StorageCorruptError } from "./raft_storage.ts";
import type { RaftStorage, StorageIdentity, StorageWrite } from "./raft_storage.ts";
import {
  assertCompactValid,
  assertIdentityShape,
  assertWriteValid,
  corruptError,
  decodeConfState,
  isSafeCount,
  verifyLoadedState,
} from "./storage_checks.ts";
import type { LogView } from "./storage_checks.ts";

export const DB_FILE_NAME = "raft.db";
const SCHEMA_VERSION = 1;

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
`;

type Row = Record<string, unknown>;

export interface SqliteStorageOptions {
  readonly dataDir: string;
}

export class SqliteStorage implements RaftStorage {
  private closed = false;
  private readonly where: string;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly saveTransaction: (write: StorageWrite) => void;
  private readonly compactTransaction: (snapshot: Snapshot) => void;
  private readonly loadTransaction: () => PersistedState;

  private constructor(
    private readonly db: Database.Database,
    readonly dataDir: string,
    private readonly lockPath: string,
  ) {
    this.where = `sqlite store ${dataDir}`;
    this.sql = prepareStatements(db);
    this.saveTransaction = db.transaction((write: StorageWrite) => this.writeRows(write));
    this.compactTransaction = db.transaction((snapshot: Snapshot) => this.compactRows(snapshot));
    this.loadTransaction = db.transaction(() => this.readState());
  }

  /** Opens (creating if needed) the store in `dataDir`; throws StorageLockedError if held. */
  static open(options: SqliteStorageOptions): SqliteStorage {
    mkdirSync(options.dataDir, { recursive: true });
    const dataDir = realpathSync(options.dataDir);
    const lockPath = acquireLock(dataDir);
    try {
      const db = new Database(path.join(dataDir, DB_FILE_NAME));
      try {
        guardSqlite(`sqlite store ${dataDir}`, () => configure(db));
        return new SqliteStorage(db, dataDir, lockPath);
      } catch (error) {
        db.close();
        throw error;
      }
    } catch (error) {
      releaseLock(lockPath);
      throw error;
    }
  }

  load(): PersistedState {
    this.assertOpen();
    return guardSqlite(this.where, () => this.loadTransaction());
  }

  save(write: StorageWrite): void {
    this.assertOpen();
    const empty = write.hardState === null && write.snapshot === null && write.entries.length === 0;
    if (empty) return;
    guardSqlite(this.where, () => this.saveTransaction(write));
  }

  saveSnapshotAndCompact(snapshot: Snapshot): void {
    this.assertOpen();
    guardSqlite(this.where, () => this.compactTransaction(snapshot));
  }

  identity(): StorageIdentity | null {
    this.assertOpen();
    const row = guardSqlite(this.where, () => this.sql.identity.get() as Row | undefined);
    if (row === undefined) return null;
    const { cluster_id: clusterId, node_id: nodeId, checksum } = row;
    if (typeof clusterId !== "string" || typeof nodeId !== "string") {
      throw corruptError(this.where, "identity", "row has wrong types");
    }
    const identity = { clusterId, nodeId };
    if (identityChecksum(identity) !== checksum) {
      throw corruptError(this.where, "identity", "checksum mismatch");
    }
    return identity;
  }

  setIdentity(identity: StorageIdentity): void {
    this.assertOpen();
    assertIdentityShape(identity);
    assert(this.identity() === null, `${this.where}: identity already set; written only once`);
    const { clusterId, nodeId } = identity;
    guardSqlite(this.where, () => this.sql.putIdentity.run(clusterId, nodeId, identityChecksum(identity)));
  }

  /** Closes the database (checkpointing the WAL) and releases LOCK. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.close();
    } finally {
      releaseLock(this.lockPath);
    }
  }

  private assertOpen(): void {
    assert(!this.closed, `${this.where}: used after close()`);
  }

  /** Runs inside saveTransaction: check first, then write; a throw rolls everything back. */
  private writeRows(write: StorageWrite): void {
    assertWriteValid(this.view(), write);
    if (write.snapshot !== null) {
      this.sql.deleteAllEntries.run();
      this.putSnapshot(write.snapshot);
    }
    const first = write.entries[0];
    if (first !== undefined) {
      this.sql.deleteEntriesFrom.run(first.index); // conflict truncation (no-op on plain append)
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

  private compactRows(snapshot: Snapshot): void {
    assertCompactValid(this.view(), snapshot);
    this.putSnapshot(snapshot);
    this.sql.deleteEntriesThrough.run(snapshot.metadata.index);
  }

  private putSnapshot(snapshot: Snapshot): void {
    const { index, term, confState } = snapshot.metadata;
    const confStateJson = encodeConfState(confState);
    const checksum = snapshotChecksum(snapshot.metadata, confStateJson, snapshot.data);
    this.sql.putSnapshot.run(index, term, confStateJson, toBuffer(snapshot.data), checksum);
  }

  private view(): LogView {
    const snapshot = this.readSnapshot();
    const snapshotIndex = snapshot?.metadata.index ?? 0;
    const last = (this.sql.lastIndex.get() as Row).last;
    return {
      hardState: this.readHardState(),
      snapshot: snapshot === null ? null : { index: snapshotIndex, term: snapshot.metadata.term },
      lastIndex: typeof last === "number" ? last : snapshotIndex,
      termAt: (index) => {
        const row = this.sql.termAt.get(index) as Row | undefined;
        return typeof row?.term === "number" ? row.term : null;
      },
    };
  }

  private readState(): PersistedState {
    const hardState = this.readHardState();
    const snapshot = this.readSnapshot();
    const entries = (this.sql.allEntries.all() as Row[]).map((row) => this.decodeEntry(row));
    const state: PersistedState = { hardState, snapshot, entries };
    verifyLoadedState(state, this.where);
    return state;
  }

  private readHardState(): HardState {
    const row = this.sql.hardState.get() as Row | undefined;
    if (row === undefined) return EMPTY_HARD_STATE;
    const { term, vote, commit_index: commit, checksum } = row;
    if (!isSafeCount(term) || typeof vote !== "string" || !isSafeCount(commit)) {
      throw corruptError(this.where, "hard_state", "row has wrong types");
    }
    const hardState: HardState = { term, vote, commit };
    if (hardStateChecksum(hardState) !== checksum) {
      throw corruptError(this.where, "hard_state", "checksum mismatch");
    }
    return hardState;
  }

  private readSnapshot(): Snapshot | null {
    const row = this.sql.snapshot.get() as Row | undefined;
    if (row === undefined) return null;
    const { idx: index, term, conf_state: confStateJson, data, checksum } = row;
    if (!isSafeCount(index) || !isSafeCount(term) || typeof confStateJson !== "string") {
      throw corruptError(this.where, "snapshot", "row has wrong types");
    }
    if (!(data instanceof Uint8Array)) throw corruptError(this.where, "snapshot", "data type");
    if (snapshotChecksum({ index, term }, confStateJson, data) !== checksum) {
      throw corruptError(this.where, "snapshot", `index ${index}: checksum mismatch`);
    }
    const confState = decodeConfState(confStateJson, this.where);
    return { metadata: { index, term, confState }, data: new Uint8Array(data) };
  }

  private decodeEntry(row: Row): Entry {
    const { idx: index, term, type, data, checksum } = row;
    if (!isSafeCount(index) || !isSafeCount(term) || (type !== "normal" && type !== "config") || !(data instanceof Uint8Array)) {
      throw corruptError(this.where, "entries", `index ${String(index)}: row has wrong types`);
    }
    // A plain Uint8Array copy: callers compare and keep it without holding a Buffer view.
    const entry: Entry = { index, term, type, data: new Uint8Array(data) };
    if (entryChecksum(entry) !== checksum) {
      throw corruptError(this.where, "entries", `index ${index}: checksum mismatch`);
    }
    return entry;
  }
}

function configure(db: Database.Database): void {
  const journalMode = db.pragma("journal_mode = WAL", { simple: true });
  assert(journalMode === "wal", "SQLite refused WAL mode");
  db.pragma("synchronous = FULL"); // fsync the WAL on every commit: durable when save() returns
  const synchronous = db.pragma("synchronous", { simple: true });
  assert(synchronous === 2, "synchronous=FULL not applied");
  // Page-level damage (torn pages, a truncated file) is refused before any row is read.
  const check = db.pragma("quick_check", { simple: true });
  if (check !== "ok") throw new StorageCorruptError(`${db.name}: quick_check: ${String(check)}`);
  const version = db.pragma("user_version", { simple: true });
  if (version === 0) {
    db.transaction(() => {
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } else if (version !== SCHEMA_VERSION) {
    throw new Error(`${db.name}: schema version ${String(version)}, expected ${SCHEMA_VERSION}`);
  }
}

function prepareStatements(db: Database.Database) {
  return {
    identity: db.prepare("SELECT cluster_id, node_id, checksum FROM identity WHERE id = 1"),
    putIdentity: db.prepare("INSERT INTO identity (id, cluster_id, node_id, checksum) VALUES (1, ?, ?, ?)"),
    hardState: db.prepare("SELECT term, vote, commit_index, checksum FROM hard_state WHERE id = 1"),
    putHardState: db.prepare("INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index, checksum) " + "VALUES (1, ?, ?, ?, ?)"),
    snapshot: db.prepare("SELECT idx, term, conf_state, data, checksum FROM snapshot WHERE id = 1"),
    putSnapshot: db.prepare("INSERT OR REPLACE INTO snapshot (id, idx, term, conf_state, data, checksum) " + "VALUES (1, ?, ?, ?, ?, ?)"),
    allEntries: db.prepare("SELECT idx, term, type, data, checksum FROM entries ORDER BY idx"),
    lastIndex: db.prepare("SELECT MAX(idx) AS last FROM entries"),
    termAt: db.prepare("SELECT term FROM entries WHERE idx = ?"),
    putEntry: db.prepare("INSERT INTO entries (idx, term, type, data, checksum) VALUES (?, ?, ?, ?, ?)"),
    deleteEntriesFrom: db.prepare("DELETE FROM entries WHERE idx >= ?"),
    deleteEntriesThrough: db.prepare("DELETE FROM entries WHERE idx <= ?"),
    deleteAllEntries: db.prepare("DELETE FROM entries"),
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
