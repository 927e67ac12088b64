// Limits and configuration of the lease/lock state machine. PURE.
//
// Every input that can grow state has a bound here. Violations by a client are expected outcomes
// (INVALID_ARGUMENT for a malformed value, LIMIT_EXCEEDED for a full table), never a throw; a bad
// configuration is a bug and fails validateStateConfig() at startup.
//
// Every replica must run with the same StateConfig: rho, lockDelayMs and the limits decide
// deadlines and outcomes, so replicas with different configs diverge (stateHash shows it).

import { assert } from "../core/assert.ts";

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
/** One encoded command. Far above any valid command; stops garbage before JSON.parse. */
export const COMMAND_BYTES_MAX = 64 * 1024;
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
