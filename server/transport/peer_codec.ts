// Message <-> the object shape @grpc/proto-loader produces for proto/tenure/v1/peer.proto.
//
// Pure conversion, no gRPC imports, so the in-memory transport can run the very same checks.
// Decoding takes `unknown` because the bytes came from another machine: every field is checked,
// and anything the Raft core would assert on (ids, safe integers, contiguous entries) is rejected
// here with a reason. The core treats a broken invariant as a bug and stops the process, so a
// malformed frame must never reach it.
//
// Loader options this shape assumes (see PEER_PROTO_LOADER_OPTIONS): keepCase (snake_case
// fields), longs: String (uint64 as decimal strings), enums: String, defaults, oneofs.

import type { Entry, EntryType, NodeId, Snapshot, ConfState } from "../core/types.ts";
import type { Message } from "../core/messages.ts";
import { NODE_ID_LENGTH_MAX, PEER_ENTRY_OVERHEAD_BYTES, PEER_MESSAGE_OVERHEAD_BYTES } from "../limits.ts";

export { NODE_ID_LENGTH_MAX };

export const PEER_PROTO_LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

export type WireEntryType = "ENTRY_TYPE_UNSPECIFIED" | "ENTRY_TYPE_NORMAL" | "ENTRY_TYPE_CONFIG";

export interface WireEntry {
  term: string;
  index: string;
  type: WireEntryType;
  data: Uint8Array;
}

export interface WireConfState {
  voters: string[];
  voters_outgoing: string[];
  learners: string[];
  learners_next: string[];
  witnesses: string[];
  auto_leave: boolean;
}

export interface WireSnapshot {
  metadata: { index: string; term: string; conf_state: WireConfState };
  data: Uint8Array;
}

export interface WireRaftMessage {
  from: string;
  to: string;
  term: string;
  append?: {
    prev_index: string;
    prev_term: string;
    entries: WireEntry[];
    commit: string;
    witness_floor: string;
    witness_floor_applied_index: string;
  };
  append_response?: { index: string; reject: boolean; reject_hint_index: string; reject_hint_term: string; recovering: boolean };
  heartbeat?: { commit: string; read_context: string; witness_floor: string; witness_floor_applied_index: string };
  heartbeat_response?: { read_context: string; recovering: boolean };
  vote?: { pre_vote: boolean; transfer: boolean; last_index: string; last_term: string };
  vote_response?: { pre_vote: boolean; reject: boolean; committed_index: string; committed_term: string };
  snapshot?: { snapshot: WireSnapshot };
  timeout_now?: Record<string, never>;
}

export interface WirePeerBatch {
  cluster_id: string;
  from: string;
  to: string;
  messages: WireRaftMessage[];
}

export type DecodeResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

export type BatchDecodeResult =
  | { readonly ok: true; readonly from: NodeId; readonly messages: readonly Message[] }
  | { readonly ok: false; readonly code: "FAILED_PRECONDITION" | "INVALID_ARGUMENT"; readonly reason: string };

// ---------------------------------------------------------------- encode

const u64 = (n: number): string => String(n);

function encodeEntry(e: Entry): WireEntry {
  return { term: u64(e.term), index: u64(e.index), type: e.type === "config" ? "ENTRY_TYPE_CONFIG" : "ENTRY_TYPE_NORMAL", data: e.data };
}

function encodeConfState(cs: ConfState): WireConfState {
  return {
    voters: [...cs.voters],
    voters_outgoing: [...cs.votersOutgoing],
    learners: [...cs.learners],
    learners_next: [...cs.learnersNext],
    witnesses: [...cs.witnesses],
    auto_leave: cs.autoLeave,
  };
}

export function encodeMessage(m: Message): WireRaftMessage {
  const head = { from: m.from, to: m.to, term: u64(m.term) };
  switch (m.kind) {
    case "append":
      return {
        ...head,
        append: {
          prev_index: u64(m.prevIndex),
          prev_term: u64(m.prevTerm),
          entries: m.entries.map(encodeEntry),
          commit: u64(m.commit),
          witness_floor: u64(m.witnessFloor),
          witness_floor_applied_index: u64(m.witnessFloorAppliedIndex ?? 0),
        },
      };
    case "appendResponse":
      return {
        ...head,
        append_response: {
          index: u64(m.index),
          reject: m.reject,
          reject_hint_index: u64(m.rejectHintIndex),
          reject_hint_term: u64(m.rejectHintTerm),
          recovering: m.recovering === true,
        },
      };
    case "heartbeat":
      return {
        ...head,
        heartbeat: {
          commit: u64(m.commit),
          read_context: u64(m.readContext),
          witness_floor: u64(m.witnessFloor),
          witness_floor_applied_index: u64(m.witnessFloorAppliedIndex ?? 0),
        },
      };
    case "heartbeatResponse":
      return { ...head, heartbeat_response: { read_context: u64(m.readContext), recovering: m.recovering === true } };
    case "vote":
      return { ...head, vote: { pre_vote: m.preVote, transfer: m.transfer, last_index: u64(m.lastIndex), last_term: u64(m.lastTerm) } };
    case "voteResponse":
      return {
        ...head,
        vote_response: {
          pre_vote: m.preVote,
          reject: m.reject,
          committed_index: u64(m.committedIndex ?? 0),
          committed_term: u64(m.committedTerm ?? 0),
        },
      };
    case "snapshot": {
      const s = m.snapshot;
      const metadata = { index: u64(s.metadata.index), term: u64(s.metadata.term), conf_state: encodeConfState(s.metadata.confState) };
      return { ...head, snapshot: { snapshot: { metadata, data: s.data } } };
    }
    case "timeoutNow":
      return { ...head, timeout_now: {} };
  }
}

export function encodeBatch(header: { clusterId: string; from: NodeId; to: NodeId }, messages: readonly Message[]): WirePeerBatch {
  return { cluster_id: header.clusterId, from: header.from, to: header.to, messages: messages.map(encodeMessage) };
}

/**
 * Upper bound of a message's encoded size, used to cut batches below the gRPC frame limit
 * without encoding twice. Over-estimates on purpose (varints are counted at their widest).
 * server/limits.ts sizes the largest append batch with the same constants.
 */
export function estimateMessageBytes(m: Message): number {
  const fixed = PEER_MESSAGE_OVERHEAD_BYTES + m.from.length * 3 + m.to.length * 3;
  if (m.kind === "append") return m.entries.reduce((sum, e) => sum + PEER_ENTRY_OVERHEAD_BYTES + e.data.byteLength, fixed);
  if (m.kind !== "snapshot") return fixed;
  const cs = m.snapshot.metadata.confState;
  const ids = [...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext, ...cs.witnesses];
  return ids.reduce((sum, id) => sum + 8 + id.length * 3, fixed + 64 + m.snapshot.data.byteLength);
}

// ---------------------------------------------------------------- decode

/** Thrown only inside this module and always turned into a DecodeResult. */
class WireError extends Error {}

function fail(reason: string): never {
  throw new WireError(reason);
}

function record(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`${what} is not an object`);
  return raw as Record<string, unknown>;
}

/** uint64 from the loader (decimal string) or a number; absent means 0 as in proto3. */
/** The optional witness_floor_applied_index (0 on the wire = absent in the Message: the same meaning). */
function floorAppliedIndex(b: Record<string, unknown>, what: string): { witnessFloorAppliedIndex?: number } {
  const n = readU64(b, "witness_floor_applied_index", what);
  return n > 0 ? { witnessFloorAppliedIndex: n } : {};
}

/** A vote response's commit hint (messages.ts); absent when the sender gave none (index 0). */
function commitHint(b: Record<string, unknown>, what: string): { committedIndex?: number; committedTerm?: number } {
  const index = readU64(b, "committed_index", what);
  return index > 0 ? { committedIndex: index, committedTerm: readU64(b, "committed_term", what) } : {};
}

/** The sender is recovering lost log data (messages.ts); absent when false, as the core sends it. */
function recoveringFlag(b: Record<string, unknown>, what: string): { recovering?: true } {
  return readBool(b, "recovering", what) ? { recovering: true } : {};
}

function readU64(obj: Record<string, unknown>, key: string, what: string): number {
  const v = obj[key];
  if (v === undefined || v === null) return 0;
  let n: number;
  if (typeof v === "string") {
    if (!/^\d{1,16}$/.test(v)) fail(`${what}.${key} is not a safe unsigned integer: ${v.slice(0, 24)}`);
    n = Number(v);
  } else if (typeof v === "number") {
    n = v;
  } else {
    fail(`${what}.${key} has type ${typeof v}`);
  }
  if (!Number.isSafeInteger(n) || n < 0) fail(`${what}.${key} is not a safe unsigned integer: ${String(v).slice(0, 24)}`);
  return n;
}

function readBool(obj: Record<string, unknown>, key: string, what: string): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") fail(`${what}.${key} is not a boolean`);
  return v;
}

/** Copies the bytes: the loader's Buffer is a view into the whole received frame. */
function readBytes(obj: Record<string, unknown>, key: string, what: string): Uint8Array {
  const v = obj[key];
  if (v === undefined || v === null) return new Uint8Array(0);
  if (!(v instanceof Uint8Array)) fail(`${what}.${key} is not bytes`);
  return new Uint8Array(v);
}

function checkNodeId(v: unknown, what: string): NodeId {
  if (typeof v !== "string" || v.length === 0) fail(`${what} must be a non-empty node id`);
  if (v.length > NODE_ID_LENGTH_MAX) fail(`${what} is longer than ${NODE_ID_LENGTH_MAX}`);
  return v;
}

function readList(obj: Record<string, unknown>, key: string, what: string): unknown[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${what}.${key} is not a list`);
  return v;
}

function readIds(obj: Record<string, unknown>, key: string, what: string): NodeId[] {
  const ids = readList(obj, key, what).map((id, i) => checkNodeId(id, `${what}.${key}[${i}]`));
  if (new Set(ids).size !== ids.length) fail(`${what}.${key} has duplicates`);
  return ids;
}

function decodeEntry(raw: unknown, what: string): Entry {
  const o = record(raw, what);
  let type: EntryType;
  if (o["type"] === "ENTRY_TYPE_NORMAL") type = "normal";
  else if (o["type"] === "ENTRY_TYPE_CONFIG") type = "config";
  else fail(`${what}.type is invalid: ${String(o["type"]).slice(0, 32)}`);
  return { term: readU64(o, "term", what), index: readU64(o, "index", what), type, data: readBytes(o, "data", what) };
}

function decodeConfState(raw: unknown, what: string): ConfState {
  const o = record(raw, what);
  return {
    voters: readIds(o, "voters", what),
    votersOutgoing: readIds(o, "voters_outgoing", what),
    learners: readIds(o, "learners", what),
    learnersNext: readIds(o, "learners_next", what),
    witnesses: readIds(o, "witnesses", what),
    autoLeave: readBool(o, "auto_leave", what),
  };
}

function decodeSnapshot(raw: unknown, term: number): Snapshot {
  const s = record(raw, "snapshot");
  const md = record(s["metadata"], "snapshot.metadata");
  const index = readU64(md, "index", "snapshot.metadata");
  const snapTerm = readU64(md, "term", "snapshot.metadata");
  // Index 0 / term 0 is the bootstrap snapshot (the first configuration, no image): what a member
  // whose store is empty (storage recovery after raft.db was lost) learns the membership from.
  if ((index === 0) !== (snapTerm === 0)) fail("snapshot.metadata index and term must both be 0 (bootstrap) or both >= 1");
  if (snapTerm > term) fail(`snapshot term ${snapTerm} is above the message term ${term}`);
  const confState = decodeConfState(md["conf_state"], "snapshot.metadata.conf_state");
  if (confState.voters.length === 0) fail("snapshot.metadata.conf_state has no voters");
  return { metadata: { index, term: snapTerm, confState }, data: readBytes(s, "data", "snapshot") };
}

/** The shape maybeAppend relies on: entries extend prevIndex one by one, terms never go back. */
function checkEntries(entries: readonly Entry[], prevIndex: number, prevTerm: number, term: number): void {
  let lastTerm = prevTerm;
  entries.forEach((e, i) => {
    if (e.index !== prevIndex + 1 + i) fail(`append.entries[${i}] has index ${e.index}, expected ${prevIndex + 1 + i}`);
    if (e.term < Math.max(1, lastTerm) || e.term > term) fail(`append.entries[${i}] has term ${e.term} out of order`);
    lastTerm = e.term;
  });
}

const BODIES = [
  "append",
  "append_response",
  "heartbeat",
  "heartbeat_response",
  "vote",
  "vote_response",
  "snapshot",
  "timeout_now",
] as const;

function decodeMessageOrThrow(raw: unknown): Message {
  const o = record(raw, "message");
  const from = checkNodeId(o["from"], "message.from");
  const to = checkNodeId(o["to"], "message.to");
  if (from === to) fail("message.from equals message.to");
  const term = readU64(o, "term", "message");
  const present = BODIES.filter((k) => o[k] !== undefined && o[k] !== null);
  if (present.length !== 1) fail(present.length === 0 ? "message has no body" : `message has ${present.length} bodies`);
  const kind = present[0] ?? fail("message has no body");
  const head = { from, to, term };
  const b = record(o[kind], `message.${kind}`);
  switch (kind) {
    case "append": {
      const prevIndex = readU64(b, "prev_index", kind);
      const prevTerm = readU64(b, "prev_term", kind);
      if (prevTerm > term) fail(`append.prev_term ${prevTerm} is above the message term ${term}`);
      const entries = readList(b, "entries", kind).map((e, i) => decodeEntry(e, `append.entries[${i}]`));
      checkEntries(entries, prevIndex, prevTerm, term);
      if (!Number.isSafeInteger(prevIndex + entries.length)) fail("append runs past the largest safe index");
      const witnessFloor = readU64(b, "witness_floor", kind);
      const floorApplied = floorAppliedIndex(b, kind);
      return { ...head, kind: "append", prevIndex, prevTerm, entries, commit: readU64(b, "commit", kind), witnessFloor, ...floorApplied };
    }
    case "append_response":
      return {
        ...head,
        kind: "appendResponse",
        index: readU64(b, "index", kind),
        reject: readBool(b, "reject", kind),
        rejectHintIndex: readU64(b, "reject_hint_index", kind),
        rejectHintTerm: readU64(b, "reject_hint_term", kind),
        ...recoveringFlag(b, kind),
      };
    case "heartbeat":
      return {
        ...head,
        kind: "heartbeat",
        commit: readU64(b, "commit", kind),
        readContext: readU64(b, "read_context", kind),
        witnessFloor: readU64(b, "witness_floor", kind),
        ...floorAppliedIndex(b, kind),
      };
    case "heartbeat_response":
      return { ...head, kind: "heartbeatResponse", readContext: readU64(b, "read_context", kind), ...recoveringFlag(b, kind) };
    case "vote":
      return {
        ...head,
        kind: "vote",
        preVote: readBool(b, "pre_vote", kind),
        transfer: readBool(b, "transfer", kind),
        lastIndex: readU64(b, "last_index", kind),
        lastTerm: readU64(b, "last_term", kind),
      };
    case "vote_response":
      return {
        ...head,
        kind: "voteResponse",
        preVote: readBool(b, "pre_vote", kind),
        reject: readBool(b, "reject", kind),
        ...commitHint(b, kind),
      };
    case "snapshot":
      return { ...head, kind: "snapshot", snapshot: decodeSnapshot(b["snapshot"], term) };
    case "timeout_now":
      return { ...head, kind: "timeoutNow" };
  }
}

export function decodeMessage(raw: unknown): DecodeResult<Message> {
  try {
    return { ok: true, value: decodeMessageOrThrow(raw) };
  } catch (err) {
    if (err instanceof WireError) return { ok: false, reason: err.message };
    // A getter or proxy on a hostile object could throw anything: still a rejection, not a crash.
    return { ok: false, reason: `undecodable message: ${String(err)}` };
  }
}

/**
 * Checks a whole frame for this receiver. A batch is accepted or rejected as a unit, so the core
 * never sees half of a sender's burst. Addressing problems are FAILED_PRECONDITION (the sender is
 * misconfigured); everything else is INVALID_ARGUMENT.
 */
export function decodeBatch(raw: unknown, expect: { clusterId: string; selfId: NodeId }): BatchDecodeResult {
  if (typeof raw !== "object" || raw === null) return { ok: false, code: "INVALID_ARGUMENT", reason: "batch is not an object" };
  const o = raw as Record<string, unknown>;
  if (o["cluster_id"] !== expect.clusterId) {
    return {
      ok: false,
      code: "FAILED_PRECONDITION",
      reason: `cluster id ${JSON.stringify(String(o["cluster_id"]).slice(0, 64))} is not ${JSON.stringify(expect.clusterId)}`,
    };
  }
  if (o["to"] !== expect.selfId) {
    return {
      ok: false,
      code: "FAILED_PRECONDITION",
      reason: `batch for ${JSON.stringify(String(o["to"]).slice(0, 64))} reached ${JSON.stringify(expect.selfId)}`,
    };
  }
  const from = o["from"];
  if (typeof from !== "string" || from.length === 0 || from.length > NODE_ID_LENGTH_MAX) {
    return { ok: false, code: "INVALID_ARGUMENT", reason: "batch.from is not a valid node id" };
  }
  const list = o["messages"];
  if (!Array.isArray(list) || list.length === 0) return { ok: false, code: "INVALID_ARGUMENT", reason: "batch has no messages" };
  const messages: Message[] = [];
  for (const [i, item] of list.entries()) {
    const r = decodeMessage(item);
    if (!r.ok) return { ok: false, code: "INVALID_ARGUMENT", reason: `messages[${i}]: ${r.reason}` };
    if (r.value.to !== expect.selfId) return { ok: false, code: "FAILED_PRECONDITION", reason: `messages[${i}] is for ${r.value.to}` };
    if (r.value.from !== from)
      return { ok: false, code: "INVALID_ARGUMENT", reason: `messages[${i}] is from ${r.value.from}, batch from ${from}` };
    messages.push(r.value);
  }
  return { ok: true, from, messages };
}
