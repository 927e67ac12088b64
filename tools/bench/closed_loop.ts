// The closed-loop load generator, the same for both systems: W async workers, each issuing its
// next op as soon as its last one returns. A warm-up, then a measured window: an op counts, and
// its latency is recorded, if it STARTED inside the window (so the window's end cuts no op short
// and none is counted twice); ops/s = counted ops / window. Every worker stops at the window's
// end or after opsPerWorkerMax ops, whichever comes first, and each op is bounded by the
// caller's own deadline, so a loop always ends.

import { performance } from "node:perf_hooks";
import { type LatencySummary, LatencyRecorder } from "./latency.ts";

export interface LoopOptions {
  readonly workers: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly opsPerWorkerMax: number;
}

/** What one op may report besides its own duration: a wait inside it (a blocking acquire). */
export type OpOutcome = undefined | { readonly waitMs: number };

export interface LoopResult {
  readonly ops: number;
  readonly errors: number;
  readonly ratePerS: number;
  readonly measuredMs: number;
  readonly latency: LatencySummary;
  /** The waits ops reported (blocking acquires), if any did. */
  readonly wait: LatencySummary | null;
  /** Error messages (first 100 characters) and how often each occurred in the window. */
  readonly errorKinds: Readonly<Record<string, number>>;
}

export type Op = (worker: number) => Promise<OpOutcome>;

const ERROR_KINDS_MAX = 20;

export async function closedLoop(o: LoopOptions, op: Op): Promise<LoopResult> {
  const latency = new LatencyRecorder();
  const wait = new LatencyRecorder();
  const errorKinds = new Map<string, number>();
  let ops = 0;
  let errors = 0;
  let waits = 0;
  const start = performance.now();
  const windowStart = start + o.warmupMs;
  const windowEnd = windowStart + o.measureMs;
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; i < o.opsPerWorkerMax; i++) {
      const t0 = performance.now();
      if (t0 >= windowEnd) return;
      const counted = t0 >= windowStart;
      try {
        const outcome = await op(w);
        if (!counted) continue;
        ops++;
        latency.record(performance.now() - t0);
        if (outcome !== undefined) {
          waits++;
          wait.record(outcome.waitMs);
        }
      } catch (e) {
        if (!counted) continue;
        errors++;
        const kind = (e instanceof Error ? e.message : String(e)).slice(0, 100);
        if (errorKinds.has(kind) || errorKinds.size < ERROR_KINDS_MAX) errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
        // A failing op must not spin: the next one waits a little.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: o.workers }, (_, w) => worker(w)));
  return {
    ops,
    errors,
    ratePerS: ops / (o.measureMs / 1000),
    measuredMs: o.measureMs,
    latency: latency.summary(),
    wait: waits > 0 ? wait.summary() : null,
    errorKinds: Object.fromEntries(errorKinds),
  };
}
