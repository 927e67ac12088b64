// Contended: W workers on ONE lock name, each a blocking acquire (queued FIFO by the server,
// etcd: its revision-ordered mutex queue) then an immediate release. The rate is handoffs/s;
// the latency is the acquire's wait.

import { performance } from "node:perf_hooks";
import { loopResult, type RunContext, sessionLoop } from "./context.ts";
import type { BenchResult } from "./results.ts";

export async function contended(ctx: RunContext, workers: number): Promise<BenchResult> {
  const sessions = await Promise.all(Array.from({ length: workers }, (_, w) => ctx.target.lockSession(w)));
  const name = `bench/contended/r${ctx.rep}`;
  try {
    const { value, cpu } = await sessionLoop(ctx, sessions, async (s) => {
      const t0 = performance.now();
      const held = await s.acquire(name);
      const waitMs = performance.now() - t0;
      await held.release();
      return { waitMs };
    });
    return loopResult(ctx, `contended${workers}`, "handoffs/s", value, cpu, "wait");
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
