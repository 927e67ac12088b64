// Exponential backoff with FULL jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
// the delay is uniform in [0, min(cap, base * 2^attempt)). Full jitter spreads a retry storm after
// a leader failover over the whole window instead of synchronising clients on its edges.
// Random and clock are injected so tests can pin the bounds.

export interface BackoffOptions {
  /** First window (attempt 0). */
  readonly baseMs: number;
  /** Largest window. */
  readonly capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 25, capMs: 1000 };

/** Returns a value in [0, 1). */
export type RandomSource = () => number;

/** Monotonic milliseconds (performance.now in production). */
export type MonotonicClock = () => number;

/** The window (exclusive upper bound) for `attempt` (0-based). */
export function backoffWindowMs(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  // Clamp the exponent so 2^attempt never overflows into Infinity.
  const exp = Math.min(Math.max(0, attempt), 30);
  return Math.min(options.capMs, options.baseMs * 2 ** exp);
}

/** Full jitter: uniform in [0, window). */
export function backoffDelayMs(attempt: number, random: RandomSource, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0; // a broken random source must not produce a negative wait
  return Math.floor(unit * backoffWindowMs(attempt, options));
}

/** The wait before retrying after `e`: an OVERLOADED answer's own hint (overloadWaitMs), else the
 *  exponential backoff with full jitter. */
export function retryDelayMs(
  e: { readonly code: string; readonly retryAfterMs: number },
  attempt: number,
  random: RandomSource,
  options: BackoffOptions = DEFAULT_BACKOFF,
): number {
  return e.code === "OVERLOADED" ? overloadWaitMs(e.retryAfterMs, attempt, random) : backoffDelayMs(attempt, random, options);
}

/** The hint when an OVERLOADED answer carries none, and the most any one wait takes. */
const OVERLOAD_WAIT_MS_DEFAULT = 50;
const OVERLOAD_WAIT_MS_MAX = 2_000;

/** The server's retry-after hint, doubled for each retry that found it still busy (capped), plus
 *  up to as much again of jitter. */
function overloadWaitMs(retryAfterMs: number, attempt: number, random: RandomSource): number {
  const base = Math.min(OVERLOAD_WAIT_MS_MAX, (retryAfterMs > 0 ? retryAfterMs : OVERLOAD_WAIT_MS_DEFAULT) * 2 ** Math.min(attempt, 6));
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0;
  return Math.min(OVERLOAD_WAIT_MS_MAX, Math.floor(base + unit * base));
}
