// The bench's command line: strict flags (an unknown or malformed one is an error that says
// what is allowed), the bounded default, and --quick.

import { parseArgs } from "node:util";

export const SELECTABLE = [
  "lock1",
  "lock16",
  "lock64",
  "contended",
  "lease",
  "grants",
  "keepalive10k",
  "keepalive100k",
  "failover",
  "memory",
] as const;
export type Selectable = (typeof SELECTABLE)[number];

export interface BenchOptions {
  readonly only: ReadonlySet<Selectable>;
  readonly reps: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Load on each fresh cluster before its first figure (cluster_warmup.ts); 0: none. */
  readonly clusterWarmupMs: number;
  readonly outFile: string;
  readonly etcd: boolean;
  readonly installEtcd: boolean;
  readonly tenureInsecure: boolean;
  /** A third Tenure column with --metrics-listen on every member, scraped once a second. */
  readonly tenureMetrics: boolean;
  /** The floor columns: the same load against a server that answers at once (floor_server.ts) and against the quorum floor (quorum_floor_server.ts). */
  readonly floor: boolean;
  /** The keepalive sizes (10,000 and 100,000 by default) and their leases' TTL. */
  readonly smallLeases: number;
  readonly bigLeases: number;
  readonly keepaliveTtlMs: number;
  /** Granting the big lease set stops here (per system) even short of bigLeases. */
  readonly bigGrantMaxMs: number;
  readonly failoverTrials: number;
  readonly quick: boolean;
}

export const USAGE = `usage: npm run bench -- [--quick] [--only NAME[,NAME]] [--reps N] [--seconds S] [--warmup S]
                        [--cluster-warmup S]
                        [--out FILE.jsonl] [--no-etcd] [--no-install] [--tenure-insecure] [--tenure-metrics] [--floor]
                        [--leases-small N] [--leases-big N] [--grant-seconds-max S] [--failover-trials N]
  NAME: ${SELECTABLE.join(", ")}`;

function int(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in ${min}..${max}, got ${raw}\n${USAGE}`);
  return n;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      reps: { type: "string" },
      seconds: { type: "string" },
      warmup: { type: "string" },
      "cluster-warmup": { type: "string" },
      out: { type: "string" },
      "no-etcd": { type: "boolean", default: false },
      "no-install": { type: "boolean", default: false },
      "tenure-insecure": { type: "boolean", default: false },
      "tenure-metrics": { type: "boolean", default: false },
      floor: { type: "boolean", default: false },
      "leases-small": { type: "string" },
      "leases-big": { type: "string" },
      "grant-seconds-max": { type: "string" },
      "failover-trials": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) throw new Error(USAGE);
  const quick = values.quick;
  const only = new Set<Selectable>();
  for (const name of (values.only ?? SELECTABLE.join(",")).split(",").filter((x) => x !== "")) {
    if (!(SELECTABLE as readonly string[]).includes(name)) throw new Error(`--only: unknown figure ${name}\n${USAGE}`);
    only.add(name as Selectable);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return {
    only,
    reps: int("reps", values.reps, quick ? 1 : 3, 1, 20),
    warmupMs: int("warmup", values.warmup, quick ? 0.5 : 1, 0, 60) * 1000,
    measureMs: int("seconds", values.seconds, quick ? 1.5 : 3, 0.5, 120) * 1000,
    clusterWarmupMs: int("cluster-warmup", values["cluster-warmup"], quick ? 1 : 10, 0, 120) * 1000,
    outFile: values.out ?? `data/bench/bench-${stamp}.jsonl`,
    etcd: !values["no-etcd"],
    installEtcd: !values["no-install"],
    tenureInsecure: values["tenure-insecure"],
    tenureMetrics: values["tenure-metrics"],
    floor: values.floor,
    smallLeases: int("leases-small", values["leases-small"], quick ? 1000 : 10_000, 1, 100_000),
    bigLeases: int("leases-big", values["leases-big"], quick ? 5000 : 100_000, 1, 100_000),
    keepaliveTtlMs: quick ? 3000 : 10_000,
    bigGrantMaxMs: int("grant-seconds-max", values["grant-seconds-max"], quick ? 15 : 90, 1, 3600) * 1000,
    failoverTrials: int("failover-trials", values["failover-trials"], quick ? 1 : 5, 1, 50),
    quick,
  };
}
