// Limits and configuration of the lease/lock state machine. PURE.
//
// Every input that can grow state has a bound here, per record and in aggregate, so the snapshot
// image of a state at the maxima has a bound too (stateImageBytesAtMaxima, asserted against the
// snapshot limit by server/limits.ts). Violations by a client are expected outcomes
// (INVALID_ARGUMENT for a malformed value, LIMIT_EXCEEDED for a full table, with a message naming
// the limit and its value), never a throw; a bad configuration is a bug and fails
// validateStateConfig() at startup.
//
// Every replica must run with the same StateConfig: rho, lockDelayMs and the limits decide
// deadlines and outcomes, so replicas with different configs diverge (stateHash shows it).
//
// The byte sizes these limits allow (the largest command, the snapshot image of a state at the
// maxima) are computed at the end of this file; server/limits.ts relates them to the frame and
// snapshot limits at startup.

import { assert } from "../core/assert.ts";
import { ENTRY_DATA_BYTES_MAX } from "../core/config.ts";
import type { LeaseRecord } from "./lease_table.ts";
import type { MutexRecord, Waiter } from "./lock_table.ts";
import type { IdleEntry, SessionRecord } from "./session_table.ts";
import { IDENTITY_BYTES_MAX } from "./caller.ts";
import { COMMAND_CODEC_VERSION } from "./commands.ts";
import { encodeImage, type MachineImage } from "./machine_snapshot.ts";
import { REQUEST_DIGEST_HEX_DIGITS } from "./request_digest.ts";
import type { CommandResult, OkBody, ValidUntil } from "./results.ts";

export interface StateLimits {
  /** Lock and election names, in UTF-8 bytes. */
  readonly nameBytesMax: number;
  /** One election value, in UTF-8 bytes. */
  readonly valueBytesMax: number;
  /**
   * Every election value held or waited with, together, in stored bytes (valueStoredBytes: as the
   * snapshot writes them). A Campaign or Proclaim that would go beyond it is LIMIT_EXCEEDED.
   */
  readonly valueBytesTotalMax: number;
  readonly clientIdBytesMax: number;
  readonly ttlMsMin: number;
  readonly ttlMsMax: number;
  readonly leasesPerClientMax: number;
  readonly leasesMax: number;
  /** Lease ids in one LeaseKeepAlive. */
  readonly keepAliveLeaseIdsMax: number;
  /**
   * Lease ids (renewed or failed) in the KeepAlive answers the session table keeps for retries,
   * over all sessions. A KeepAlive that would go beyond it first evicts the least recently active
   * sessions holding such answers (their clients see SESSION_EXPIRED, as after sessionsMax).
   */
  readonly keepAliveLeaseIdsStoredMax: number;
  readonly waitersPerLockMax: number;
  /** Waiters of every lock and election together. A wait beyond it is LIMIT_EXCEEDED. */
  readonly waitersMax: number;
  /** Lock plus election records (held, delayed or with waiters). */
  readonly namesMax: number;
  readonly sessionsMax: number;
}

/**
 * Deliberate bugs that prove the lock simulator's checkers have teeth (testing/sim/lock_sim.ts).
 * Test-only: absent (all off) unless a simulator sets them; no config loader ever does.
 */
export interface StateBugSwitches {
  /** LockAcquire skips the live-lease check: an expired or missing lease can be granted. */
  readonly grantWithoutLeaseCheck: boolean;
  /** A restored snapshot rebuilds the token counter from the tokens still held (rewinds it). */
  readonly reuseTokenAfterRestore: boolean;
}

export interface StateConfig {
  /** Clock-rate error bound: the server deadline is applyTime + ttl * (1 + rho). */
  readonly rho: number;
  /** How long a lock (or election) whose holder's lease EXPIRED stays DELAYED. 0 allowed. */
  readonly lockDelayMs: number;
  /** A client session with no leases is dropped this long after its last activity. */
  readonly sessionIdleMs: number;
  readonly limits: StateLimits;
  /** Test-only (see StateBugSwitches); undefined in every real configuration. */
  readonly bugs?: StateBugSwitches;
}

/**
 * The aggregate limits are sized so that a state with every table full fits the snapshot limit
 * (288 MiB) with an eighth to spare (server/limits.ts); stateImageBytesAtMaxima has the figures.
 */
export const DEFAULT_STATE_LIMITS: StateLimits = {
  nameBytesMax: 256,
  valueBytesMax: 4096,
  // Election values name the leader: an address or a small JSON document, tens to hundreds of
  // bytes (a Kubernetes leader-election record is about 200). 16 MiB is every one of namesMax
  // elections with a 160-byte value, or 4096 values of the full 4 KiB. Tenure's values are a
  // side channel of leadership, not a store: etcd and Consul put such data in their key space
  // (etcd's whole quota is 2 GiB, a Consul value at most 512 KiB), here it is a fixed part of
  // the snapshot (16 MiB of 256).
  valueBytesTotalMax: 16 * 1024 * 1024,
  clientIdBytesMax: 128,
  ttlMsMin: 500,
  ttlMsMax: 3_600_000,
  leasesPerClientMax: 1_000,
  leasesMax: 100_000,
  keepAliveLeaseIdsMax: 1_024,
  // The SDK renews each lease on one KeepAlive stream of its own client id, so the answers the
  // live streams last got name each lease about once: leasesMax ids. Beyond it the evicted answers
  // are the least recently active ones (streams that ended, clients that restarted with a new
  // id), and a live stream that loses its session starts a new one (SESSION_EXPIRED). About 15
  // MiB of the snapshot: a stored renewal is up to 158 bytes.
  keepAliveLeaseIdsStoredMax: 100_000,
  waitersPerLockMax: 1_000,
  // As many waits as leases: every lease blocked in one Acquire or Campaign at a time (the SDK
  // holds a blocking call per lease and name). etcd and Consul queue waiters as keys and sessions,
  // bounded only by their key space; here each wait is a record of the snapshot (40 bytes plus its
  // value), and without a total one lease could wait on every name (namesMax x waitersPerLockMax
  // = 100 million waiters).
  waitersMax: 100_000,
  namesMax: 100_000,
  sessionsMax: 100_000,
};

export const DEFAULT_STATE_CONFIG: StateConfig = {
  rho: 0.01,
  lockDelayMs: 5_000,
  sessionIdleMs: 600_000,
  limits: DEFAULT_STATE_LIMITS,
};

/** Chubby caps lock-delay at a minute; longer only hides a missing fencing check. */
export const LOCK_DELAY_MS_MAX = 60_000;
/**
 * One encoded command: the log's entry size (core ENTRY_DATA_BYTES_MAX). Above the largest valid
 * command (commandBytesAtMaxima, asserted by server/limits.ts); stops garbage before JSON.parse.
 */
export const COMMAND_BYTES_MAX = ENTRY_DATA_BYTES_MAX;
/** Sessions dropped per apply by the idle sweep: bounds the work of one apply. */
export const SESSION_SWEEP_PER_APPLY_MAX = 64;

export function validateStateConfig(config: StateConfig): void {
  const l = config.limits;
  assert(config.rho >= 0 && config.rho < 0.5, `rho must be in [0, 0.5), got ${config.rho}`);
  assert(isCount(config.lockDelayMs) && config.lockDelayMs <= LOCK_DELAY_MS_MAX, "lockDelayMs");
  assert(isCount(config.sessionIdleMs), "sessionIdleMs");
  for (const [key, value] of Object.entries(l)) {
    assert(isCount(value) && value > 0, `limit ${key} must be a positive safe integer`);
  }
  assert(l.ttlMsMin <= l.ttlMsMax, "ttlMsMin <= ttlMsMax");
  assert(l.leasesPerClientMax <= l.leasesMax, "leasesPerClientMax <= leasesMax");
  assert(l.waitersPerLockMax <= l.waitersMax, "waitersPerLockMax <= waitersMax");
  // One valid value, in any alphabet, fits an empty budget; one full KeepAlive fits once the
  // others' answers are evicted (SessionTable.makeRoomForKeepAlive relies on it).
  const oneValue = jsonStringBytesMax(l.valueBytesMax, "any");
  assert(oneValue <= l.valueBytesTotalMax, `valueBytesMax stored (${oneValue}) <= valueBytesTotalMax`);
  assert(l.keepAliveLeaseIdsMax <= l.keepAliveLeaseIdsStoredMax, "keepAliveLeaseIdsMax <= keepAliveLeaseIdsStoredMax");
  // Deadlines stay exact integers far below 2^53 (see serverDeadlineMs).
  assert(l.ttlMsMax <= 365 * 24 * 3_600_000, "ttlMsMax at most a year");
}

export function stateConfig(
  overrides: Partial<Omit<StateConfig, "limits" | "bugs">> & {
    readonly limits?: Partial<StateLimits>;
  },
): StateConfig {
  const config: StateConfig = {
    rho: overrides.rho ?? DEFAULT_STATE_CONFIG.rho,
    lockDelayMs: overrides.lockDelayMs ?? DEFAULT_STATE_CONFIG.lockDelayMs,
    sessionIdleMs: overrides.sessionIdleMs ?? DEFAULT_STATE_CONFIG.sessionIdleMs,
    limits: { ...DEFAULT_STATE_LIMITS, ...overrides.limits },
  };
  validateStateConfig(config);
  return config;
}

/** Server-side deadline: applyTime + ttl * (1 + rho), rounded up (never shorter). */
export function serverDeadlineMs(appliedAtMs: number, ttlMs: number, rho: number): number {
  return appliedAtMs + ttlMs + Math.ceil(ttlMs * rho);
}

export function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * What a value costs against valueBytesTotalMax: its bytes in the snapshot, i.e. the UTF-8 length
 * of its JSON text without the quotes. A printable ASCII value costs its length (plus one per " or
 * \), other text its UTF-8 length, a control character 6 bytes (\u00XX). Charging what is stored
 * makes the budget an exact bound of the values' share of the image.
 */
export function valueStoredBytes(value: string): number {
  return value.length === 0 ? 0 : utf8ByteLength(JSON.stringify(value)) - 2;
}

/** UTF-8 length without allocating; lone surrogates count as the 3-byte replacement. */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

// ---------------------------------------------------------------- byte sizes at the maxima
//
// Upper bounds of encoded sizes, from the real record shapes: a template record with every
// number at its widest (2^53 - 1; a TTL at ttlMsMax) and every string empty is JSON-encoded, then
// each string's budget is added. Strings are counted as JSON writes them, in the alphabets
// server/api/validate.ts admits: a client id is visible ASCII and a name has no control
// characters, so at worst each byte doubles (\" and \\, or a lone surrogate's 3 bytes as \udxxx);
// a value may hold control characters, each written as \u00XX (6 bytes for 1), but values are
// budgeted in stored bytes (valueBytesTotalMax), so their share is the budget itself.
// limits.test.ts checks every bound against the real encoders (encodeImage, encodeCommand) on
// worst-case records, and a full machine's image against the table sums.

const WIDEST = Number.MAX_SAFE_INTEGER;
/** rho is a double in [0, 0.5): its shortest round-trip text is at most 24 characters. */
const RHO_JSON_BYTES_MAX = 24;
/**
 * A stored error's message, in JSON bytes: a short sentence around numbers and limit names, never
 * a name, value or client id (the caller knows what it asked for, and a copy in each of
 * sessionsMax sessions would be up to 50 MiB of the snapshot). SessionTable.record asserts it.
 */
export const ERROR_MESSAGE_BYTES_MAX = 128;
/** A Freeze's reason (kept in the state and the snapshot, shown by Cluster.Status). */
export const FREEZE_REASON_BYTES_MAX = 256;
/** Array separator (",") per element. */
const SEPARATOR_BYTES = 1;

const jsonBytes = (value: unknown): number => JSON.stringify(value).length;

/** The JSON text budget of strings of at most `bytes` UTF-8 bytes, by alphabet. */
export function jsonStringBytesMax(bytes: number, alphabet: "ascii" | "name" | "any"): number {
  return bytes * (alphabet === "any" ? 6 : 2);
}

export interface StateImageBytes {
  /** The image's header: counters and empty tables. */
  readonly fixedBytes: number;
  readonly leaseRecordBytesMax: number;
  /** A lock or election record, held (value not counted: valuesBytes) or delayed, no waiters. */
  readonly nameRecordBytesMax: number;
  /** One waiter, value not counted (valuesBytes). */
  readonly waiterBytesMax: number;
  /** A session with the largest stored result, a KeepAlive's lease ids not counted. */
  readonly sessionRecordBytesMax: number;
  /** One lease id (renewed or failed) in a stored KeepAlive answer. */
  readonly keepAliveIdBytesMax: number;
  readonly idleEntryBytesMax: number;
  /** Per table: its aggregate limit times the record bound. */
  readonly leasesBytes: number;
  readonly namesBytes: number;
  /** waitersMax waiters, over every lock and election. */
  readonly waitersBytes: number;
  /** valueBytesTotalMax: every holder's and waiter's value, as stored. */
  readonly valuesBytes: number;
  readonly sessionsBytes: number;
  /** keepAliveLeaseIdsStoredMax ids in the sessions' stored KeepAlive answers. */
  readonly keepAliveIdsBytes: number;
  readonly idleBytes: number;
  readonly totalBytes: number;
}

function validUntilAtMaxima(limits: StateLimits): { readonly template: ValidUntil; readonly extraBytes: number } {
  // rho is encoded as 0 in the template; its text may be up to RHO_JSON_BYTES_MAX.
  const template = { ttlMs: limits.ttlMsMax, rho: 0, appliedAtMs: WIDEST, serverDeadlineMs: WIDEST };
  return { template, extraBytes: RHO_JSON_BYTES_MAX - 1 };
}

/**
 * The largest stored CommandResult other than a KeepAlive's lease ids (counted per id by
 * keepAliveIdBytesMax): an error with the longest code and message, or the largest ok body.
 */
export function resultBytesMax(limits: StateLimits): number {
  const { template: validUntil, extraBytes } = validUntilAtMaxima(limits);
  // Every ok body a client command can answer, with its widest fields (false is longer than true).
  const bodies: OkBody[] = [
    { kind: "LeaseGrant", leaseId: WIDEST, validUntil },
    { kind: "LeaseKeepAlive", renewed: [], failed: [] },
    { kind: "LeaseRevoke", leaseId: WIDEST },
    { kind: "LockAcquire", status: "granted", token: WIDEST, validUntil },
    { kind: "LockAcquire", status: "queued", position: WIDEST },
    { kind: "LockRelease", released: false },
    { kind: "ElectionCampaign", status: "elected", token: WIDEST, validUntil },
    { kind: "ElectionCampaign", status: "queued", position: WIDEST },
    { kind: "ElectionProclaim", token: WIDEST },
    { kind: "ElectionResign", resigned: false },
    { kind: "WaitCancel", cancelled: false },
    { kind: "Freeze", alreadyFrozen: false },
    { kind: "Thaw", alreadyThawed: false, granted: WIDEST },
  ];
  const okBytes = Math.max(...bodies.map((body) => jsonBytes({ ok: true, ...body }) + ("validUntil" in body ? extraBytes : 0)));
  // PERMISSION_DENIED is the longest stored ErrorCode (LEASE_ID_TAKEN is never stored); a
  // LOCK_HELD refusal's currentToken is counted on top (at its widest).
  const error: CommandResult = { ok: false, code: "PERMISSION_DENIED", message: "", currentToken: WIDEST };
  return Math.max(okBytes, jsonBytes(error) + ERROR_MESSAGE_BYTES_MAX);
}

/** One renewed or failed lease id in a stored KeepAlive answer, with its separator. */
export function keepAliveIdBytesMax(limits: StateLimits): number {
  const { template: validUntil, extraBytes } = validUntilAtMaxima(limits);
  const renewal = jsonBytes({ leaseId: WIDEST, validUntil }) + extraBytes;
  const failure = jsonBytes({ leaseId: WIDEST, code: "PERMISSION_DENIED" });
  return Math.max(renewal, failure) + SEPARATOR_BYTES;
}

/** Bounds of the snapshot image (machine_snapshot.ts) of a state with every table at its max. */
export function stateImageBytesAtMaxima(limits: StateLimits): StateImageBytes {
  const clientId = jsonStringBytesMax(limits.clientIdBytesMax, "ascii");
  // Sessions and idle entries are keyed "<identity> <clientId>" (caller.ts); an identity's
  // alphabet needs no JSON escape, so its text is its bytes.
  const sessionKey = IDENTITY_BYTES_MAX + 1 + clientId;
  const name = jsonStringBytesMax(limits.nameBytesMax, "name");
  const empty: MachineImage = {
    appliedIndex: WIDEST,
    nowMs: WIDEST,
    timersTerm: WIDEST,
    ids: { lastToken: WIDEST, lastLeaseId: WIDEST },
    leases: [],
    locks: [],
    elections: [],
    sessions: [],
    idle: [],
    // A freeze's reason and identity are counted in fixedBytes below.
    frozen: { reason: "", by: "", sinceMs: WIDEST },
  };
  const lease: LeaseRecord = {
    leaseId: WIDEST,
    clientId: "",
    owner: "",
    ttlMs: limits.ttlMsMax,
    grantedAtMs: WIDEST,
    renewedAtMs: WIDEST,
    deadlineMs: WIDEST,
    renewSeq: WIDEST,
  };
  // A record is held or delayed, never both (LockTable asserts it on restore).
  const holder = { leaseId: WIDEST, token: WIDEST, value: "", grantedAtMs: WIDEST };
  const held: MutexRecord = { name: "", holder, waiters: [], delay: null };
  const delayed: MutexRecord = { name: "", holder: null, waiters: [], delay: { delayId: WIDEST, untilMs: WIDEST } };
  const waiter: Waiter = { leaseId: WIDEST, value: "" };
  // A digest is 32 hex digits (no escapes); null, for a session restored from before digests, is shorter.
  const digest = "f".repeat(REQUEST_DIGEST_HEX_DIGITS);
  const session: SessionRecord = { clientId: "", lastSeq: WIDEST, lastActiveMs: WIDEST, digest, result: { ok: true, kind: "Noop" } };
  const idle: IdleEntry = { clientId: "", dropAtMs: WIDEST };
  const sizes = {
    fixedBytes: encodeImage(empty).length + jsonStringBytesMax(FREEZE_REASON_BYTES_MAX, "any") + IDENTITY_BYTES_MAX,
    leaseRecordBytesMax: jsonBytes(lease) + clientId + IDENTITY_BYTES_MAX + SEPARATOR_BYTES,
    nameRecordBytesMax: Math.max(jsonBytes(held), jsonBytes(delayed)) + name + SEPARATOR_BYTES,
    waiterBytesMax: jsonBytes(waiter) + SEPARATOR_BYTES,
    sessionRecordBytesMax: jsonBytes(session) - jsonBytes(session.result) + resultBytesMax(limits) + sessionKey + SEPARATOR_BYTES,
    keepAliveIdBytesMax: keepAliveIdBytesMax(limits),
    idleEntryBytesMax: jsonBytes(idle) + sessionKey + SEPARATOR_BYTES,
  };
  const tables = {
    leasesBytes: limits.leasesMax * sizes.leaseRecordBytesMax,
    namesBytes: limits.namesMax * sizes.nameRecordBytesMax,
    waitersBytes: limits.waitersMax * sizes.waiterBytesMax,
    valuesBytes: limits.valueBytesTotalMax,
    sessionsBytes: limits.sessionsMax * sizes.sessionRecordBytesMax,
    keepAliveIdsBytes: limits.keepAliveLeaseIdsStoredMax * sizes.keepAliveIdBytesMax,
    // Idle entries are sessions without leases: at most sessionsMax.
    idleBytes: limits.sessionsMax * sizes.idleEntryBytesMax,
  };
  const totalBytes = sizes.fixedBytes + Object.values(tables).reduce((sum, bytes) => sum + bytes, 0);
  return { ...sizes, ...tables, totalBytes };
}

/**
 * The largest encoded valid command (commands.ts encodeCommand): a KeepAlive of
 * keepAliveLeaseIdsMax ids (alone in a renewal batch), or a Campaign/Proclaim with a full name
 * and value.
 */
export function commandBytesAtMaxima(limits: StateLimits): number {
  const stamped = (command: object): number => jsonBytes({ v: COMMAND_CODEC_VERSION, leaderTimeMs: WIDEST, term: WIDEST, command });
  // The caller's identity travels in every client command (caller.ts: no JSON escapes).
  const clientId = jsonStringBytesMax(limits.clientIdBytesMax, "ascii") + IDENTITY_BYTES_MAX;
  const session = { clientId: "", seq: WIDEST, identity: "", admin: false };
  const keepAlive =
    stamped({ kind: "LeaseKeepAlive", ...session, leaseIds: [] }) +
    clientId +
    limits.keepAliveLeaseIdsMax * (String(WIDEST).length + SEPARATOR_BYTES);
  const campaign = { kind: "ElectionCampaign", ...session, name: "", leaseId: WIDEST, value: "" };
  const proclaim = { kind: "ElectionProclaim", ...session, name: "", token: WIDEST, value: "" };
  const named =
    Math.max(stamped(campaign), stamped(proclaim)) +
    clientId +
    jsonStringBytesMax(limits.nameBytesMax, "name") +
    jsonStringBytesMax(limits.valueBytesMax, "any");
  // The leader coalesces renewals (server/node/renewal_batch.ts): a KeepAlive at its widest must
  // also fit alone in a LeaseKeepAliveBatch entry, whose wrapper it then carries.
  const keepAliveInBatch = keepAlive + jsonBytes({ kind: "LeaseKeepAliveBatch", renewals: [] }) + SEPARATOR_BYTES;
  // Every other command is a subset of these fields (at most one name, no value, one id list).
  return Math.max(keepAliveInBatch, named);
}

/** What server/limits.ts relates to the frames and the snapshot limit (its StateSizes). */
export function stateSizes(limits: StateLimits): {
  readonly requestFields: StateLimits;
  readonly commandBytesMax: number;
  readonly image: StateImageBytes;
} {
  return { requestFields: limits, commandBytesMax: commandBytesAtMaxima(limits), image: stateImageBytesAtMaxima(limits) };
}
