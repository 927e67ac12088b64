// AbortSignal plumbing (connect-es protocol/signals.ts): every SDK call links the caller's signal,
// its timeoutMs and the client's own close signal into one signal, and always cleans up its timer.

import { TenureError } from "./errors.ts";

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
export function linkSignals(signals: readonly (AbortSignal | undefined)[], timeoutMs?: number): LinkedSignal {
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
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs !== undefined && !controller.signal.aborted) {
    timer = setTimeout(() => abort(new TenureError("DEADLINE_EXCEEDED", `deadline of ${timeoutMs} ms exceeded`)), Math.max(0, timeoutMs));
  }
  return {
    signal: controller.signal,
    cleanup: () => {
      if (timer) clearTimeout(timer);
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

/** Waits ms, or rejects with abortError(signal) as soon as the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
