// Lease cycles: W workers, each granting a lease and revoking it at once.

import { closedLoop } from "./closed_loop.ts";
import { loopResult, OPS_PER_WORKER_MAX, type RunContext, withCpu } from "./context.ts";
import type { BenchResult } from "./results.ts";

export async function leaseCycles(ctx: RunContext, workers: number): Promise<BenchResult> {
  const sessions = await Promise.all(Array.from({ length: workers }, (_, w) => ctx.target.leaseSession(w)));
  try {
    const leader = await ctx.cluster.leaderId(5000);
    const { value, cpu } = await withCpu(ctx.cluster, leader, () =>
      closedLoop({ workers, ...ctx.windows, opsPerWorkerMax: OPS_PER_WORKER_MAX }, async (w) => {
        const s = sessions[w];
        if (!s) throw new Error(`no session ${w}`);
        await s.revoke(await s.grant());
        return undefined;
      }),
    );
    return loopResult(ctx, `lease${workers}`, "cycles/s", value, cpu);
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
