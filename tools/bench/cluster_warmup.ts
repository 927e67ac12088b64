// A fresh cluster's warm-up, before its first measured figure and for both systems alike: a few
// seconds of the same closed-loop load (lock cycles, then lease grant + revoke, at 16 workers),
// its results logged and discarded. Why: Tenure runs on V8, which interprets a function until it
// is hot and compiles it with TurboFan only after thousands of calls, so a cluster's first
// seconds measure its compiler, not its steady state: lock1 on a fresh cluster gave 117
// cycles/s after a 1 s window warm-up and 220 after a 12 s one (2026-12-07). etcd is compiled
// ahead of time and loses nothing by it; the generator (this process, also on V8) warms up for
// both. A service runs for weeks, so the steady state is the figure a user sees.

import type { RunContext } from "./context.ts";
import { leaseCycles } from "./lease_cycles.ts";
import { lockCycles } from "./lock_cycles.ts";

const WARMUP_WORKERS = 16;

export async function warmUpCluster(ctx: RunContext, warmupMs: number): Promise<void> {
  if (warmupMs <= 0) return;
  const half = { warmupMs: 0, measureMs: warmupMs / 2 };
  const warm = { ...ctx, windows: half };
  const lock = await lockCycles(warm, WARMUP_WORKERS);
  const lease = await leaseCycles(warm, WARMUP_WORKERS);
  ctx.log(
    `  cluster warm-up (${(warmupMs / 1000).toFixed(0)} s, discarded): lock${WARMUP_WORKERS} ${lock.value.toFixed(0)} cycles/s, lease${WARMUP_WORKERS} ${lease.value.toFixed(0)} cycles/s${lock.errors + lease.errors > 0 ? `, ${lock.errors + lease.errors} errors` : ""}`,
  );
}
