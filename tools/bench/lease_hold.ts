// What the keepalive workload needs from a system: N leases granted (bounded in time) and kept
// alive by the client, a measured window over which renewals are counted, and a check that
// every lease is still alive at the end (by the client's own view and by the server's count).

import type { LatencySummary } from "./latency.ts";

export interface HoldOptions {
  readonly count: number;
  readonly ttlMs: number;
  /** Grants in flight at once. */
  readonly grantConcurrency: number;
  /** Granting stops here even if `count` is not reached (the figure then says how many). */
  readonly grantDeadlineMs: number;
  readonly log: (line: string) => void;
}

export interface HoldWindow {
  readonly renewals: number;
  readonly ratePerS: number;
  /** Renewal round trips: etcd's raw streams' own; Tenure's from a probe beside the SDK's. */
  readonly latency: LatencySummary | null;
  /** Leases alive by the client's view at the window's end, and by the server's count. */
  readonly aliveAtEnd: number;
  readonly serverCount: number;
  readonly lost: number;
  /** Keepalive streams that failed and were reopened (the raw etcd client's; the SDK's own). */
  readonly streamErrors: number;
}

export interface LeaseHold {
  readonly granted: number;
  readonly grantMs: number;
  readonly grantErrors: number;
  measure(windowMs: number): Promise<HoldWindow>;
  close(): Promise<void>;
}

/** Runs `grantOne(i)` for i = 0.. with `concurrency` in flight until `count` or the deadline;
 *  returns how many succeeded and failed. Stops early after many failures in a row. */
export async function grantAll(
  o: HoldOptions,
  grantOne: (i: number) => Promise<void>,
): Promise<{ granted: number; errors: number; grantMs: number; firstError: string }> {
  const t0 = performance.now();
  const deadline = t0 + o.grantDeadlineMs;
  let next = 0;
  let granted = 0;
  let errors = 0;
  let failuresInARow = 0;
  let firstError = "";
  let lastLog = t0;
  const worker = async (): Promise<void> => {
    while (next < o.count && performance.now() < deadline && failuresInARow < 1000) {
      const i = next++;
      try {
        await grantOne(i);
        granted++;
        failuresInARow = 0;
      } catch (e) {
        errors++;
        failuresInARow++;
        if (firstError === "") firstError = e instanceof Error ? e.message : String(e);
        await new Promise((r) => setTimeout(r, 10));
      }
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        o.log(`  granted ${granted}/${o.count} (${((granted * 1000) / (lastLog - t0)).toFixed(0)}/s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.grantConcurrency }, () => worker()));
  return { granted, errors, grantMs: performance.now() - t0, firstError };
}
