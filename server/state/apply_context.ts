// What one apply hands to the tables: the entry's index and time, the token counter and the
// event list it fills. PURE.

import type { StateEvent, ValidUntil } from "./results.ts";

export interface ApplyContext {
  /** Raft index of the entry being applied. */
  readonly index: number;
  /** Leader time of the entry: max(previous, stamp), so never decreasing. */
  readonly nowMs: number;
  readonly events: StateEvent[];
  /** The next cluster-wide fencing token (see id_allocator.ts). */
  nextToken(): number;
  /** Whether a lease exists and is before its server deadline at nowMs. */
  leaseLive(leaseId: number): boolean;
  /** The identity owning a lease ("" if none: only the grantWithoutLeaseCheck bug grants those). */
  leaseOwner(leaseId: number): string;
  /** A lease's validity as of its last renewal (null if none), for the grant events of waiters. */
  leaseValidity?(leaseId: number): ValidUntil | null;
  /**
   * True while the cluster is frozen (Freeze): a name freed meanwhile keeps its waiters queued
   * instead of granting the next one (LockTable parks it until Thaw). Absent: never frozen.
   */
  grantsFrozen?(): boolean;
}
