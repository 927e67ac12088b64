// Lease cycles: W workers, each granting a lease and revoking it at once. Lease grants: W workers
// granting only, as the bulk grants towards 100,000 leases do (their rate at the same concurrency,
// on a cluster that holds few leases); the leases granted are revoked after the window.

import { loopResult, type RunContext, sessionLoop } from "./context.ts";
import type { BenchResult } from "./results.ts";

export async function leaseCycles(ctx: RunContext, workers: number): Promise<BenchResult> {
  const sessions = await Promise.all(Array.from({ length: workers }, (_, w) => ctx.target.leaseSession(w)));
  try {
    const { value, cpu } = await sessionLoop(ctx, sessions, async (s) => {
      await s.revoke(await s.grant());
      return undefined;
    });
    return loopResult(ctx, `lease${workers}`, "cycles/s", value, cpu);
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}

/** Revokes after the window, this many at once per worker (64 workers: 512 in flight at most). */
const REVOKE_BATCH = 8;

export async function leaseGrants(ctx: RunContext, workers: number): Promise<BenchResult> {
  const sessions = await Promise.all(Array.from({ length: workers }, (_, w) => ctx.target.leaseSession(w)));
  const granted: string[][] = sessions.map(() => []);
  try {
    const { value, cpu } = await sessionLoop(ctx, sessions, async (s, w) => {
      granted[w]?.push(await s.grant());
      return undefined;
    });
    return loopResult(ctx, `grant${workers}`, "grants/s", value, cpu);
  } finally {
    await Promise.allSettled(
      sessions.map(async (s, w) => {
        const ids = granted[w] ?? [];
        for (let i = 0; i < ids.length; i += REVOKE_BATCH)
          await Promise.allSettled(ids.slice(i, i + REVOKE_BATCH).map((id) => s.revoke(id)));
        await s.close();
      }),
    );
  }
}
