// A binary min-heap of (deadlineMs, id, version) on parallel arrays: the leases' expiry index, so
// the leader's timers cost O(due × log n) per tick instead of a scan of every lease. PURE.
//
// Entries are never updated in place: a renewal pushes a new entry and the old one goes stale
// (its version no longer matches the record); the owner drops stale entries as they reach the
// top, and rebuilds the heap from its records when stale ones outnumber them (rebuild()), so the
// size stays within a constant factor of the records on members that never pop (followers).
// Ties are ordered by id, then version, so the order is a function of the contents alone.

import { assert } from "../core/assert.ts";

export interface DeadlineEntry {
  readonly deadlineMs: number;
  readonly id: number;
  readonly version: number;
}

export class DeadlineHeap {
  private deadlines: number[] = [];
  private ids: number[] = [];
  private versions: number[] = [];

  get size(): number {
    return this.deadlines.length;
  }

  push(deadlineMs: number, id: number, version: number): void {
    this.deadlines.push(deadlineMs);
    this.ids.push(id);
    this.versions.push(version);
    this.siftUp(this.deadlines.length - 1);
  }

  /** The earliest entry, null when empty. */
  peek(): DeadlineEntry | null {
    if (this.deadlines.length === 0) return null;
    return { deadlineMs: this.deadlines[0] as number, id: this.ids[0] as number, version: this.versions[0] as number };
  }

  /** Removes and returns the earliest entry, null when empty. */
  pop(): DeadlineEntry | null {
    const top = this.peek();
    if (top === null) return null;
    const last = this.deadlines.length - 1;
    this.move(last, 0);
    this.deadlines.pop();
    this.ids.pop();
    this.versions.pop();
    if (this.deadlines.length > 0) this.siftDown(0);
    return top;
  }

  /** Replaces every entry with `entries` (O(n) heapify). */
  rebuild(entries: Iterable<DeadlineEntry>): void {
    this.deadlines = [];
    this.ids = [];
    this.versions = [];
    for (const e of entries) {
      this.deadlines.push(e.deadlineMs);
      this.ids.push(e.id);
      this.versions.push(e.version);
    }
    for (let i = (this.deadlines.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /** True when entry a comes before entry b. */
  private before(a: number, b: number): boolean {
    const da = this.deadlines[a] as number;
    const db = this.deadlines[b] as number;
    if (da !== db) return da < db;
    const ia = this.ids[a] as number;
    const ib = this.ids[b] as number;
    if (ia !== ib) return ia < ib;
    return (this.versions[a] as number) < (this.versions[b] as number);
  }

  private move(from: number, to: number): void {
    this.deadlines[to] = this.deadlines[from] as number;
    this.ids[to] = this.ids[from] as number;
    this.versions[to] = this.versions[from] as number;
  }

  private swap(a: number, b: number): void {
    const d = this.deadlines[a] as number;
    const i = this.ids[a] as number;
    const v = this.versions[a] as number;
    this.move(b, a);
    this.deadlines[b] = d;
    this.ids[b] = i;
    this.versions[b] = v;
  }

  private siftUp(start: number): void {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(start: number): void {
    const n = this.deadlines.length;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) return;
      const right = left + 1;
      const child = right < n && this.before(right, left) ? right : left;
      if (!this.before(child, i)) return;
      this.swap(i, child);
      i = child;
    }
  }

  /** Test hook: the heap property holds at every node. */
  assertValid(): void {
    for (let i = 1; i < this.deadlines.length; i++) assert(!this.before(i, (i - 1) >> 1), `heap order broken at ${i}`);
  }
}
