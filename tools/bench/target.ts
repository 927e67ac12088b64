// What the steady-state workloads drive, implemented once per system over raw gRPC
// (tenure_raw.ts, etcd_raw.ts), so both get the same closed loop and the same per-op work. Each
// worker has its own session: its own connection state, client id and lease.

export interface HeldLock {
  release(): Promise<void>;
}

export interface LockSession {
  /** A blocking acquire of `name` through the session's lease (returns at once if it is free). */
  acquire(name: string): Promise<HeldLock>;
  /** Revokes the session's lease. */
  close(): Promise<void>;
}

export interface LeaseSession {
  grant(): Promise<string>;
  revoke(id: string): Promise<void>;
  close(): Promise<void>;
}

export interface LoadTarget {
  lockSession(worker: number): Promise<LockSession>;
  leaseSession(worker: number): Promise<LeaseSession>;
  close(): void;
}

/** TTL of the bench's leases in the lock and lease workloads: far beyond any window, so no
 *  lease needs a keepalive while it is measured. */
export const SESSION_LEASE_TTL_S = 60;
/** Deadline of one call: a stuck call ends its op (as an error) instead of the loop. */
export const OP_TIMEOUT_MS = 10_000;
