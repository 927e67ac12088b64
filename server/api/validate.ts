// Request validation, before anything reaches the node. Every field is typed and ranged, and an
// INVALID_ARGUMENT message names the field (as spelled in the proto) and what was wrong:
// "name must be 1..256 bytes, got 300". Limits come from the state machine's StateLimits, so the
// api rejects exactly what the machine would (the machine still checks: defence in depth).
//
// Requests arrive from @grpc/proto-loader as untyped objects (PROTO_LOADER_OPTIONS: uint64 as
// decimal strings, missing fields as defaults); a body that is not valid protobuf arrives as a
// MalformedRequest (see tolerantDeserializer) instead of grpc-js's INTERNAL.

import type { StateLimits } from "../state/limits.ts";
import { FREEZE_REASON_BYTES_MAX, utf8ByteLength } from "../state/limits.ts";
import { invalidArgument } from "./status_map.ts";

/** A blocking wait longer than this is better re-issued by the client. */
export const WAIT_TIMEOUT_MS_MAX = 3_600_000;
export const LIST_LIMIT_DEFAULT = 1_000;
export const LIST_LIMIT_MAX = 10_000;
export const NODE_ID_CHARS_MAX = 64;
/**
 * The largest seq of a request: 2^53 - 2. A seq must leave a successor for the client's next
 * request (seqs are JavaScript safe integers, 2^53 - 1 at most): a session that accepted
 * 2^53 - 1 could never be used again. A blocking call reserves seq + 1 for the withdrawal of its
 * wait (errors.proto), so its seq is at most 2^53 - 3. Beyond, a client starts a new client_id
 * (the SDK does, client-sdk/sessions.ts).
 */
export const SEQ_MAX = Number.MAX_SAFE_INTEGER - 1;

const NODE_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
const CLIENT_ID_PATTERN = /^[\x21-\x7e]+$/;
// C0 and C1 control characters (Unicode category Cc).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is this pattern's purpose
const CONTROL_CHAR = /[\u0000-\u001f\u007f-\u009f]/;

export class MalformedRequest {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {}
}

/** Wraps a proto-loader deserializer so garbage bytes become INVALID_ARGUMENT, not INTERNAL. */
export function tolerantDeserializer(typeName: string, deserialize: (bytes: Buffer) => object) {
  return (bytes: Buffer): object => {
    try {
      return deserialize(bytes);
    } catch (error) {
      return new MalformedRequest(typeName, error instanceof Error ? error.message : String(error));
    }
  };
}

interface Session {
  readonly clientId: string;
  readonly seq: number;
}

function snake(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Typed accessors over one decoded request; each throws INVALID_ARGUMENT with a clear message. */
export class Fields {
  private readonly record: Readonly<Record<string, unknown>>;

  constructor(
    raw: unknown,
    private readonly limits: StateLimits,
  ) {
    if (raw instanceof MalformedRequest) {
      throw invalidArgument(`request is not a valid ${raw.typeName}: ${raw.reason}`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw invalidArgument("request is not a protobuf message");
    }
    this.record = raw as Record<string, unknown>;
  }

  /** `beyond`: why the maximum is what it is, told to a value above it. */
  uint(field: string, range: { readonly min: number; readonly max: number; readonly beyond?: string }): number {
    const raw = this.record[field];
    const text = typeof raw === "number" ? String(raw) : raw;
    const label = snake(field);
    if (typeof text !== "string" || !/^\d+$/.test(text)) {
      throw invalidArgument(`${label} must be an unsigned integer, got ${describe(raw)}`);
    }
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
      const why = range.beyond !== undefined && Number.isSafeInteger(value) && value > range.max ? ` (${range.beyond})` : "";
      throw invalidArgument(`${label} must be ${range.min}..${range.max}, got ${text}${why}`);
    }
    return value;
  }

  bool(field: string): boolean {
    const raw = this.record[field];
    if (typeof raw !== "boolean") throw invalidArgument(`${snake(field)} must be a bool, got ${describe(raw)}`);
    return raw;
  }

  text(field: string): string {
    const raw = this.record[field];
    if (typeof raw !== "string") throw invalidArgument(`${snake(field)} must be a string, got ${describe(raw)}`);
    return raw;
  }

  session(options: { readonly reservesNextSeq: boolean } = { reservesNextSeq: false }): Session {
    const clientId = this.text("clientId");
    const max = this.limits.clientIdBytesMax;
    if (clientId.length === 0 || clientId.length > max) {
      throw invalidArgument(`client_id must be 1..${max} bytes, got ${utf8ByteLength(clientId)}`);
    }
    if (!CLIENT_ID_PATTERN.test(clientId)) {
      throw invalidArgument("client_id must be visible ASCII (0x21..0x7e)");
    }
    const reserves = options.reservesNextSeq;
    const seqMax = SEQ_MAX - (reserves ? 1 : 0);
    const beyond = `${reserves ? "a blocking call reserves seq + 1, which" : "a seq"} must leave a successor; start a new client_id`;
    return { clientId, seq: this.uint("seq", { min: 1, max: seqMax, beyond }) };
  }

  name(field = "name"): string {
    const name = this.text(field);
    const bytes = utf8ByteLength(name);
    const max = this.limits.nameBytesMax;
    if (bytes === 0 || bytes > max) throw invalidArgument(`${snake(field)} must be 1..${max} bytes, got ${bytes}`);
    const control = CONTROL_CHAR.exec(name);
    if (control !== null) {
      const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
      throw invalidArgument(`${snake(field)} must not contain control characters, found U+${code} at ${control.index}`);
    }
    return name;
  }

  value(field = "value"): string {
    const value = this.text(field);
    const bytes = utf8ByteLength(value);
    const max = this.limits.valueBytesMax;
    if (bytes > max) throw invalidArgument(`${snake(field)} must be at most ${max} bytes, got ${bytes}`);
    return value;
  }

  leaseId(field = "leaseId"): number {
    return this.uint(field, { min: 1, max: Number.MAX_SAFE_INTEGER });
  }

  token(field = "token"): number {
    return this.uint(field, { min: 1, max: Number.MAX_SAFE_INTEGER });
  }

  ttlMs(): number {
    return this.uint("ttlMs", { min: this.limits.ttlMsMin, max: this.limits.ttlMsMax });
  }

  timeoutMs(): number {
    return this.uint("timeoutMs", { min: 0, max: WAIT_TIMEOUT_MS_MAX });
  }

  leaseIds(): number[] {
    const raw = this.record["leaseIds"];
    const max = this.limits.keepAliveLeaseIdsMax;
    if (!Array.isArray(raw)) throw invalidArgument(`lease_ids must be a list, got ${describe(raw)}`);
    if (raw.length === 0 || raw.length > max) {
      throw invalidArgument(`lease_ids must hold 1..${max} ids, got ${raw.length}`);
    }
    return raw.map((id: unknown, i) => new Fields({ id }, this.limits).uintAt("id", `lease_ids[${i}]`));
  }

  nodeId(field: string): string {
    const id = this.text(field);
    if (id.length === 0 || id.length > NODE_ID_CHARS_MAX || !NODE_ID_PATTERN.test(id)) {
      throw invalidArgument(`${snake(field)} must be 1..${NODE_ID_CHARS_MAX} characters of [A-Za-z0-9._:-], got ${describe(id)}`);
    }
    return id;
  }

  private uintAt(field: string, label: string): number {
    try {
      return this.leaseId(field);
    } catch {
      throw invalidArgument(`${label} must be 1..${Number.MAX_SAFE_INTEGER}, got ${describe(this.record[field])}`);
    }
  }
}

function describe(raw: unknown): string {
  if (raw === undefined) return "nothing";
  if (typeof raw === "string") return raw.length > 40 ? `"${raw.slice(0, 40)}..."` : `"${raw}"`;
  if (Array.isArray(raw)) return "a list";
  return typeof raw === "object" ? "a message" : String(raw);
}

// One parser per request message: the whole contract of each request in one place.
type L = StateLimits;

export function parseLeaseGrant(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { ...f.session(), ttlMs: f.ttlMs() };
}

export function parseLeaseKeepAlive(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { ...f.session(), leaseIds: f.leaseIds() };
}

export function parseLeaseRevoke(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { ...f.session(), leaseId: f.leaseId() };
}

export function parseLeaseTimeToLive(raw: unknown, limits: L) {
  return { leaseId: new Fields(raw, limits).leaseId() };
}

export function parseLeaseList(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  const afterLeaseId = f.uint("afterLeaseId", { min: 0, max: Number.MAX_SAFE_INTEGER });
  const limit = f.uint("limit", { min: 0, max: LIST_LIMIT_MAX });
  return { afterLeaseId, limit: limit === 0 ? LIST_LIMIT_DEFAULT : limit };
}

export function parseLockAcquire(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  const wait = f.bool("wait");
  const session = f.session({ reservesNextSeq: wait });
  return { ...session, name: f.name(), leaseId: f.leaseId(), wait, timeoutMs: f.timeoutMs() };
}

/** LockRelease and ElectionResign. */
export function parseFencedRelease(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { ...f.session(), name: f.name(), token: f.token() };
}

/** Lock.Status, Election.Leader, Election.Observe. */
export function parseName(raw: unknown, limits: L) {
  return { name: new Fields(raw, limits).name() };
}

export function parseValidateToken(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { name: f.name(), token: f.token() };
}

export function parseCampaign(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  const session = f.session({ reservesNextSeq: true });
  return { ...session, name: f.name(), leaseId: f.leaseId(), value: f.value(), timeoutMs: f.timeoutMs() };
}

export function parseProclaim(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { ...f.session(), name: f.name(), token: f.token(), value: f.value() };
}

/** Cluster.Status and Cluster.Members: empty messages, but still checked for garbage. */
export function parseEmpty(raw: unknown, limits: L): Record<string, never> {
  new Fields(raw, limits);
  return {};
}

export function parseAddMember(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  return { nodeId: f.nodeId("nodeId"), learner: f.bool("learner"), witness: f.bool("witness") };
}

export function parseRemoveMember(raw: unknown, limits: L) {
  return { nodeId: new Fields(raw, limits).nodeId("nodeId") };
}

export function parseReplaceMember(raw: unknown, limits: L) {
  const f = new Fields(raw, limits);
  const oldNodeId = f.nodeId("oldNodeId");
  const newNodeId = f.nodeId("newNodeId");
  if (oldNodeId === newNodeId) throw invalidArgument(`old_node_id and new_node_id are both "${oldNodeId}"`);
  return { oldNodeId, newNodeId, witness: f.bool("witness") };
}

export function parseTransferLeader(raw: unknown, limits: L) {
  return { toNodeId: new Fields(raw, limits).nodeId("toNodeId") };
}

/** Cluster.Freeze: a reason is required (shown in Status and every FROZEN error), 1..256 bytes, no control characters. */
export function parseFreeze(raw: unknown, limits: L): { readonly reason: string } {
  const reason = new Fields(raw, limits).text("reason");
  const bytes = utf8ByteLength(reason);
  if (bytes === 0 || bytes > FREEZE_REASON_BYTES_MAX) {
    throw invalidArgument(`reason must be 1..${FREEZE_REASON_BYTES_MAX} bytes, got ${bytes} (say why the cluster is frozen)`);
  }
  const control = CONTROL_CHAR.exec(reason);
  if (control !== null) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw invalidArgument(`reason must not contain control characters, found U+${code} at ${control.index}`);
  }
  return { reason };
}
