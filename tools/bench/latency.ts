// Latency samples, kept exactly (no buckets) up to a bound, and their percentiles. A closed loop
// on this machine completes at most a few thousand ops a second, so a run's samples fit easily;
// past the bound later samples are dropped and `dropped` says how many.

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly dropped: number;
}

const SAMPLES_MAX = 2_000_000;

export class LatencyRecorder {
  private samples = new Float64Array(1024);
  private n = 0;
  private dropped = 0;

  record(ms: number): void {
    if (this.n >= SAMPLES_MAX) {
      this.dropped++;
      return;
    }
    if (this.n === this.samples.length) {
      const grown = new Float64Array(Math.min(SAMPLES_MAX, this.samples.length * 2));
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.n++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.samples.slice(0, this.n).sort();
    const at = (p: number): number => (this.n === 0 ? Number.NaN : (sorted[Math.min(this.n - 1, Math.floor(p * this.n))] ?? Number.NaN));
    return {
      count: this.n,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      maxMs: this.n === 0 ? Number.NaN : (sorted[this.n - 1] ?? Number.NaN),
      dropped: this.dropped,
    };
  }
}

/** The median of `values` (NaN for none); for an even count, the mean of the middle two. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] ?? Number.NaN) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
}
