// The cost of TLS (issue 12): lock acquire+release cycles through the SDK at C concurrent clients
// against a fresh three-voter cluster with mutual TLS on both ports (TLS 1.3, the default) and
// against a fresh one with --insecure, in the same run. Both clusters run for the whole run and
// are measured in alternating windows (TLS, plaintext, TLS, ...), so a change in the machine's
// load while the benchmark runs lands on both. Each client holds one lease and cycles on a lock
// of its own (no contention: the figure is the request path, not the lock queue), connected
// straight to the leader's own port (the cluster's stable addresses are proxies in this process,
// which would take CPU from the clients being measured). 127.0.0.1 only. Besides cycles/s, p50 and
// p99 it reports CPU time per cycle, of the three members (from /proc/<pid>/stat) and of this
// process (the clients), over the measured windows: on a shared machine the rates move with the
// other load, CPU per cycle much less. The TLS cluster authenticates every call by its client
// certificate (the "identities" mode); the --insecure one runs the open mode, as deployed.
//
//   npm run bench:tls -- [--seconds 20] [--clients 16] [--windows 4]
//   (--seconds per transport, split into --windows alternating windows)

import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { TenureClient, type Lease } from "../client-sdk/index.ts";
import { ProcessCluster } from "../testing/itest/process_cluster.ts";
import { until } from "../testing/itest/wait.ts";

type Transport = "tls" | "insecure";
const TRANSPORTS: readonly Transport[] = ["tls", "insecure"];
const LABEL: Record<Transport, string> = { tls: "mutual TLS 1.3", insecure: "plaintext (--insecure)" };

interface Sample {
  cycles: number;
  failures: number;
  measuredMs: number;
  /** CPU time of the cluster's three processes, and of this process (the clients), in the windows. */
  serverCpuMs: number;
  clientCpuMs: number;
  readonly latenciesMs: number[];
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on every architecture it runs on. */
const CLOCK_TICKS_PER_S = 100;

/** User + system CPU time of process `pid` so far (0 if it is gone). */
function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

function options(): { seconds: number; clients: number; windows: number } {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "20" },
      clients: { type: "string", default: "16" },
      windows: { type: "string", default: "4" },
    },
  });
  const int = (name: string, v: string, max: number): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer in 1..${max}, got ${v}`);
    return n;
  };
  return {
    seconds: int("seconds", values.seconds, 600),
    clients: int("clients", values.clients, 256),
    windows: int("windows", values.windows, 20),
  };
}

/** The leader's own client address (no proxy), once some member names a leader that is up. */
async function leaderAddress(cluster: ProcessCluster): Promise<string> {
  const probe = cluster.testClient();
  try {
    return await until("a leader", 30_000, async () => {
      const r = await probe.call<Record<string, unknown>>("Cluster", "Status", {}, 1000);
      const id = r.ok ? String(r.value["leaderId"] ?? "") : "";
      return id === "" ? null : (cluster.bound(id)?.clientAddress ?? null);
    });
  } finally {
    probe.close();
  }
}

/** One cluster under test with its clients, each holding a lease for the whole run. */
class Bench {
  private constructor(
    readonly transport: Transport,
    readonly cluster: ProcessCluster,
    private readonly clients: readonly { client: TenureClient; lease: Lease; name: string }[],
  ) {}

  static async start(transport: Transport, clients: number): Promise<Bench> {
    // The insecure cluster is the comparison this benchmark exists for.
    const cluster = await ProcessCluster.start({ insecure: transport === "insecure", tickMs: 50, electionTimeoutTicks: 10 });
    try {
      const endpoint = await leaderAddress(cluster);
      const made = await Promise.all(
        Array.from({ length: clients }, async (_, i) => {
          const client = new TenureClient({ endpoints: [endpoint], ...cluster.clientSecurity(), clientId: `bench-${transport}-${i}` });
          const lease = await client.grantLease({ ttlMs: 60_000 }, { timeoutMs: 20_000 });
          return { client, lease, name: `bench-${i}` };
        }),
      );
      return new Bench(transport, cluster, made);
    } catch (e) {
      await cluster.stopAll();
      throw e;
    }
  }

  private serverCpuMs(): number {
    return [...this.cluster.processes.values()].reduce((sum, child) => sum + cpuMsOf(child.pid), 0);
  }

  /** Every client cycles acquire + release until `windowMs` has passed. */
  async window(windowMs: number, into: Sample): Promise<void> {
    const serverCpuBefore = this.serverCpuMs();
    const clientCpuBefore = process.cpuUsage();
    const started = performance.now();
    const endAt = started + windowMs;
    await Promise.all(
      this.clients.map(async ({ client, lease, name }) => {
        while (performance.now() < endAt) {
          const t0 = performance.now();
          try {
            const lock = await client.lock(name, { lease, wait: false }, { timeoutMs: 5_000 });
            await lock.release({ timeoutMs: 5_000 });
            into.latenciesMs.push(performance.now() - t0);
            into.cycles++;
          } catch {
            into.failures++;
          }
        }
      }),
    );
    into.measuredMs += performance.now() - started;
    into.serverCpuMs += this.serverCpuMs() - serverCpuBefore;
    const client = process.cpuUsage(clientCpuBefore);
    into.clientCpuMs += (client.user + client.system) / 1000;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.client.close();
    await this.cluster.stopAll();
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

function table(samples: Record<Transport, Sample>, clients: number): string[] {
  const rows = TRANSPORTS.map((t) => {
    const s = samples[t];
    const sorted = [...s.latenciesMs].sort((a, b) => a - b);
    const rate = s.cycles / (s.measuredMs / 1000);
    return { t, rate, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), s };
  });
  const out = [
    `| transport (${clients} clients) | cycles | failed | cycles/s | p50 ms | p99 ms | server CPU ms/cycle | client CPU ms/cycle |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) => {
      const perCycle = (ms: number): string => (r.s.cycles > 0 ? (ms / r.s.cycles).toFixed(2) : "-");
      return `| ${LABEL[r.t]} | ${r.s.cycles} | ${r.s.failures} | ${r.rate.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${perCycle(r.s.serverCpuMs)} | ${perCycle(r.s.clientCpuMs)} |`;
    }),
  ];
  const [tls, plain] = rows;
  if (tls && plain && plain.rate > 0)
    out.push(
      `TLS: ${(((tls.rate - plain.rate) / plain.rate) * 100).toFixed(1)}% cycles/s, p50 ${(tls.p50 - plain.p50).toFixed(2)} ms, p99 ${(tls.p99 - plain.p99).toFixed(2)} ms against plaintext`,
    );
  return out;
}

async function main(): Promise<void> {
  const o = options();
  const load = (): string =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(" ");
  console.log(`bench:tls: ${o.clients} clients, ${o.seconds} s per transport in ${o.windows} alternating windows; load average ${load()}`);
  const benches: Bench[] = [];
  try {
    // One after the other: two clusters starting at once would each measure the other's start.
    for (const t of TRANSPORTS) benches.push(await Bench.start(t, o.clients));
    const samples: Record<Transport, Sample> = {
      tls: { cycles: 0, failures: 0, measuredMs: 0, serverCpuMs: 0, clientCpuMs: 0, latenciesMs: [] },
      insecure: { cycles: 0, failures: 0, measuredMs: 0, serverCpuMs: 0, clientCpuMs: 0, latenciesMs: [] },
    };
    const windowMs = (o.seconds * 1000) / o.windows;
    for (let w = 0; w < o.windows; w++) {
      // Alternate which goes first, so neither always follows the other's window.
      const order = w % 2 === 0 ? benches : [...benches].reverse();
      for (const b of order) await b.window(windowMs, samples[b.transport]);
    }
    for (const line of table(samples, o.clients)) console.log(line);
    console.log(`load average at the end ${load()} (1, 5, 15 min)`);
  } finally {
    await Promise.all(benches.map((b) => b.stop()));
  }
}

await main();
