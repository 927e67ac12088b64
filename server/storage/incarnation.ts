// Two small durable files outside SQLite (issue 13 point 3, "member incarnations"):
//
// - `<dataDir>/incarnation`: this member's incarnation, 128 random bits made when the data
//   directory is first initialised (server/data_dir.ts draws them). A wiped disk gets a new one,
//   so the other members can tell a member that lost its data from one that restarted.
// - `<dataDir>/peer_incarnations`: the incarnation of every peer id this member accepted
//   messages from (trust on first use, server/transport/peer_incarnations.ts).
//
// Their own files, not raft.db rows: a member whose raft.db is corrupt moves it aside and
// recovers from the quorum, and it is still the same member; and SQLite's silent WAL rollback
// (ack_record.ts) must not roll an incarnation back either.
//
// Durable write as ack_record.ts: write <name>.tmp, fsync it, rename over <name>, fsync the
// directory; a reader sees the old file or the new one, never half of one, so a damaged file is
// never a torn write and is refused. Format: one line, `tenure-<kind> v1 crc32=<8 hex> <json>`,
// the CRC32 over the JSON text.

import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { assert } from "../core/assert.ts";
import type { NodeId } from "../core/types.ts";
import { crc32 } from "./checksum.ts";
import { replaceFileDurably, TEMP_SUFFIX } from "./durable_file.ts";

export const INCARNATION_FILE_NAME = "incarnation";
export const PEER_INCARNATIONS_FILE_NAME = "peer_incarnations";
/** An incarnation file is about 90 bytes; a peer table of 1000 members is about 60 KiB. */
const FILE_BYTES_MAX = 1024 * 1024;
const PEERS_MAX = 10_000;

/** 128 bits as 32 lowercase hex digits (a UUID without its dashes). */
const INCARNATION_PATTERN = /^[0-9a-f]{32}$/;

export function isIncarnation(value: unknown): value is string {
  return typeof value === "string" && INCARNATION_PATTERN.test(value);
}

export type DurableRead<T> =
  | { readonly kind: "absent" }
  | { readonly kind: "ok"; readonly value: T }
  | { readonly kind: "corrupt"; readonly detail: string };

function prefixOf(kind: string): string {
  return `tenure-${kind} v1 crc32=`;
}

export function encodeRecordLine(kind: string, value: unknown): string {
  const json = JSON.stringify(value);
  return `${prefixOf(kind)}${crc32(new TextEncoder().encode(json)).toString(16).padStart(8, "0")} ${json}\n`;
}

/** The JSON value of a record line of `kind`, or why the line is not one. */
export function decodeRecordLine(kind: string, text: string): { readonly value: unknown } | string {
  const prefix = prefixOf(kind);
  if (!text.startsWith(prefix) || !text.endsWith("\n")) return `not a ${kind} line`;
  const crcText = text.slice(prefix.length, prefix.length + 8);
  if (!/^[0-9a-f]{8}$/.test(crcText) || text[prefix.length + 8] !== " ") return "malformed checksum field";
  const json = text.slice(prefix.length + 9, -1);
  if (Number.parseInt(crcText, 16) !== crc32(new TextEncoder().encode(json))) return "checksum mismatch";
  try {
    return { value: JSON.parse(json) as unknown };
  } catch {
    return "checksum matches but JSON does not parse";
  }
}

function readRecord<T>(file: string, kind: string, shape: (value: unknown) => T | null): DurableRead<T> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if (typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT") return { kind: "absent" };
    throw error;
  }
  if (text.length > FILE_BYTES_MAX) return { kind: "corrupt", detail: `${text.length} bytes (at most ${FILE_BYTES_MAX})` };
  const decoded = decodeRecordLine(kind, text);
  if (typeof decoded === "string") return { kind: "corrupt", detail: decoded };
  const value = shape(decoded.value);
  return value === null ? { kind: "corrupt", detail: "fields have wrong types" } : { kind: "ok", value };
}

/** temp + fsync + rename + fsync dir: the file is the old one or the new one after any crash. */
function writeRecord(dataDir: string, name: string, text: string): void {
  assert(text.length <= FILE_BYTES_MAX, `${name}: ${text.length} bytes is above ${FILE_BYTES_MAX}`);
  replaceFileDurably(path.join(dataDir, name), text, { path: dataDir });
}

// ---------------------------------------------------------------- this member's incarnation

const INCARNATION_KIND = "incarnation";

function incarnationShape(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return null;
  const incarnation = (value as Record<string, unknown>)["incarnation"];
  return isIncarnation(incarnation) ? incarnation : null;
}

export function readIncarnation(dataDir: string): DurableRead<string> {
  return readRecord(path.join(dataDir, INCARNATION_FILE_NAME), INCARNATION_KIND, incarnationShape);
}

export function writeIncarnation(dataDir: string, incarnation: string): void {
  assert(isIncarnation(incarnation), `not an incarnation: ${JSON.stringify(incarnation)}`);
  const text = encodeRecordLine(INCARNATION_KIND, { incarnation });
  const back = decodeRecordLine(INCARNATION_KIND, text);
  assert(typeof back !== "string" && incarnationShape(back.value) === incarnation, "incarnation record does not round trip");
  rmSync(path.join(dataDir, INCARNATION_FILE_NAME + TEMP_SUFFIX), { force: true });
  writeRecord(dataDir, INCARNATION_FILE_NAME, text);
}

// ---------------------------------------------------------------- the peers' incarnations

const PEERS_KIND = "peer-incarnations";

function peersShape(value: unknown): ReadonlyMap<NodeId, string> | null {
  if (typeof value !== "object" || value === null) return null;
  const peers = (value as Record<string, unknown>)["peers"];
  if (typeof peers !== "object" || peers === null || Array.isArray(peers)) return null;
  const entries = Object.entries(peers as Record<string, unknown>);
  if (entries.length > PEERS_MAX) return null;
  const out = new Map<NodeId, string>();
  for (const [id, incarnation] of entries) {
    if (id.length === 0 || !isIncarnation(incarnation)) return null;
    out.set(id, incarnation);
  }
  return out;
}

export function readPeerIncarnations(dataDir: string): DurableRead<ReadonlyMap<NodeId, string>> {
  return readRecord(path.join(dataDir, PEER_INCARNATIONS_FILE_NAME), PEERS_KIND, peersShape);
}

export function writePeerIncarnations(dataDir: string, peers: ReadonlyMap<NodeId, string>): void {
  assert(peers.size <= PEERS_MAX, `${peers.size} peer incarnations is above ${PEERS_MAX}`);
  const sorted = Object.fromEntries([...peers].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  const text = encodeRecordLine(PEERS_KIND, { peers: sorted });
  const back = decodeRecordLine(PEERS_KIND, text);
  assert(typeof back !== "string" && peersShape(back.value)?.size === peers.size, "peer incarnations do not round trip");
  writeRecord(dataDir, PEER_INCARNATIONS_FILE_NAME, text);
}
