// Named mutexes with a holder, a fencing token, FIFO waiters and lock-delay. PURE.
// Locks use it directly; elections (election_table.ts) are the same table whose holder has a value.
//
// States:  FREE    no record (a record is deleted when it has no holder, no delay, no waiters)
//          HELD    holder set; waiters queue behind it
//          DELAYED holder's lease EXPIRED; nobody gets it until LockDelayEnd(name, delayId)
//          PARKED  only while the cluster is frozen (ctx.grantsFrozen): freed (release, revoke,
//                  resign, delay end) with waiters, who stay queued with nobody holding it;
//                  thaw() hands each on (status() reports it FREE with its waiters)
// An explicit release (or revoke, or resign) hands it to the next waiter at once; only an expiry
// delays it (Chubby's lock-delay). Every grant takes the next cluster-wide token; a lease that
// acquires a lock it already holds gets its existing grant back (no new token).
//
// The table counts what the aggregate limits bound (usage()): its waiters, and the stored bytes of
// the values its holders and waiters carry (valueStoredBytes; always 0 for locks, whose value is
// empty). Every change of a holder or a waiter goes through setHolder / addWaiter / takeWaiter,
// which keep the counts; restore recounts them.

import { assert } from "../core/assert.ts";
import type { ApplyContext } from "./apply_context.ts";
import { valueStoredBytes } from "./limits.ts";

export type TableKind = "lock" | "election";
export type MutexState = "FREE" | "HELD" | "DELAYED";

export interface Holder {
  readonly leaseId: number;
  readonly token: number;
  readonly value: string;
  readonly grantedAtMs: number;
}

export interface Waiter {
  readonly leaseId: number;
  readonly value: string;
}

export interface Delay {
  /** Raft index of the entry that started (or restarted) the delay: unique per name. */
  readonly delayId: number;
  readonly untilMs: number;
}

export interface MutexRecord {
  readonly name: string;
  holder: Holder | null;
  readonly waiters: Waiter[];
  delay: Delay | null;
}

export interface MutexStatus {
  readonly name: string;
  readonly state: MutexState;
  readonly holder: Holder | null;
  readonly waiters: readonly Waiter[];
  readonly delay: Delay | null;
}

export type AcquireOutcome =
  | { readonly kind: "granted"; readonly holder: Holder }
  | { readonly kind: "queued"; readonly position: number }
  /** A try-lock refused: `holderToken` is the holder's token (0: none, the name is in lock-delay). */
  | { readonly kind: "held"; readonly holderToken: number }
  | { readonly kind: "waitersFull" }
  /** Every lock and election together already has waitersMax waiters. */
  | { readonly kind: "waitersTotalFull" }
  /** The value's stored bytes do not fit what is left of valueBytesTotalMax. */
  | { readonly kind: "valuesFull"; readonly valueBytes: number }
  | { readonly kind: "namesFull" };

/** What the aggregate limits count, per table. */
export interface TableUsage {
  readonly waiters: number;
  /** Stored bytes (valueStoredBytes) of every holder's and waiter's value. */
  readonly valueBytes: number;
}

export interface AcquireRequest {
  readonly name: string;
  readonly leaseId: number;
  readonly value: string;
  readonly wait: boolean;
  /** False when the name table is full: only existing names can be acquired. */
  readonly canCreate: boolean;
  /** waitersPerLockMax: waiters of this one name. */
  readonly waitersMax: number;
  /** False when every table together is at waitersMax: nobody may start waiting. */
  readonly canQueue: boolean;
  /** What is left of valueBytesTotalMax, over every table. */
  readonly valueBytesRoom: number;
}

export class LockTable {
  private readonly records = new Map<string, MutexRecord>();
  /** Names where a lease holds or waits, in the order it joined them. Rebuilt on restore. */
  private readonly namesByLease = new Map<number, Set<string>>();
  private readonly delayed = new Set<string>();
  /** PARKED names: no holder, no delay, waiters (only while frozen). */
  private readonly parked = new Set<string>();
  private waiterCount = 0;
  private valueBytes = 0;

  constructor(readonly table: TableKind) {}

  static restore(table: TableKind, records: readonly MutexRecord[]): LockTable {
    const out = new LockTable(table);
    for (const r of records) {
      assert(r.holder !== null || r.delay !== null || r.waiters.length > 0, `restored record ${r.name} is FREE`);
      assert(r.holder === null || r.delay === null, `restored record ${r.name} held and delayed`);
      assert(!out.records.has(r.name), `restored record ${r.name} twice`);
      const copy: MutexRecord = { name: r.name, holder: null, waiters: [], delay: r.delay };
      out.records.set(r.name, copy);
      if (r.holder !== null) out.setHolder(copy, r.holder);
      for (const w of r.waiters) out.addWaiter(copy, w);
      if (copy.delay !== null) out.delayed.add(r.name);
      if (r.holder === null && r.delay === null) out.parked.add(r.name);
    }
    return out;
  }

  get size(): number {
    return this.records.size;
  }

  usage(): TableUsage {
    return { waiters: this.waiterCount, valueBytes: this.valueBytes };
  }

  /** Names held now, O(1) (metrics): a record is held, in lock-delay or parked, never FREE. */
  heldCount(): number {
    return this.records.size - this.delayed.size - this.parked.size;
  }

  /** Names parked (freed while frozen, waiters queued), O(1). */
  parkedCount(): number {
    return this.parked.size;
  }

  /** Whether `leaseId` holds `name` or waits for it (an acquire that asks for nothing new). */
  holdsOrWaits(name: string, leaseId: number): boolean {
    const record = this.records.get(name);
    if (record === undefined) return false;
    return record.holder?.leaseId === leaseId || record.waiters.some((w) => w.leaseId === leaseId);
  }

  /**
   * The freeze ended (Thaw; ctx.grantsFrozen now false): every parked name is handed to its first
   * live waiter with a new token, in name order (a restored replica agrees). Returns the grants.
   */
  thaw(ctx: ApplyContext): number {
    assert(ctx.grantsFrozen?.() !== true, "thaw while frozen");
    let granted = 0;
    for (const name of [...this.parked].sort()) {
      const record = this.records.get(name);
      assert(record !== undefined && record.holder === null && record.delay === null, `parked index stale for ${name}`);
      this.parked.delete(name);
      this.handOff(ctx, record);
      if (record.holder !== null) granted += 1;
    }
    return granted;
  }

  /** Names in lock-delay now, O(1) (metrics). */
  delayedCount(): number {
    return this.delayed.size;
  }

  has(name: string): boolean {
    return this.records.has(name);
  }

  acquire(ctx: ApplyContext, req: AcquireRequest): AcquireOutcome {
    // Every refusal comes before the first change: a refused acquire leaves the table as it was.
    const valueBytes = valueStoredBytes(req.value);
    const record = this.records.get(req.name);
    if (record === undefined) {
      if (!req.canCreate) return { kind: "namesFull" };
      if (valueBytes > req.valueBytesRoom) return { kind: "valuesFull", valueBytes };
      const created: MutexRecord = { name: req.name, holder: null, waiters: [], delay: null };
      this.records.set(req.name, created);
      return { kind: "granted", holder: this.grant(ctx, created, req) };
    }
    if (record.holder?.leaseId === req.leaseId) return { kind: "granted", holder: record.holder };
    const queuedAt = record.waiters.findIndex((w) => w.leaseId === req.leaseId);
    if (queuedAt >= 0) return { kind: "queued", position: queuedAt + 1 };
    assert(record.holder !== null || record.delay !== null || this.parked.has(req.name), `record ${req.name} FREE but present`);
    if (!req.wait) return { kind: "held", holderToken: record.holder?.token ?? 0 };
    if (record.waiters.length >= req.waitersMax) return { kind: "waitersFull" };
    if (!req.canQueue) return { kind: "waitersTotalFull" };
    if (valueBytes > req.valueBytesRoom) return { kind: "valuesFull", valueBytes };
    this.addWaiter(record, { leaseId: req.leaseId, value: req.value });
    return { kind: "queued", position: record.waiters.length };
  }

  /** Fenced: only the current holder's token releases; any other token is a no-op (false). */
  release(ctx: ApplyContext, name: string, token: number): boolean {
    const record = this.records.get(name);
    if (record === undefined || record.holder === null || record.holder.token !== token) return false;
    this.setHolder(record, null);
    this.handOff(ctx, record);
    return true;
  }

  /**
   * Sets the holder's value (election proclaim); false unless `token` is the current grant. The
   * caller checked that the new value fits valueBytesTotalMax (valueBytesDelta).
   */
  setValue(name: string, token: number, value: string): boolean {
    const record = this.records.get(name);
    if (record === undefined || record.holder === null || record.holder.token !== token) return false;
    this.setHolder(record, { ...record.holder, value });
    return true;
  }

  /** How much the stored value bytes grow if the holder of `name` gets `value` (0 if no holder). */
  valueBytesDelta(name: string, value: string): number {
    const holder = this.records.get(name)?.holder ?? null;
    return holder === null ? 0 : valueStoredBytes(value) - valueStoredBytes(holder.value);
  }

  cancelWait(name: string, leaseId: number): boolean {
    const record = this.records.get(name);
    if (record === undefined) return false;
    const at = record.waiters.findIndex((w) => w.leaseId === leaseId);
    if (at < 0) return false;
    this.takeWaiter(record, at);
    this.dropIfParkedEmpty(record);
    return true;
  }

  /**
   * The lease is gone: it leaves every queue, and every name it holds is handed on (revoke) or
   * DELAYED for lockDelayMs (expiry; 0 hands on at once).
   */
  removeLease(ctx: ApplyContext, options: { leaseId: number; expired: boolean; lockDelayMs: number }): void {
    const names = this.namesByLease.get(options.leaseId);
    if (names === undefined) return;
    this.namesByLease.delete(options.leaseId);
    // Sorted, not join order: a restored replica rebuilds this index in another order, and the
    // order decides which hand-off takes which token.
    for (const name of [...names].sort()) {
      const record = this.records.get(name);
      assert(record !== undefined, `lease index names missing record ${name}`);
      const at = record.waiters.findIndex((w) => w.leaseId === options.leaseId);
      if (at >= 0) this.takeWaiter(record, at);
      if (this.dropIfParkedEmpty(record)) continue;
      if (record.holder?.leaseId !== options.leaseId) continue;
      this.setHolder(record, null);
      if (options.expired && options.lockDelayMs > 0) {
        this.startDelay(ctx, record, ctx.nowMs + options.lockDelayMs);
      } else {
        this.handOff(ctx, record);
      }
    }
  }

  /** Guarded: ends the delay only if it is still `delayId` and its time has come. */
  endDelay(ctx: ApplyContext, name: string, delayId: number): boolean {
    const record = this.records.get(name);
    if (record === undefined || record.delay === null) return false;
    if (record.delay.delayId !== delayId || ctx.nowMs < record.delay.untilMs) return false;
    record.delay = null;
    this.delayed.delete(name);
    this.handOff(ctx, record);
    return true;
  }

  /** A new leader restarts every lock-delay at full length. */
  restartDelays(ctx: ApplyContext, lockDelayMs: number): number {
    for (const name of this.delayed) {
      const record = this.records.get(name);
      assert(record !== undefined && record.delay !== null, `delayed index stale for ${name}`);
      record.delay = { delayId: ctx.index, untilMs: ctx.nowMs + lockDelayMs };
    }
    return this.delayed.size;
  }

  dueDelays(nowMs: number, max: number): { readonly name: string; readonly delayId: number }[] {
    const out: { readonly name: string; readonly delayId: number }[] = [];
    for (const name of this.delayed) {
      if (out.length >= max) break;
      const delay = this.records.get(name)?.delay;
      if (delay !== undefined && delay !== null && nowMs >= delay.untilMs) {
        out.push({ name, delayId: delay.delayId });
      }
    }
    return out;
  }

  status(name: string): MutexStatus {
    const r = this.records.get(name);
    if (r === undefined) return { name, state: "FREE", holder: null, waiters: [], delay: null };
    const state: MutexState = r.holder !== null ? "HELD" : "DELAYED";
    return { name, state, holder: r.holder, waiters: [...r.waiters], delay: r.delay };
  }

  holder(name: string): Holder | null {
    return this.records.get(name)?.holder ?? null;
  }

  /** Names a lease holds or waits for. */
  namesOf(leaseId: number): string[] {
    return [...(this.namesByLease.get(leaseId) ?? [])].sort();
  }

  /** In creation order: the canonical order for snapshots. */
  snapshotRecords(): MutexRecord[] {
    return [...this.records.values()].map((r) => ({ ...r, waiters: [...r.waiters] }));
  }

  private grant(ctx: ApplyContext, record: MutexRecord, who: Waiter): Holder {
    assert(record.holder === null && record.delay === null, `grant of busy ${record.name}`);
    const token = ctx.nextToken();
    const holder: Holder = { leaseId: who.leaseId, token, value: who.value, grantedAtMs: ctx.nowMs };
    this.setHolder(record, holder);
    ctx.events.push({
      kind: "granted",
      table: this.table,
      name: record.name,
      leaseId: holder.leaseId,
      owner: ctx.leaseOwner(holder.leaseId),
      token: holder.token,
      value: holder.value,
      validUntil: ctx.leaseValidity?.(holder.leaseId) ?? null,
    });
    return holder;
  }

  /** A parked name whose last waiter left is FREE: its record goes ("freed" was told at parking). */
  private dropIfParkedEmpty(record: MutexRecord): boolean {
    if (!this.parked.has(record.name) || record.waiters.length > 0) return false;
    this.parked.delete(record.name);
    this.records.delete(record.name);
    return true;
  }

  /**
   * Next waiter (FIFO) gets it with a new token; with no waiters the record goes (FREE). While
   * frozen a name with waiters is parked instead: they stay queued until thaw().
   */
  private handOff(ctx: ApplyContext, record: MutexRecord): void {
    if (ctx.grantsFrozen?.() === true && record.waiters.length > 0) {
      this.parked.add(record.name);
      ctx.events.push({ kind: "freed", table: this.table, name: record.name });
      return;
    }
    while (record.waiters.length > 0) {
      const next = this.takeWaiter(record, 0);
      // A waiter whose lease is past its deadline (its expiry not yet committed) is passed over:
      // its client no longer believes it could hold anything, and granting it would only park
      // the lock until that expiry plus lock-delay (etcd's "lease not re-checked after the
      // wait", found by Jepsen). Its blocked call ends with the lease's expiry.
      if (!ctx.leaseLive(next.leaseId)) continue;
      this.grant(ctx, record, next);
      return;
    }
    this.records.delete(record.name);
    ctx.events.push({ kind: "freed", table: this.table, name: record.name });
  }

  private startDelay(ctx: ApplyContext, record: MutexRecord, untilMs: number): void {
    record.delay = { delayId: ctx.index, untilMs };
    this.delayed.add(record.name);
    ctx.events.push({ kind: "delayed", table: this.table, name: record.name, untilMs });
  }

  /** The one way a holder changes: keeps the lease index and the value bytes. */
  private setHolder(record: MutexRecord, holder: Holder | null): void {
    const previous = record.holder;
    if (previous !== null) {
      this.valueBytes -= valueStoredBytes(previous.value);
      if (holder?.leaseId !== previous.leaseId) this.unlink(previous.leaseId, record.name);
    }
    record.holder = holder;
    if (holder !== null) {
      this.valueBytes += valueStoredBytes(holder.value);
      this.link(holder.leaseId, record.name);
    }
    assert(this.valueBytes >= 0, "value bytes went negative");
  }

  private addWaiter(record: MutexRecord, waiter: Waiter): void {
    assert(
      record.waiters.every((w) => w.leaseId !== waiter.leaseId),
      `lease ${waiter.leaseId} waits twice on ${record.name}`,
    );
    record.waiters.push(waiter);
    this.waiterCount += 1;
    this.valueBytes += valueStoredBytes(waiter.value);
    this.link(waiter.leaseId, record.name);
  }

  /** Removes the waiter at `at` (it leaves the lease index too) and returns it. */
  private takeWaiter(record: MutexRecord, at: number): Waiter {
    const [waiter] = record.waiters.splice(at, 1);
    assert(waiter !== undefined, `no waiter ${at} on ${record.name}`);
    this.waiterCount -= 1;
    this.valueBytes -= valueStoredBytes(waiter.value);
    this.unlink(waiter.leaseId, record.name);
    assert(this.waiterCount >= 0 && this.valueBytes >= 0, "waiter counts went negative");
    return waiter;
  }

  private link(leaseId: number, name: string): void {
    let names = this.namesByLease.get(leaseId);
    if (names === undefined) {
      names = new Set();
      this.namesByLease.set(leaseId, names);
    }
    names.add(name);
  }

  private unlink(leaseId: number, name: string): void {
    const names = this.namesByLease.get(leaseId);
    if (names === undefined) return;
    names.delete(name);
    if (names.size === 0) this.namesByLease.delete(leaseId);
  }
}
