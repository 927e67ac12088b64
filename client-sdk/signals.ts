// AbortSignal plumbing (connect-es protocol/signals.ts): every SDK call links the caller's signal,
// its timeoutMs and the client's own close signal into one signal, and always cleans up its timer.
// Timers come from the caller (the client's Timers, timers.ts): the SDK never reaches for the
// global ones itself, so a client on simulated time waits on simulated time only.

import { TenureError } from "./errors.ts";
import type { TimerHandle, Timers } from "./timers.ts";

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Deadline for the whole call, retries included. */
  readonly timeoutMs?: number;
}

export interface LinkedSignal {
  readonly signal: AbortSignal;
  readonly cleanup: () => void;
}

/** One signal aborted by any input signal or after timeoutMs (reason: a DEADLINE_EXCEEDED error). */
export function linkSignals(signals: readonly (AbortSignal | undefined)[]): LinkedSignal;
export function linkSignals(signals: readonly (AbortSignal | undefined)[], timeoutMs: number | undefined, timers: Timers): LinkedSignal;
export function linkSignals(signals: readonly (AbortSignal | undefined)[], timeoutMs?: number, timers?: Timers): LinkedSignal {
  const controller = new AbortController();
  const listeners: (() => void)[] = [];
  const abort = (reason: unknown): void => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      abort(s.reason);
      break;
    }
    const on = (): void => abort(s.reason);
    s.addEventListener("abort", on, { once: true });
    listeners.push(() => s.removeEventListener("abort", on));
  }
  let timer: TimerHandle | undefined;
  if (timeoutMs !== undefined && timers !== undefined && !controller.signal.aborted) {
    timer = timers.setTimeout(
      () => abort(new TenureError("DEADLINE_EXCEEDED", `deadline of ${timeoutMs} ms exceeded`)),
      Math.max(0, timeoutMs),
    );
  }
  return {
    signal: controller.signal,
    cleanup: () => {
      if (timer !== undefined) timers?.clearTimeout(timer);
      for (const remove of listeners) remove();
    },
  };
}

/** The abort reason as a TenureError (CANCELLED unless it already is one). */
export function abortError(signal: AbortSignal): TenureError {
  const r: unknown = signal.reason;
  if (r instanceof TenureError) return r;
  return new TenureError("CANCELLED", "the call was cancelled", { cause: r });
}

/** Waits ms on `timers`, or rejects with abortError(signal) as soon as the signal aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined, timers: Timers): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = (): void => {
      timers.clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    const timer = timers.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
