// The SDK's timer facility. Every delay the SDK waits for goes through a Timers: a lease's
// deadline and grace period, a keepalive request's timeout, a call's deadline, a retry's backoff.
// Production uses the global timers (SYSTEM_TIMERS); the deterministic lock simulation
// (testing/sim/sdk_client.ts) passes timers on its simulated clock, so the SDK's own lease code
// runs on simulated time. Internal: TenureClient takes it through its internal runtime argument.

/** Opaque: whatever setTimeout returned, handed back to clearTimeout. */
export type TimerHandle = unknown;

export interface Timers {
  /** Calls fn once, about ms milliseconds from now (on the same time base as the client's clock). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer that has not fired; undefined or a fired timer is a no-op. */
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** The global timers, looked up at call time (so node:test mock timers still apply). */
export const SYSTEM_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
};
