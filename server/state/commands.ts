// Commands of the lease/lock/election state machine and their wire codec. PURE.
//
// A log entry carries one StampedCommand: the command plus what the leader stamps on it when it
// proposes (its leader time and its term). Encoding is JSON with a version field; decoding checks
// every field against a schema and answers garbage with {ok:false, reason}, never a throw.
// Range checks (TTL, name length, limits) are the machine's job: they are results a client sees.
//
// Client commands carry {clientId, seq} for exactly-once, and the caller the leader's api handler
// authenticated (caller.ts); system commands are proposed by the leader itself (guarded timers,
// the timer restart on promotion, the restore epoch bump, Noop).
//
// Versions: 2 adds the optional caller fields (identity, admin) and LeaseGrant's leaseId (drawn
// at random by the leader). Version 1 entries (logs written before) still decode, as the anonymous
// caller with sequential lease ids; a v1 entry with a v2 field is refused. A member of the older
// code refuses v2 entries, so upgrade every member together (README, Authentication).
// Freeze and Thaw are new kinds of version 2 (no new field): a member of the older code answers
// them "unknown command kind" and does not freeze, so upgrade every member before using them.

import { COMMAND_BYTES_MAX } from "./limits.ts";

export const COMMAND_CODEC_VERSION = 2;
const CODEC_VERSIONS_DECODED: readonly number[] = [1, COMMAND_CODEC_VERSION];

export interface SessionFields {
  readonly clientId: string;
  /** Per-client sequence, starting at 1; a retry reuses it. */
  readonly seq: number;
  /** The authenticated caller (caller.ts); absent: the anonymous identity "" of the open mode. */
  readonly identity?: string;
  /** The leader's authorization let the caller act on other identities' objects; absent: false. */
  readonly admin?: boolean;
}

export interface LeaseGrant extends SessionFields {
  readonly kind: "LeaseGrant";
  readonly ttlMs: number;
  /**
   * Drawn at random by the leader (server/api: not guessable); a taken id is refused with
   * LEASE_ID_TAKEN, unrecorded, and the leader draws again. Absent (v1 entries, tests): the next
   * sequential id.
   */
  readonly leaseId?: number;
}
export interface LeaseKeepAlive extends SessionFields {
  readonly kind: "LeaseKeepAlive";
  readonly leaseIds: readonly number[];
}
export interface LeaseRevoke extends SessionFields {
  readonly kind: "LeaseRevoke";
  readonly leaseId: number;
}
export interface LockAcquire extends SessionFields {
  readonly kind: "LockAcquire";
  readonly name: string;
  readonly leaseId: number;
  /** Queue (FIFO) behind the holder instead of failing with LOCK_HELD. */
  readonly wait: boolean;
}
export interface LockRelease extends SessionFields {
  readonly kind: "LockRelease";
  readonly name: string;
  readonly token: number;
}
export interface ElectionCampaign extends SessionFields {
  readonly kind: "ElectionCampaign";
  readonly name: string;
  readonly leaseId: number;
  readonly value: string;
}
export interface ElectionProclaim extends SessionFields {
  readonly kind: "ElectionProclaim";
  readonly name: string;
  readonly token: number;
  readonly value: string;
}
export interface ElectionResign extends SessionFields {
  readonly kind: "ElectionResign";
  readonly name: string;
  readonly token: number;
}
/** Withdraws a queued LockAcquire or ElectionCampaign (the api layer's answer to a cancel). */
export interface WaitCancel extends SessionFields {
  readonly kind: "WaitCancel";
  readonly table: "lock" | "election";
  readonly name: string;
  readonly leaseId: number;
}

/**
 * The cluster-wide read-only switch (issue 15, tenurectl freeze): while frozen no new lease,
 * lock or leadership is granted; renewals, releases, revokes, resigns and reads are served.
 * Admin only; its caller's identity is who froze it. Its reason is at most FREEZE_REASON_BYTES_MAX.
 */
export interface Freeze extends SessionFields {
  readonly kind: "Freeze";
  readonly reason: string;
}
/** Ends a freeze: the waiters of every lock and election left free meanwhile are granted. Admin only. */
export interface Thaw extends SessionFields {
  readonly kind: "Thaw";
}

/** Applies only if the lease's renewSeq is unchanged and its deadline has passed. */
export interface LeaseExpire {
  readonly kind: "LeaseExpire";
  readonly leaseId: number;
  readonly renewSeq: number;
}
/** Applies only if the lock (or election) is still DELAYED by this delayId and the delay is over. */
export interface LockDelayEnd {
  readonly kind: "LockDelayEnd";
  readonly table: "lock" | "election";
  readonly name: string;
  readonly delayId: number;
}
/** A new leader's first proposal: every lease and lock-delay restarts at full length. */
export interface LeaderTimersRestart {
  readonly kind: "LeaderTimersRestart";
}
/** Raises the token/lease-id epoch to max(epoch + 1, epochMin); see id_allocator.ts. */
export interface RestoreEpochBump {
  readonly kind: "RestoreEpochBump";
  readonly epochMin: number;
}
export interface Noop {
  readonly kind: "Noop";
}

export type ClientCommand =
  | LeaseGrant
  | LeaseKeepAlive
  | LeaseRevoke
  | LockAcquire
  | LockRelease
  | ElectionCampaign
  | ElectionProclaim
  | ElectionResign
  | WaitCancel
  | Freeze
  | Thaw;
export type SystemCommand = LeaseExpire | LockDelayEnd | LeaderTimersRestart | RestoreEpochBump | Noop;

/**
 * Renewals of many clients in one entry: the leader coalesces the KeepAlives it receives within a
 * heartbeat interval (DESIGN.md section 3; server/node/renewal_batch.ts). Each applies exactly as
 * its own LeaseKeepAlive entry would, in order, on its own session (exactly-once per client and
 * seq), at the batch's stamp. Not a client command itself: it has no session of its own. Between
 * 1 and RENEWALS_PER_BATCH_MAX renewals, and the whole entry fits COMMAND_BYTES_MAX.
 * New in codec version 2 (no version bump, as Freeze): a member of the older code answers it
 * "unknown command kind" and renews nothing, so upgrade every member together.
 */
export interface LeaseKeepAliveBatch {
  readonly kind: "LeaseKeepAliveBatch";
  readonly renewals: readonly LeaseKeepAlive[];
}

/**
 * Renewals one LeaseKeepAliveBatch carries at most. The entry's bytes (COMMAND_BYTES_MAX) bound
 * it too; renewals of one id with short client ids (about 60 bytes each) reach this bound first.
 */
export const RENEWALS_PER_BATCH_MAX = 512;

export type Command = ClientCommand | SystemCommand | LeaseKeepAliveBatch;
export type CommandKind = Command["kind"];

export interface StampedCommand {
  /** The proposing leader's time, in the machine's time domain (non-decreasing; see machine.ts). */
  readonly leaderTimeMs: number;
  /** The proposing leader's term: timer commands only apply in a term whose timers restarted. */
  readonly term: number;
  readonly command: Command;
}

export type DecodeResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** "renewals": a list of LeaseKeepAlive commands, each decoded as one (LeaseKeepAliveBatch). */
type FieldType = "string" | "uint" | "posUint" | "bool" | "uintList" | "table" | "renewals";
/** A field that may be absent ("?") and the codec version that introduced it. */
interface OptionalField {
  readonly type: FieldType;
  readonly sinceVersion: number;
}
interface Schema {
  readonly session: boolean;
  readonly fields: Readonly<Record<string, FieldType>>;
  readonly optional?: Readonly<Record<string, OptionalField>>;
}

const SCHEMAS: Readonly<Record<CommandKind, Schema>> = {
  LeaseGrant: { session: true, fields: { ttlMs: "uint" }, optional: { leaseId: { type: "posUint", sinceVersion: 2 } } },
  LeaseKeepAlive: { session: true, fields: { leaseIds: "uintList" } },
  LeaseRevoke: { session: true, fields: { leaseId: "uint" } },
  LockAcquire: { session: true, fields: { name: "string", leaseId: "uint", wait: "bool" } },
  LockRelease: { session: true, fields: { name: "string", token: "uint" } },
  ElectionCampaign: { session: true, fields: { name: "string", leaseId: "uint", value: "string" } },
  ElectionProclaim: { session: true, fields: { name: "string", token: "uint", value: "string" } },
  ElectionResign: { session: true, fields: { name: "string", token: "uint" } },
  WaitCancel: { session: true, fields: { table: "table", name: "string", leaseId: "uint" } },
  Freeze: { session: true, fields: { reason: "string" } },
  Thaw: { session: true, fields: {} },
  LeaseExpire: { session: false, fields: { leaseId: "uint", renewSeq: "uint" } },
  LockDelayEnd: { session: false, fields: { table: "table", name: "string", delayId: "uint" } },
  LeaderTimersRestart: { session: false, fields: {} },
  RestoreEpochBump: { session: false, fields: { epochMin: "uint" } },
  Noop: { session: false, fields: {} },
  LeaseKeepAliveBatch: { session: false, fields: { renewals: "renewals" } },
};

const SESSION_FIELDS: Readonly<Record<string, FieldType>> = { clientId: "string", seq: "posUint" };
const SESSION_OPTIONAL: Readonly<Record<string, OptionalField>> = {
  identity: { type: "string", sinceVersion: 2 },
  admin: { type: "bool", sinceVersion: 2 },
};

export function isClientCommand(command: Command): command is ClientCommand {
  return SCHEMAS[command.kind].session;
}

export function encodeCommand(stamped: StampedCommand): Uint8Array {
  const wire = {
    v: COMMAND_CODEC_VERSION,
    leaderTimeMs: stamped.leaderTimeMs,
    term: stamped.term,
    command: stamped.command,
  };
  return new TextEncoder().encode(JSON.stringify(wire));
}

export function decodeCommand(bytes: Uint8Array): DecodeResult<StampedCommand> {
  if (bytes.length > COMMAND_BYTES_MAX) return fail(`entry of ${bytes.length} bytes is too large`);
  let wire: unknown;
  try {
    wire = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return fail("entry is not UTF-8 JSON");
  }
  if (!isRecord(wire)) return fail("entry is not an object");
  const version = wire["v"];
  if (typeof version !== "number" || !CODEC_VERSIONS_DECODED.includes(version)) return fail(`unsupported version ${String(version)}`);
  const leaderTimeMs = wire["leaderTimeMs"];
  const term = wire["term"];
  if (!checkField(leaderTimeMs, "uint")) return fail("leaderTimeMs must be a safe integer >= 0");
  if (!checkField(term, "uint")) return fail("term must be a safe integer >= 0");
  const command = decodeBody(wire["command"], version);
  if (!command.ok) return command;
  const value = { leaderTimeMs: leaderTimeMs as number, term: term as number, command: command.value };
  return { ok: true, value };
}

function decodeBody(body: unknown, version: number): DecodeResult<Command> {
  if (!isRecord(body)) return fail("command is not an object");
  const kind = body["kind"];
  if (typeof kind !== "string" || !Object.hasOwn(SCHEMAS, kind)) return fail("unknown command kind");
  const schema = SCHEMAS[kind as CommandKind];
  const fields = schema.session ? { ...SESSION_FIELDS, ...schema.fields } : schema.fields;
  const optional = schema.session ? { ...SESSION_OPTIONAL, ...schema.optional } : (schema.optional ?? {});
  const out: Record<string, unknown> = { kind };
  for (const [field, type] of Object.entries(fields)) {
    const value = body[field];
    if (type === "renewals") {
      const renewals = decodeRenewals(value, version);
      if (!renewals.ok) return fail(`${kind}.${field}: ${renewals.reason}`);
      out[field] = renewals.value;
      continue;
    }
    if (!checkField(value, type)) return fail(`${kind}.${field} must be ${type}`);
    out[field] = Array.isArray(value) ? [...(value as number[])] : value;
  }
  let present = Object.keys(fields).length + 1;
  for (const [field, spec] of Object.entries(optional)) {
    if (!Object.hasOwn(body, field)) continue;
    if (version < spec.sinceVersion) return fail(`${kind}.${field} is not a field of version ${version}`);
    const value = body[field];
    if (!checkField(value, spec.type)) return fail(`${kind}.${field} must be ${spec.type}`);
    out[field] = value;
    present += 1;
  }
  if (Object.keys(body).length !== present) return fail(`${kind} has unknown fields`);
  // The schema checked every field of this kind, so the record has the Command's shape.
  return { ok: true, value: out as unknown as Command };
}

/** 1..RENEWALS_PER_BATCH_MAX LeaseKeepAlive commands, each checked by its own schema. */
function decodeRenewals(value: unknown, version: number): DecodeResult<LeaseKeepAlive[]> {
  if (!Array.isArray(value) || value.length === 0 || value.length > RENEWALS_PER_BATCH_MAX) {
    return fail(`must be a list of 1..${RENEWALS_PER_BATCH_MAX} LeaseKeepAlive`);
  }
  const renewals: LeaseKeepAlive[] = [];
  for (const item of value as unknown[]) {
    if (!isRecord(item) || item["kind"] !== "LeaseKeepAlive") return fail("every renewal must be a LeaseKeepAlive");
    const decoded = decodeBody(item, version);
    if (!decoded.ok) return decoded;
    renewals.push(decoded.value as LeaseKeepAlive);
  }
  return { ok: true, value: renewals };
}

function checkField(value: unknown, type: FieldType): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "uint":
      return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
    case "posUint":
      return typeof value === "number" && Number.isSafeInteger(value) && value >= 1;
    case "bool":
      return typeof value === "boolean";
    case "uintList":
      return Array.isArray(value) && value.every((v: unknown) => checkField(v, "uint"));
    case "table":
      return value === "lock" || value === "election";
    case "renewals":
      return false; // decoded by decodeRenewals
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fail(reason: string): { readonly ok: false; readonly reason: string } {
  return { ok: false, reason };
}
