// Memory: the resident set (VmRSS) of every member process, idle (a fresh cluster after a short
// settle) or while the keepalive workload holds its leases. The figure's value is the voters'
// mean in MiB; every member's own RSS is in `extra`.

import type { BenchCluster } from "./cluster.ts";
import { rssBytesOf } from "./processes.ts";
import type { BenchResult, Column } from "./results.ts";

const MIB = 1024 * 1024;

export function memoryResult(
  cluster: BenchCluster,
  o: { readonly column: Column; readonly rep: number; readonly figure: string; readonly extra?: Readonly<Record<string, number | string>> },
): BenchResult {
  const rss: Record<string, number> = {};
  const voters: number[] = [];
  for (const m of cluster.members) {
    const bytes = rssBytesOf(cluster.pid(m.id));
    if (bytes === null) continue;
    const mib = Math.round((bytes / MIB) * 10) / 10;
    rss[`rssMiB_${m.role === "witness" ? "witness_" : ""}${m.id}`] = mib;
    if (m.role === "voter") voters.push(mib);
  }
  const mean = voters.length === 0 ? Number.NaN : voters.reduce((a, b) => a + b, 0) / voters.length;
  return {
    kind: "result",
    figure: o.figure,
    column: o.column,
    rep: o.rep,
    atIso: new Date().toISOString(),
    value: Math.round(mean * 10) / 10,
    unit: "MiB",
    higherIsBetter: false,
    p50Ms: null,
    p99Ms: null,
    ops: null,
    errors: voters.length === cluster.members.filter((m) => m.role === "voter").length ? 0 : 1,
    extra: { ...rss, ...o.extra },
  };
}
