// <dataDir>/ack_record: a small durable record, kept OUTSIDE SQLite, of what this member has made
// durable and may have acknowledged: term and vote (exact: rewritten on every change, before
// save() returns, so before any message that depends on them), commit and a last-durable-index
// watermark (a lower bound, rewritten every few hundred entries or second), whether the store is
// open (so a missing WAL after a crash is seen), the WAL's salts and size when it was written,
// and (v2) the member's identity, so a store whose raft.db is lost can be rebuilt empty under the
// same cluster and node id and recover from its peers (sqlite_storage.ts, README "Recovery").
//
// Why outside SQLite: SQLite drops everything after the first bad WAL frame without a word, and
// term, vote and log roll back together, so nothing inside the database can notice. At open the
// store compares itself with this record (startup_checks.ts): less than it says = lost data.
//
// Durable write: write ack_record.tmp, fsync it, rename over ack_record, fsync the directory.
// rename is atomic, so a reader sees the old record or the new one, never half of one; a damaged
// record is therefore never a torn write, and is refused. Cost: two fsyncs per write (bench:
// tools/bench_storage.ts).
//
// Format: one line, `tenure-ack-record v2 crc32=<8 hex> <json>`, the CRC32 over the JSON text.
// v1 (written before issue 13 point 2) has no identity; it is read as identity null and the next
// write is v2.

import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { assert } from "../core/assert.ts";
import type { Index, NodeId, Term } from "../core/types.ts";
import { crc32 } from "./checksum.ts";
import { replaceFileDurably, TEMP_SUFFIX } from "./durable_file.ts";
import type { StorageIdentity } from "./raft_storage.ts";
import type { WalSalts } from "./wal_check.ts";

export const ACK_RECORD_FILE_NAME = "ack_record";
const PREFIX = "tenure-ack-record v2 crc32=";
const PREFIX_V1 = "tenure-ack-record v1 crc32=";
const RECORD_BYTES_MAX = 4096;

/** The WAL as it was when the record was written (null: no WAL header yet, or checkpointed away). */
export interface RecordedWal extends WalSalts {
  readonly bytes: number;
}

export interface AckRecord {
  /** +1 per write: tells which write an operator is looking at. */
  readonly generation: number;
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: Index;
  /** Every entry up to here (or a snapshot covering it) was durable when this was written. */
  readonly lastIndex: Index;
  /** true from open to a clean close: while open, SQLite's WAL file exists. */
  readonly open: boolean;
  readonly wal: RecordedWal | null;
  /** Whose store this is (raft.db's identity row); null before it is set, and in a v1 record. */
  readonly identity: StorageIdentity | null;
}

export type AckRecordRead =
  | { readonly kind: "absent" }
  | { readonly kind: "ok"; readonly record: AckRecord }
  | { readonly kind: "corrupt"; readonly detail: string };

export function ackRecordPath(dataDir: string): string {
  return path.join(dataDir, ACK_RECORD_FILE_NAME);
}

export function encodeAckRecord(record: AckRecord): string {
  const { generation, term, vote, commit, lastIndex, open, wal, identity } = record;
  const json = JSON.stringify({ generation, term, vote, commit, lastIndex, open, wal, identity });
  return `${PREFIX}${crc32(new TextEncoder().encode(json)).toString(16).padStart(8, "0")} ${json}\n`;
}

export function decodeAckRecord(text: string): AckRecord | string {
  const v1 = text.startsWith(PREFIX_V1);
  if ((!v1 && !text.startsWith(PREFIX)) || !text.endsWith("\n")) return "not an ack record line";
  const crcText = text.slice(PREFIX.length, PREFIX.length + 8);
  const json = text.slice(PREFIX.length + 9, -1);
  if (!/^[0-9a-f]{8}$/.test(crcText) || text[PREFIX.length + 8] !== " ") return "malformed checksum field";
  if (Number.parseInt(crcText, 16) !== crc32(new TextEncoder().encode(json))) return "checksum mismatch";
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return "checksum matches but JSON does not parse";
  }
  return shapeOf(value, v1) ?? "fields have wrong types";
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function shapeOf(value: unknown, v1: boolean): AckRecord | null {
  if (typeof value !== "object" || value === null) return null;
  const o = value as Record<string, unknown>;
  const { generation, term, vote, commit, lastIndex, open, wal } = o;
  if (!isCount(generation) || !isCount(term) || typeof vote !== "string" || !isCount(commit) || !isCount(lastIndex)) return null;
  if (typeof open !== "boolean") return null;
  if (commit > lastIndex) return null;
  const identity = v1 ? null : identityOf(o["identity"]);
  if (identity === undefined) return null;
  const base = { generation, term, vote, commit, lastIndex, open, identity };
  if (wal === null) return { ...base, wal: null };
  if (typeof wal !== "object") return null;
  const w = wal as Record<string, unknown>;
  if (!isCount(w["salt1"]) || !isCount(w["salt2"]) || !isCount(w["bytes"])) return null;
  return { ...base, wal: { salt1: w["salt1"], salt2: w["salt2"], bytes: w["bytes"] } };
}

/** A v2 record's identity: null, or both ids as strings; undefined for anything else. */
function identityOf(value: unknown): StorageIdentity | null | undefined {
  if (value === null) return null;
  if (typeof value !== "object" || value === undefined) return undefined;
  const { clusterId, nodeId } = value as Record<string, unknown>;
  if (typeof clusterId !== "string" || typeof nodeId !== "string" || clusterId === "" || nodeId === "") return undefined;
  return { clusterId, nodeId };
}

export function readAckRecord(dataDir: string): AckRecordRead {
  let text: string;
  try {
    text = readFileSync(ackRecordPath(dataDir), "utf8");
  } catch (error) {
    if (typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT") return { kind: "absent" };
    throw error;
  }
  if (text.length > RECORD_BYTES_MAX) return { kind: "corrupt", detail: `${text.length} bytes (at most ${RECORD_BYTES_MAX})` };
  const decoded = decodeAckRecord(text);
  return typeof decoded === "string" ? { kind: "corrupt", detail: decoded } : { kind: "ok", record: decoded };
}

/** Writes the record durably (temp + fsync + rename + fsync dir); keeps the directory open. */
export class AckRecordFile {
  private dirFd: number | null;

  constructor(readonly dataDir: string) {
    this.dirFd = openSync(dataDir, "r");
    rmSync(ackRecordPath(dataDir) + TEMP_SUFFIX, { force: true }); // a write a crash interrupted
  }

  write(record: AckRecord): void {
    assert(this.dirFd !== null, `${this.dataDir}: ack record written after close`);
    const text = encodeAckRecord(record);
    const decoded = decodeAckRecord(text);
    assert(typeof decoded !== "string", `ack record does not round trip: ${String(decoded)}`); // pair assertion
    replaceFileDurably(ackRecordPath(this.dataDir), text, { fd: this.dirFd });
  }

  close(): void {
    if (this.dirFd === null) return;
    closeSync(this.dirFd);
    this.dirFd = null;
  }
}
