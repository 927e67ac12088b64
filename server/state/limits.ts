// Limits and configuration of the lease/lock state machine. PURE.
//
// Every input that can grow state has a bound here. Violations by a client are expected outcomes
// (INVALID_ARGUMENT for a malformed value, LIMIT_EXCEEDED for a full table), never a throw; a bad
// configuration is a bug and fails validateStateConfig() at startup.
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
import { encodeImage, type MachineImage } from "./machine_snapshot.ts";
import type { CommandResult } from "./results.ts";

export interface StateLimits {
  /** Lock and election names, in UTF-8 bytes. */
  readonly nameBytesMax: number;
  /** Election values, in UTF-8 bytes. */
  readonly valueBytesMax: number;
  readonly clientIdBytesMax: number;
  readonly ttlMsMin: number;
  readonly ttlMsMax: number;
  readonly leasesPerClientMax: number;
  readonly leasesMax: number;
  /** Lease ids in one LeaseKeepAlive. */
  readonly keepAliveLeaseIdsMax: number;
  readonly waitersPerLockMax: number;
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

export const DEFAULT_STATE_LIMITS: StateLimits = {
  nameBytesMax: 256,
  valueBytesMax: 4096,
  clientIdBytesMax: 128,
  ttlMsMin: 500,
  ttlMsMax: 3_600_000,
  leasesPerClientMax: 1_000,
  leasesMax: 100_000,
  keepAliveLeaseIdsMax: 1_024,
  waitersPerLockMax: 1_000,
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
  // Deadlines stay exact integers far below 2^53 (see serverDeadlineMs).
  assert(l.ttlMsMax <= 365 * 24 * 3_600_000, "ttlMsMax at most a year");
}

export function stateConfig(overrides: Partial<Omit<StateConfig, "limits" | "bugs">> & {
  readonly limits?: Partial<StateLimits>;
}): StateConfig {
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
// number at its widest (2^53 - 1) and every string empty is JSON-encoded, then each string's
// budget is added. Strings are counted as JSON writes them, in the alphabets server/api/validate.ts
// admits: a client id is visible ASCII and a name has no control characters, so at worst each byte
// doubles (\" and \\, or a lone surrogate's 3 bytes as \udxxx); a value may hold control
// characters, each written as \u00XX (6 bytes for 1). limits.test.ts checks every bound against
// the real encoders (encodeImage, encodeCommand) on worst-case records.

const WIDEST = Number.MAX_SAFE_INTEGER;
/** rho is a double in [0, 0.5): its shortest round-trip text is at most 24 characters. */
const RHO_JSON_BYTES_MAX = 24;
/** Error messages are a short sentence around at most one name or client id and two numbers. */
const ERROR_MESSAGE_TEXT_BYTES_MAX = 64;
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
  /** A lock or election record with a holder (full value) and a delay, no waiters. */
  readonly nameRecordBytesMax: number;
  readonly waiterBytesMax: number;
  /** A session holding the largest stored result (a KeepAlive of keepAliveLeaseIdsMax ids). */
  readonly sessionRecordBytesMax: number;
  readonly idleEntryBytesMax: number;
  /** Per table: record count at its maximum times the record bound. */
  readonly leasesBytes: number;
  readonly namesBytes: number;
  /** namesMax * waitersPerLockMax: the machine bounds waiters per name only, not in total. */
  readonly waitersBytes: number;
  readonly sessionsBytes: number;
  readonly idleBytes: number;
  readonly totalBytes: number;
}

/** The largest stored CommandResult: a KeepAlive renewing (or failing) keepAliveLeaseIdsMax ids. */
export function resultBytesMax(limits: StateLimits): number {
  const validUntil = { ttlMs: WIDEST, rho: 0, appliedAtMs: WIDEST, serverDeadlineMs: WIDEST };
  const renewal = jsonBytes({ leaseId: WIDEST, validUntil }) - 1 + RHO_JSON_BYTES_MAX + SEPARATOR_BYTES;
  const failure = jsonBytes({ leaseId: WIDEST, code: "LEASE_NOT_FOUND" }) + SEPARATOR_BYTES;
  const keepAlive: CommandResult = { ok: true, kind: "LeaseKeepAlive", renewed: [], failed: [] };
  const keepAliveBytes = jsonBytes(keepAlive) + limits.keepAliveLeaseIdsMax * Math.max(renewal, failure);
  const error: CommandResult = { ok: false, code: "INVALID_ARGUMENT", message: "" };
  const quoted = Math.max(jsonStringBytesMax(limits.nameBytesMax, "name"), jsonStringBytesMax(limits.clientIdBytesMax, "ascii"));
  const errorBytes = jsonBytes(error) + ERROR_MESSAGE_TEXT_BYTES_MAX + quoted + 2 * String(WIDEST).length;
  // Every other result is a few numbers (and a fixed kind): far below either.
  return Math.max(keepAliveBytes, errorBytes);
}

/** Bounds of the snapshot image (machine_snapshot.ts) of a state with every table at its max. */
export function stateImageBytesAtMaxima(limits: StateLimits): StateImageBytes {
  const clientId = jsonStringBytesMax(limits.clientIdBytesMax, "ascii");
  const name = jsonStringBytesMax(limits.nameBytesMax, "name");
  const value = jsonStringBytesMax(limits.valueBytesMax, "any");
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
  };
  const lease: LeaseRecord = {
    leaseId: WIDEST, clientId: "", ttlMs: WIDEST, grantedAtMs: WIDEST, renewedAtMs: WIDEST, deadlineMs: WIDEST, renewSeq: WIDEST,
  };
  const holder = { leaseId: WIDEST, token: WIDEST, value: "", grantedAtMs: WIDEST };
  const mutex: MutexRecord = { name: "", holder, waiters: [], delay: { delayId: WIDEST, untilMs: WIDEST } };
  const waiter: Waiter = { leaseId: WIDEST, value: "" };
  const session: SessionRecord = { clientId: "", lastSeq: WIDEST, lastActiveMs: WIDEST, result: { ok: true, kind: "Noop" } };
  const idle: IdleEntry = { clientId: "", dropAtMs: WIDEST };
  const sizes = {
    fixedBytes: encodeImage(empty).length,
    leaseRecordBytesMax: jsonBytes(lease) + clientId + SEPARATOR_BYTES,
    nameRecordBytesMax: jsonBytes(mutex) + name + value + SEPARATOR_BYTES,
    waiterBytesMax: jsonBytes(waiter) + value + SEPARATOR_BYTES,
    sessionRecordBytesMax: jsonBytes(session) - jsonBytes(session.result) + resultBytesMax(limits) + clientId + SEPARATOR_BYTES,
    idleEntryBytesMax: jsonBytes(idle) + clientId + SEPARATOR_BYTES,
  };
  const tables = {
    leasesBytes: limits.leasesMax * sizes.leaseRecordBytesMax,
    namesBytes: limits.namesMax * sizes.nameRecordBytesMax,
    waitersBytes: limits.namesMax * limits.waitersPerLockMax * sizes.waiterBytesMax,
    sessionsBytes: limits.sessionsMax * sizes.sessionRecordBytesMax,
    idleBytes: limits.sessionsMax * sizes.idleEntryBytesMax,
  };
  const totalBytes = sizes.fixedBytes + Object.values(tables).reduce((sum, bytes) => sum + bytes, 0);
  return { ...sizes, ...tables, totalBytes };
}

/**
 * The largest encoded valid command (commands.ts encodeCommand): a KeepAlive of
 * keepAliveLeaseIdsMax ids, or a Campaign/Proclaim with a full name and value.
 */
export function commandBytesAtMaxima(limits: StateLimits): number {
  const stamped = (command: object): number => jsonBytes({ v: 1, leaderTimeMs: WIDEST, term: WIDEST, command });
  const clientId = jsonStringBytesMax(limits.clientIdBytesMax, "ascii");
  const session = { clientId: "", seq: WIDEST };
  const keepAlive = stamped({ kind: "LeaseKeepAlive", ...session, leaseIds: [] }) + clientId
    + limits.keepAliveLeaseIdsMax * (String(WIDEST).length + SEPARATOR_BYTES);
  const campaign = { kind: "ElectionCampaign", ...session, name: "", leaseId: WIDEST, value: "" };
  const proclaim = { kind: "ElectionProclaim", ...session, name: "", token: WIDEST, value: "" };
  const named = Math.max(stamped(campaign), stamped(proclaim)) + clientId
    + jsonStringBytesMax(limits.nameBytesMax, "name") + jsonStringBytesMax(limits.valueBytesMax, "any");
  // Every other command is a subset of these fields (at most one name, no value, one id list).
  return Math.max(keepAlive, named);
}

/** What server/limits.ts relates to the frames and the snapshot limit (its StateSizes). */
export function stateSizes(limits: StateLimits): {
  readonly requestFields: StateLimits;
  readonly commandBytesMax: number;
  readonly image: StateImageBytes;
} {
  return { requestFields: limits, commandBytesMax: commandBytesAtMaxima(limits), image: stateImageBytesAtMaxima(limits) };
}
