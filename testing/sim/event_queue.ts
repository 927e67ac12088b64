// A deterministic priority queue of simulator events: ordered by time, then by insertion order,
// so two events at the same instant always run in the same order for a given seed.

export interface Scheduled<T> {
  readonly atMs: number;
  readonly seq: number;
  readonly event: T;
}

export class EventQueue<T> {
  private heap: Scheduled<T>[] = [];
  private seqNext = 0;

  constructor(private readonly eventsMax: number) {}

  size(): number {
    return this.heap.length;
  }

  push(atMs: number, event: T): void {
    if (this.heap.length >= this.eventsMax) {
      throw new Error(`simulator event queue over its limit of ${this.eventsMax}`);
    }
    const item = { atMs, seq: this.seqNext++, event };
    this.heap.push(item);
    this.siftUp(this.heap.length - 1);
  }

  peekTimeMs(): number | undefined {
    return this.heap[0]?.atMs;
  }

  pop(): Scheduled<T> | undefined {
    const top = this.heap[0];
    const last = this.heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i];
    const b = this.heap[j];
    if (!a || !b) return false;
    return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i];
    const b = this.heap[j];
    if (!a || !b) return;
    this.heap[i] = b;
    this.heap[j] = a;
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.heap.length && this.less(l, m)) m = l;
      if (r < this.heap.length && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
