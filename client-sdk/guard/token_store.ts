// The storage guard's contract (DESIGN.md §5; Kleppmann's fencing, research note §3): per
// resource, the highest fencing token ever accepted. A write with a lower token is rejected;
// an equal token passes (the same holder writing again); a higher one raises the mark. The check,
// the raise and the protected write are ONE atomic step, or a stale holder can slip its write in
// between another's check and write (TOCTOU).

import type { InvalidFencingTokenError, StaleFencingTokenError } from "./errors.ts";
import { InvalidFencingTokenError as InvalidToken } from "./errors.ts";

/** Tokens are uint64 on the wire; proto-loader hands them over as decimal strings. */
export type FencingToken = bigint | number | string;

export const MAX_TOKEN = (1n << 64n) - 1n;

export type RunResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: StaleFencingTokenError };

/** Read side of the store: what the guard remembers. */
export interface TokenStore {
  /** The highest token accepted for `resource`, or null if none was. */
  highest(resource: string): bigint | null;
}

/**
 * A guard whose protected writes receive a context `C` (the better-sqlite3 Database for
 * SqliteGuard). `write` runs INSIDE the critical section and must be synchronous: returning a
 * Promise would let the section end before the write does, so the guards refuse it.
 */
export interface FencingGuard<C> extends TokenStore {
  /** Check, raise and write atomically; throws StaleFencingTokenError (nothing written) if stale.
   *  If `write` throws, nothing is written and the highest token is unchanged. */
  run<T>(resource: string, token: FencingToken, write: (ctx: C) => T): T;
  /** Same as run, but a stale token is returned instead of thrown. */
  tryRun<T>(resource: string, token: FencingToken, write: (ctx: C) => T): RunResult<T>;
}

/**
 * Parses a token from a header, metadata value, JSON field or number. Accepts 1..2^64-1 only:
 * the service never issues 0 (proto: 0 means "nobody holds it"), and a number past 2^53 has
 * already been rounded, so it cannot be trusted as a token.
 */
export function parseFencingToken(value: unknown): bigint {
  let t: bigint;
  if (typeof value === "bigint") t = value;
  else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new InvalidToken(value, "not a safe integer (pass large tokens as strings)");
    t = BigInt(value);
  } else if (typeof value === "string") {
    if (!/^[0-9]{1,20}$/.test(value)) throw new InvalidToken(value, `${JSON.stringify(value.slice(0, 40))} is not a decimal integer`);
    t = BigInt(value);
  } else throw new InvalidToken(value, value === undefined ? "missing" : `unsupported type ${typeof value}`);
  if (t < 1n || t > MAX_TOKEN) throw new InvalidToken(value, `${t} is outside 1..2^64-1`);
  return t;
}

/** parseFencingToken without throwing: the error explains what was wrong. */
export function tryParseFencingToken(value: unknown): bigint | InvalidFencingTokenError {
  try {
    return parseFencingToken(value);
  } catch (e) {
    if (e instanceof InvalidToken) return e;
    throw e;
  }
}

/** Refuses a Promise from a write callback (see FencingGuard). */
export function assertSynchronous(result: unknown): void {
  if (typeof result === "object" && result !== null && typeof (result as { then?: unknown }).then === "function") {
    throw new TypeError(
      "the guarded write returned a Promise: it must be synchronous so that it completes inside " +
        "the guard's critical section (use MemoryGuard.runAsync for asynchronous in-memory writes)",
    );
  }
}
