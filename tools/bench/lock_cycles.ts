// Lock cycles: W workers, each with one lease (its session) and a lock name of its own, cycle
// a blocking acquire + release (etcd: v3lock Lock + Unlock). No contention: the figure is the
// request path, not the lock queue.

import { loopResult, type RunContext, sessionLoop } from "./context.ts";
import type { BenchResult } from "./results.ts";

export async function lockCycles(ctx: RunContext, workers: number): Promise<BenchResult> {
  const sessions = await Promise.all(Array.from({ length: workers }, (_, w) => ctx.target.lockSession(w)));
  try {
    const { value, cpu } = await sessionLoop(ctx, sessions, async (s, w) => {
      const held = await s.acquire(`bench/lock/r${ctx.rep}/w${w}`);
      await held.release();
      return undefined;
    });
    return loopResult(ctx, `lock${workers}`, "cycles/s", value, cpu);
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
