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

  // The sifts move a hole instead of swapping pairs, and compare items directly: the queue sees
  // every simulator event (millions per CI run), and the guarded pairwise version was a tenth of
  // the simulator's time. Indexes are in bounds by the loop conditions.
  private siftUp(start: number): void {
    const heap = this.heap;
    const item = heap[start] as Scheduled<T>;
    let i = start;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = heap[parentIndex] as Scheduled<T>;
      if (!before(item, parent)) break;
      heap[i] = parent;
      i = parentIndex;
    }
    heap[i] = item;
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[start] as Scheduled<T>;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let child = heap[l] as Scheduled<T>;
      let childIndex = l;
      if (r < n) {
        const right = heap[r] as Scheduled<T>;
        if (before(right, child)) {
          child = right;
          childIndex = r;
        }
      }
      if (!before(child, item)) break;
      heap[i] = child;
      i = childIndex;
    }
    heap[i] = item;
  }
}

/** Earlier time first; at the same time, earlier insertion first (seq is unique). */
function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
