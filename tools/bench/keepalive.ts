// Keepalive: N live leases held by the client for a window longer than their TTL, so a lease
// whose renewals stall expires inside it. Reports renewals/s committed (answered by the server),
// the leader's CPU over the window, and how many leases are alive at the end, by the client's
// view and by the server's own count (both must equal N). Granting is bounded in time: if it
// stops short of N, the figure says how many were held.

import type { BenchCluster } from "./cluster.ts";
import { withCpu } from "./context.ts";
import type { LeaseHold } from "./lease_hold.ts";
import type { BenchResult, Column } from "./results.ts";

export async function keepaliveResult(
  o: { readonly cluster: BenchCluster; readonly column: Column; readonly rep: number; readonly figure: string; readonly target: number },
  hold: LeaseHold,
  windowMs: number,
): Promise<BenchResult> {
  const leader = await o.cluster.leaderId(5000);
  const { value: w, cpu } = await withCpu(o.cluster, leader, () => hold.measure(windowMs));
  const allAlive = hold.granted === o.target && w.aliveAtEnd === hold.granted && w.serverCount === hold.granted;
  return {
    kind: "result",
    figure: o.figure,
    column: o.column,
    rep: o.rep,
    atIso: new Date().toISOString(),
    value: w.ratePerS,
    unit: "renewals/s",
    higherIsBetter: true,
    p50Ms: w.latency?.p50Ms ?? null,
    p99Ms: w.latency?.p99Ms ?? null,
    ops: w.renewals,
    errors: hold.grantErrors + w.lost,
    extra: {
      leases: hold.granted,
      target: o.target,
      aliveAtEnd: w.aliveAtEnd,
      serverCount: w.serverCount,
      lost: w.lost,
      streamErrors: w.streamErrors,
      allAlive,
      grantMs: Math.round(hold.grantMs),
      grantsPerS: Math.round((hold.granted / hold.grantMs) * 1000),
      windowMs,
      ...cpu,
    },
  };
}
