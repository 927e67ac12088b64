// Leader time: only the leader reads a clock, and it stamps every proposal with a time in the
// state machine's domain (DESIGN.md §3 "Time"; TigerBeetle's "consensus drives time").
//
// On promotion the base is the machine's own time (the largest stamp applied so far); after
// that the stamp advances with this process's monotonic clock. Stamps never go backwards.

export interface MonotonicClock {
  /** Milliseconds from an arbitrary origin; never decreases (performance.now() in production). */
  monotonicMs(): number;
}

export class LeaderClock {
  private baseMs = 0;
  private monotonicAtBaseMs = 0;
  private lastStampMs = 0;
  private term = -1;

  constructor(private readonly clock: MonotonicClock) {}

  /** Starts leader time for `term` at machineTimeMs (called once per promotion). */
  promote(term: number, machineTimeMs: number): void {
    this.term = term;
    this.baseMs = Math.max(machineTimeMs, this.lastStampMs);
    this.monotonicAtBaseMs = this.clock.monotonicMs();
  }

  isLeaderOf(term: number): boolean {
    return this.term === term;
  }

  demote(): void {
    this.term = -1;
  }

  /** The stamp for a proposal now: an integer, non-decreasing. */
  stampMs(): number {
    const elapsedMs = Math.max(0, this.clock.monotonicMs() - this.monotonicAtBaseMs);
    const stamp = Math.floor(this.baseMs + elapsedMs);
    this.lastStampMs = Math.max(this.lastStampMs, stamp);
    return this.lastStampMs;
  }
}
