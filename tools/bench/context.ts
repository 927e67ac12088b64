// What every workload gets: the cluster and its raw-gRPC target, the window lengths, the
// repetition, and where results go; plus CPU accounting around a measured window and the
// conversion of a closed loop's result into a BenchResult.

import type { BenchCluster } from "./cluster.ts";
import { closedLoop, type LoopResult, type OpOutcome } from "./closed_loop.ts";
import { cpuMsOf } from "./processes.ts";
import type { BenchResult, Column } from "./results.ts";
import type { LoadTarget } from "./target.ts";

export interface Windows {
  readonly warmupMs: number;
  readonly measureMs: number;
}

export interface RunContext {
  readonly column: Column;
  readonly cluster: BenchCluster;
  readonly target: LoadTarget;
  readonly windows: Windows;
  readonly rep: number;
  readonly log: (line: string) => void;
}

/** CPU % (100 = one core) of the leader, of all members, and of this process, over a span. */
export interface CpuSpan {
  readonly leaderCpuPct: number;
  readonly membersCpuPct: number;
  readonly clientCpuPct: number;
}

export async function withCpu<T>(cluster: BenchCluster, leaderId: string, fn: () => Promise<T>): Promise<{ value: T; cpu: CpuSpan }> {
  const members = (): number => cluster.members.reduce((sum, m) => sum + cpuMsOf(cluster.pid(m.id)), 0);
  const leaderPid = cluster.pid(leaderId);
  const leader0 = cpuMsOf(leaderPid);
  const members0 = members();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const elapsedMs = performance.now() - t0;
  const client = process.cpuUsage(client0);
  const pct = (ms: number): number => Math.round((ms / elapsedMs) * 1000) / 10;
  return {
    value,
    cpu: {
      leaderCpuPct: pct(cpuMsOf(leaderPid) - leader0),
      membersCpuPct: pct(members() - members0),
      clientCpuPct: pct((client.user + client.system) / 1000),
    },
  };
}

/**
 * The shape every steady-state figure shares: a closed loop of one worker per session over the
 * run's windows, with the leader's and the members' CPU around it.
 */
export async function sessionLoop<S>(
  ctx: RunContext,
  sessions: readonly S[],
  op: (session: S, worker: number) => Promise<OpOutcome>,
): Promise<{ value: LoopResult; cpu: CpuSpan }> {
  const leader = await ctx.cluster.leaderId(5000);
  return withCpu(ctx.cluster, leader, () =>
    closedLoop({ workers: sessions.length, ...ctx.windows, opsPerWorkerMax: OPS_PER_WORKER_MAX }, async (w) => {
      const s = sessions[w];
      if (s === undefined) throw new Error(`no session ${w}`);
      return op(s, w);
    }),
  );
}

export function loopResult(
  ctx: RunContext,
  figure: string,
  unit: string,
  r: LoopResult,
  cpu: CpuSpan,
  latency: "op" | "wait" = "op",
): BenchResult {
  const l = latency === "wait" && r.wait !== null ? r.wait : r.latency;
  return {
    kind: "result",
    figure,
    column: ctx.column,
    rep: ctx.rep,
    atIso: new Date().toISOString(),
    value: r.ratePerS,
    unit,
    higherIsBetter: true,
    p50Ms: l.p50Ms,
    p99Ms: l.p99Ms,
    ops: r.ops,
    errors: r.errors,
    extra: { maxMs: l.maxMs, measuredMs: r.measuredMs, cycleP50Ms: r.latency.p50Ms, cycleP99Ms: r.latency.p99Ms, ...cpu },
    errorKinds: r.errorKinds,
  };
}

/** Loop bound: no worker runs more ops than this in one window (far above what a window allows). */
export const OPS_PER_WORKER_MAX = 1_000_000;
