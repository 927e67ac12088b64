// The client's view of a lease's validity (DESIGN.md §3, lease.proto). The client never compares
// leader time with its own clock; it takes t0 on its OWN monotonic clock before sending the FIRST
// attempt of a grant or renewal, and stops at t0 + ttl * (1 - rho) - margin. The server keeps the
// lease until at least applied + ttl * (1 + rho) and applied >= t0, so the client stops first even
// if the two clocks drift apart by up to rho.

export interface ValidityInput {
  /** Monotonic ms taken before the first attempt was sent. */
  readonly t0Ms: number;
  readonly ttlMs: number;
  /** Clock-rate error bound (0.01 = 1%). */
  readonly rho: number;
  /** Extra safety kept by the client (e.g. for a GC pause between check and write). */
  readonly marginMs: number;
}

/** Monotonic ms at which the holder must consider the lease (maybe) lost. */
export function clientDeadlineMs(v: ValidityInput): number {
  return v.t0Ms + v.ttlMs * (1 - v.rho) - v.marginMs;
}

/** When the next renewal should go out: a third of the TTL after the last one was sent. */
export function renewAtMs(t0Ms: number, ttlMs: number): number {
  return t0Ms + ttlMs / 3;
}
