// Reading raft.db's rows back, checksum-verified, through any connection: SqliteStorage's own
// (load) and the read-only one that inspects the store before it is opened for writing
// (sqlite_inspect.ts), so damage to a row is found before a read-write connection could
// checkpoint the WAL into a damaged file, and the store can still be moved aside as it was.

import type Database from "better-sqlite3";
import { EMPTY_HARD_STATE } from "../core/types.ts";
import type { Entry, HardState, PersistedState, Snapshot, SnapshotMetadata } from "../core/types.ts";
import { entryChecksum, hardStateChecksum, identityChecksum, snapshotChecksum } from "./checksum.ts";
import type { StorageIdentity } from "./raft_storage.ts";
import { corruptError, decodeConfState, isSafeCount, verifyLoadedState } from "./storage_checks.ts";

type Row = Record<string, unknown>;

/** The SELECTs the state is read with; logStart is null where the table does not exist yet. */
export interface ReadStatements {
  readonly hardState: Database.Statement;
  readonly snapshot: Database.Statement;
  readonly allEntries: Database.Statement;
  readonly logStart: Database.Statement | null;
  readonly identity: Database.Statement;
}

export function prepareReads(db: Database.Database, logStartTable: boolean): ReadStatements {
  return {
    hardState: db.prepare("SELECT term, vote, commit_index, checksum FROM hard_state WHERE id = 1"),
    snapshot: db.prepare("SELECT idx, term, conf_state, data, checksum FROM snapshot WHERE id = 1"),
    allEntries: db.prepare("SELECT idx, term, type, data, checksum FROM entries ORDER BY idx"),
    logStart: logStartTable ? db.prepare("SELECT idx, term, conf_state, checksum FROM log_start WHERE id = 1") : null,
    identity: db.prepare("SELECT cluster_id, node_id, checksum FROM identity WHERE id = 1"),
  };
}

/** Every row, verified (checksums, then verifyLoadedState); throws StorageCorruptError. */
export function readVerifiedState(reads: ReadStatements, where: string): PersistedState {
  const hardState = decodeHardStateRow(reads.hardState.get() as Row | undefined, where);
  const snapshot = decodeSnapshotRow(reads.snapshot.get() as Row | undefined, where);
  const entries = (reads.allEntries.all() as Row[]).map((row) => decodeEntryRow(row, where));
  const logStart = decodeLogStartRow(reads.logStart?.get() as Row | undefined, where);
  const state: PersistedState = logStart === null ? { hardState, snapshot, entries } : { hardState, snapshot, entries, logStart };
  verifyLoadedState(state, where);
  return state;
}

/** The hard_state row, checksum-verified; the empty hard state when there is no row. */
export function decodeHardStateRow(row: Row | undefined, where: string): HardState {
  if (row === undefined) return EMPTY_HARD_STATE;
  const { term, vote, commit_index: commit, checksum } = row;
  if (!isSafeCount(term) || typeof vote !== "string" || !isSafeCount(commit)) {
    throw corruptError(where, "hard_state", "row has wrong types");
  }
  const hardState: HardState = { term, vote, commit };
  if (hardStateChecksum(hardState) !== checksum) throw corruptError(where, "hard_state", "checksum mismatch");
  return hardState;
}

export function decodeSnapshotRow(row: Row | undefined, where: string): Snapshot | null {
  if (row === undefined) return null;
  const { idx: index, term, conf_state: confStateJson, data, checksum } = row;
  if (!isSafeCount(index) || !isSafeCount(term) || typeof confStateJson !== "string") {
    throw corruptError(where, "snapshot", "row has wrong types");
  }
  if (!(data instanceof Uint8Array)) throw corruptError(where, "snapshot", "data type");
  if (snapshotChecksum({ index, term }, confStateJson, data) !== checksum) {
    throw corruptError(where, "snapshot", `index ${index}: checksum mismatch`);
  }
  const confState = decodeConfState(confStateJson, where);
  return { metadata: { index, term, confState }, data: new Uint8Array(data) };
}

export function decodeLogStartRow(row: Row | undefined, where: string): SnapshotMetadata | null {
  if (row === undefined) return null;
  const { idx: index, term, conf_state: confStateJson, checksum } = row;
  if (!isSafeCount(index) || !isSafeCount(term) || typeof confStateJson !== "string") {
    throw corruptError(where, "log_start", "row has wrong types");
  }
  if (snapshotChecksum({ index, term }, confStateJson, new Uint8Array(0)) !== checksum) {
    throw corruptError(where, "log_start", `index ${index}: checksum mismatch`);
  }
  return { index, term, confState: decodeConfState(confStateJson, where) };
}

export function decodeEntryRow(row: Row, where: string): Entry {
  const { idx: index, term, type, data, checksum } = row;
  if (!isSafeCount(index) || !isSafeCount(term) || (type !== "normal" && type !== "config") || !(data instanceof Uint8Array)) {
    throw corruptError(where, "entries", `index ${String(index)}: row has wrong types`);
  }
  // A plain Uint8Array copy: callers compare and keep it without holding a Buffer view.
  const entry: Entry = { index, term, type, data: new Uint8Array(data) };
  if (entryChecksum(entry) !== checksum) {
    throw corruptError(where, "entries", `index ${index}: checksum mismatch`);
  }
  return entry;
}

export function decodeIdentityRow(row: Row | undefined, where: string): StorageIdentity | null {
  if (row === undefined) return null;
  const { cluster_id: clusterId, node_id: nodeId, checksum } = row;
  if (typeof clusterId !== "string" || typeof nodeId !== "string") {
    throw corruptError(where, "identity", "row has wrong types");
  }
  const identity = { clusterId, nodeId };
  if (identityChecksum(identity) !== checksum) {
    throw corruptError(where, "identity", "checksum mismatch");
  }
  return identity;
}
