// Contended: W workers on ONE lock name, each a blocking acquire (queued FIFO by the server,
// etcd: its revision-ordered mutex queue) then an immediate release. The rate is handoffs/s;
// the latency is the acquire's wait.

import { performance } from "node:perf_hooks";
import { closedLoop } from "./closed_loop.ts";
import { loopResult, OPS_PER_WORKER_MAX, type RunContext, withCpu } from "./context.ts";
import type { BenchResult } from "./results.ts";

export async function contended(ctx: RunContext, workers: number): Promise<BenchResult> {
  const sessions = await Promise.all(Array.from({ length: workers }, (_, w) => ctx.target.lockSession(w)));
  const name = `bench/contended/r${ctx.rep}`;
  try {
    const leader = await ctx.cluster.leaderId(5000);
    const { value, cpu } = await withCpu(ctx.cluster, leader, () =>
      closedLoop({ workers, ...ctx.windows, opsPerWorkerMax: OPS_PER_WORKER_MAX }, async (w) => {
        const s = sessions[w];
        if (!s) throw new Error(`no session ${w}`);
        const t0 = performance.now();
        const held = await s.acquire(name);
        const waitMs = performance.now() - t0;
        await held.release();
        return { waitMs };
      }),
    );
    return loopResult(ctx, `contended${workers}`, "handoffs/s", value, cpu, "wait");
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
