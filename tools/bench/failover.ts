// Failover as a user sees it: 4 workers cycle lock acquire + release through the system's own
// client library with its defaults (Tenure: the SDK's client.lock(); etcd: the etcd3 npm client's
// lock(), as the baseline measured it), each on a fresh name. After a short pre-kill phase the
// leader gets SIGKILL; the trial's figure is the time from the kill to the first successful
// acquire among acquires STARTED after it. Then the killed member is restarted on its data
// directory and the cluster settles before the next trial. Everything is bounded: a trial gives
// up after RECOVERY_MAX_MS, workers after their op count, shutdown after STOP_MAX_MS.

import type { BenchCluster } from "./cluster.ts";
import type { BenchResult, Column } from "./results.ts";

export const FAILOVER_WORKERS = 4;
const PRE_KILL_MS = 2_000;
const RECOVERY_MAX_MS = 30_000;
const STOP_MAX_MS = 5_000;
const SETTLE_MS = 1_000;
const OPS_PER_WORKER_MAX = 100_000;

/** A user's lock client: one acquire + release of `name`, calling `acquired()` once it holds it. */
export interface UserLockClient {
  cycle(name: string, acquired: () => void): Promise<void>;
  close(): void;
}

interface Acquire {
  readonly startedAt: number;
  readonly acquiredAt: number;
}

export async function failoverTrial(
  o: {
    readonly cluster: BenchCluster;
    readonly column: Column;
    readonly rep: number;
    readonly trial: number;
    readonly log: (line: string) => void;
  },
  makeClient: () => UserLockClient,
): Promise<BenchResult> {
  const client = makeClient();
  const acquires: Acquire[] = [];
  let failed = 0;
  let stop = false;
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; i < OPS_PER_WORKER_MAX && !stop; i++) {
      const startedAt = performance.now();
      try {
        await client.cycle(`bench/fo/r${o.rep}t${o.trial}/w${w}/${i}`, () => acquires.push({ startedAt, acquiredAt: performance.now() }));
      } catch {
        if (!stop) failed++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const workers = Promise.all(Array.from({ length: FAILOVER_WORKERS }, (_, w) => worker(w)));
  let leader = "";
  let firstMs = Number.NaN;
  let preKillPerS = 0;
  let newLeader = "";
  try {
    await new Promise((r) => setTimeout(r, PRE_KILL_MS));
    preKillPerS = acquires.length / (PRE_KILL_MS / 1000);
    leader = await o.cluster.leaderId(5000);
    const killedAt = performance.now();
    await o.cluster.kill9(leader);
    const deadline = killedAt + RECOVERY_MAX_MS;
    while (performance.now() < deadline) {
      const first = acquires.find((a) => a.startedAt >= killedAt);
      if (first) {
        firstMs = first.acquiredAt - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    stop = true;
    client.close();
    await Promise.race([workers, new Promise((r) => setTimeout(r, STOP_MAX_MS))]);
    if (leader !== "") {
      await o.cluster.restart(leader);
      newLeader = await o.cluster.leaderId(20_000);
      await new Promise((r) => setTimeout(r, SETTLE_MS));
    }
  }
  o.log(`  failover trial ${o.trial}: killed ${leader}, first acquire after ${(firstMs / 1000).toFixed(2)} s, new leader ${newLeader}`);
  return {
    kind: "result",
    figure: "failover",
    column: o.column,
    rep: o.rep,
    atIso: new Date().toISOString(),
    value: Number.isFinite(firstMs) ? firstMs : RECOVERY_MAX_MS,
    unit: "ms",
    higherIsBetter: false,
    p50Ms: null,
    p99Ms: null,
    ops: acquires.length,
    errors: Number.isFinite(firstMs) ? 0 : 1,
    extra: {
      trial: o.trial,
      killed: leader,
      newLeader,
      preKillCyclesPerS: preKillPerS,
      failedOps: failed,
      recovered: Number.isFinite(firstMs),
    },
  };
}
