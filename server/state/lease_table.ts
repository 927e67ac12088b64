// Leases: TTL grants renewed by replicated keepalives and ended by guarded Expire commands. PURE.
//
// A lease is live while nowMs < deadlineMs. Past its deadline it is "expiring": it still exists
// (only a committed LeaseExpire removes it) but renewals and new acquires with it fail with
// LEASE_EXPIRED, so a renewal can never revive a lease whose client has already given it up.
// renewSeq counts renewals (and timer restarts); LeaseExpire carries the renewSeq the leader saw,
// so an Expire that races with a renewal committed just before it does nothing.
// A lease belongs to `owner`, the identity that granted it (caller.ts); the per-client counts are
// per exactly-once session, sessionKey(owner, clientId).

import { assert } from "../core/assert.ts";
import { sessionKey } from "./caller.ts";
import { DeadlineHeap } from "./deadline_heap.ts";
import { serverDeadlineMs } from "./limits.ts";
import type { ValidUntil } from "./results.ts";

export interface LeaseRecord {
  readonly leaseId: number;
  readonly clientId: string;
  /** The identity that granted it ("" anonymous: open mode, or granted before identities). */
  readonly owner: string;
  readonly ttlMs: number;
  readonly grantedAtMs: number;
  /** Leader time of the last grant, renewal or timer restart. */
  readonly renewedAtMs: number;
  readonly deadlineMs: number;
  readonly renewSeq: number;
}

export interface DueLease {
  readonly leaseId: number;
  readonly renewSeq: number;
}

/** Stale expiry entries allowed beyond this many per live lease (plus a constant) before a rebuild. */
const EXPIRY_ENTRIES_PER_LEASE_MAX = 4;
const EXPIRY_ENTRIES_SLACK = 1024;

export class LeaseTable {
  private readonly leases = new Map<number, LeaseRecord>();
  private readonly countByClient = new Map<string, number>();
  /**
   * Every lease's deadline, earliest first, keyed (leaseId, renewSeq): due() reads only the
   * leases past their deadline, not all of them (the leader asks every tick). A renewal or
   * removal leaves the old entry stale; stale entries are dropped at the top or by a rebuild.
   */
  private readonly expiries = new DeadlineHeap();

  constructor(private readonly rho: number) {}

  static restore(rho: number, records: readonly LeaseRecord[]): LeaseTable {
    const table = new LeaseTable(rho);
    for (const record of records) table.insert(record);
    return table;
  }

  get size(): number {
    return this.leases.size;
  }

  get(leaseId: number): LeaseRecord | undefined {
    return this.leases.get(leaseId);
  }

  isLive(lease: LeaseRecord, nowMs: number): boolean {
    return nowMs < lease.deadlineMs;
  }

  /** Leases of one exactly-once session (sessionKey). */
  leaseCountOf(session: string): number {
    return this.countByClient.get(session) ?? 0;
  }

  has(leaseId: number): boolean {
    return this.leases.has(leaseId);
  }

  grant(options: { leaseId: number; clientId: string; owner: string; ttlMs: number; nowMs: number }): LeaseRecord {
    assert(!this.leases.has(options.leaseId), `lease ${options.leaseId} granted twice`);
    const record: LeaseRecord = {
      leaseId: options.leaseId,
      clientId: options.clientId,
      owner: options.owner,
      ttlMs: options.ttlMs,
      grantedAtMs: options.nowMs,
      renewedAtMs: options.nowMs,
      deadlineMs: serverDeadlineMs(options.nowMs, options.ttlMs, this.rho),
      renewSeq: 0,
    };
    this.insert(record);
    return record;
  }

  /** Renews a live lease at full TTL from nowMs; the caller checked liveness. */
  renew(leaseId: number, nowMs: number): LeaseRecord {
    const lease = this.leases.get(leaseId);
    assert(lease !== undefined && this.isLive(lease, nowMs), `renew of dead lease ${leaseId}`);
    return this.restart(lease, nowMs);
  }

  remove(leaseId: number): LeaseRecord {
    const lease = this.leases.get(leaseId);
    assert(lease !== undefined, `remove of unknown lease ${leaseId}`);
    this.leases.delete(leaseId);
    const session = sessionOf(lease);
    const count = this.leaseCountOf(session) - 1;
    assert(count >= 0, "lease count per client went negative");
    if (count === 0) this.countByClient.delete(session);
    else this.countByClient.set(session, count);
    return lease;
  }

  /** A new leader restarts every lease at full length, expiring ones included. */
  restartAll(nowMs: number): number {
    for (const lease of [...this.leases.values()]) this.restart(lease, nowMs);
    return this.leases.size;
  }

  /**
   * Leases whose deadline has passed at nowMs, earliest deadline first (ties by lease id), at
   * most `max`. O((due + stale) × log n): the due leases stay indexed (they exist until a
   * LeaseExpire applies), the stale entries met on the way are dropped.
   */
  due(nowMs: number, max: number): DueLease[] {
    const out: DueLease[] = [];
    while (out.length < max) {
      const top = this.expiries.peek();
      if (top === null || top.deadlineMs > nowMs) break; // live: nowMs < deadlineMs
      this.expiries.pop();
      const lease = this.leases.get(top.id);
      // Renewed or removed since (a removed id may be granted again, at renewSeq 0: hence the deadline too).
      if (lease === undefined || lease.renewSeq !== top.version || lease.deadlineMs !== top.deadlineMs) continue;
      out.push({ leaseId: lease.leaseId, renewSeq: lease.renewSeq });
    }
    for (const due of out) this.index(this.leases.get(due.leaseId) as LeaseRecord);
    return out;
  }

  validUntil(lease: LeaseRecord): ValidUntil {
    return {
      ttlMs: lease.ttlMs,
      rho: this.rho,
      appliedAtMs: lease.renewedAtMs,
      serverDeadlineMs: lease.deadlineMs,
    };
  }

  /** In grant order (the snapshot's order; ids are random since codec v2). */
  records(): LeaseRecord[] {
    return [...this.leases.values()];
  }

  private restart(lease: LeaseRecord, nowMs: number): LeaseRecord {
    const next: LeaseRecord = {
      ...lease,
      renewedAtMs: nowMs,
      deadlineMs: serverDeadlineMs(nowMs, lease.ttlMs, this.rho),
      renewSeq: lease.renewSeq + 1,
    };
    // Machine time never decreases, so a restart never shortens a lease.
    assert(next.deadlineMs >= lease.deadlineMs, `lease ${lease.leaseId} deadline would shrink`);
    this.leases.set(lease.leaseId, next);
    this.index(next);
    return next;
  }

  private insert(record: LeaseRecord): void {
    assert(!this.leases.has(record.leaseId), `duplicate lease ${record.leaseId}`);
    this.leases.set(record.leaseId, record);
    const session = sessionOf(record);
    this.countByClient.set(session, this.leaseCountOf(session) + 1);
    this.index(record);
  }

  /** Indexes a lease's current deadline; rebuilds the index once stale entries dominate it. */
  private index(lease: LeaseRecord): void {
    this.expiries.push(lease.deadlineMs, lease.leaseId, lease.renewSeq);
    if (this.expiries.size <= EXPIRY_ENTRIES_PER_LEASE_MAX * this.leases.size + EXPIRY_ENTRIES_SLACK) return;
    this.expiries.rebuild([...this.leases.values()].map((l) => ({ deadlineMs: l.deadlineMs, id: l.leaseId, version: l.renewSeq })));
  }

  /** Test hook: the expiry index's entry count (stale ones included) and its heap order. */
  expiryIndexSize(): number {
    this.expiries.assertValid();
    return this.expiries.size;
  }
}

/** The exactly-once session that granted a lease. */
export function sessionOf(lease: LeaseRecord): string {
  return sessionKey(lease.owner, lease.clientId);
}
