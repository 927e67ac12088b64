// `npm run bench`: Tenure and etcd side by side on this machine (issue 14 point 1). Both run
// three members on 127.0.0.1 with fsync on (etcd's default; Tenure's SQLite WAL, every
// write fsynced before it counts), both get the same closed-loop generator over raw gRPC, in interleaved
// repetitions (the system that goes first alternates) with a fresh cluster each. Tenure runs the
// compiled server with mutual TLS, as users run it; etcd runs plaintext, its default (the table
// says so; --tenure-insecure adds a plaintext Tenure column for a like-for-like row, --tenure-metrics
// a column with --metrics-listen on every member, scraped once a second: the metrics' cost). One table
// of medians, every repetition in the JSON lines (--out). See the README's "Benchmarks".
//
//   npm run bench                       bounded default (3 reps, under 10 minutes)
//   npm run bench -- --quick            about a minute, a smoke run
//   npm run bench -- --only lock1,failover --reps 1 --no-etcd --out /tmp/b.jsonl

import { setMaxListeners } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDevCertificates } from "../dev_certs.ts";
import type { BenchCluster } from "./cluster.ts";
import { warmUpCluster } from "./cluster_warmup.ts";
import { contended } from "./contended.ts";
import type { RunContext } from "./context.ts";
import { EtcdCluster } from "./etcd_cluster.ts";
import { findOrInstallEtcd } from "./etcd_install.ts";
import { EtcdRawTarget } from "./etcd_raw.ts";
import { failoverTrial } from "./failover.ts";
import { FloorCluster } from "./floor_cluster.ts";
import { QuorumFloorCluster } from "./quorum_floor_cluster.ts";
import { keepaliveResult } from "./keepalive.ts";
import { leaseCycles, leaseGrants } from "./lease_cycles.ts";
import type { LeaseHold } from "./lease_hold.ts";
import { holdEtcdLeases } from "./lease_hold_etcd.ts";
import { holdTenureLeases } from "./lease_hold_tenure.ts";
import { lockCycles } from "./lock_cycles.ts";
import { loadAverageText, machineFacts } from "./machine.ts";
import { memoryResult } from "./memory.ts";
import { type BenchOptions, parseOptions, type Selectable } from "./options.ts";
import { cpuMsOf, stopEveryProcess } from "./processes.ts";
import { registerCleanup, runCleanups } from "./cleanup.ts";
import { type BenchResult, COLUMN_SYSTEM, type Column, JsonLines } from "./results.ts";
import { type FigureSpec, renderTable } from "./table.ts";
import { buildTenure, type TenureBuild } from "./tenure_build.ts";
import { BENCH_CLIENT_IDENTITY, TENURE_MEMBER_IDS, TenureCluster } from "./tenure_cluster.ts";
import { TenureRawTarget } from "./tenure_raw.ts";
import { etcdUserClient, tenureUserClient } from "./user_clients.ts";

const TENURE_BASE_PORT = 24700;
/** The floor server's port (below Tenure's, above etcd's). */
const FLOOR_PORT = 24690;
/** The quorum floor's leader port; its followers listen on the two above it. */
const QUORUM_FLOOR_PORT = 24693;
const CONTENDED_WORKERS = 16;
const LEASE_WORKERS = 16;
const GRANT_CONCURRENCY = 64;
const IDLE_SETTLE_MS = 1500;

/** The table's rows, in order; the lease counts are the run's own. */
export function figures(o: BenchOptions): FigureSpec[] {
  const n = (x: number): string => x.toLocaleString("en-US");
  return [
    { figure: "lock1", label: "lock cycle, 1 client" },
    { figure: "lock16", label: "lock cycle, 16 clients" },
    { figure: "lock64", label: "lock cycle, 64 clients" },
    { figure: "contended16", label: "contended: 16 workers on one name (handoffs, acquire wait)" },
    { figure: "lease16", label: "lease grant + revoke, 16 clients" },
    { figure: `grant${GRANT_CONCURRENCY}`, label: `lease grants, ${GRANT_CONCURRENCY} clients (the bulk grants' concurrency)` },
    { figure: "keepalive-small", label: `keepalive, ${n(o.smallLeases)} leases (renewal p50/p99)` },
    { figure: "keepalive-big", label: `keepalive, ${n(o.bigLeases)} leases (renewal p50/p99)` },
    { figure: "failover", label: "failover: kill -9 the leader → first acquire (4 workers, user client)" },
    { figure: "memory-idle", label: "memory (RSS), idle" },
    { figure: "memory-big", label: `memory (RSS), ${n(o.bigLeases)} leases` },
  ];
}

/** What the table does not say by itself. */
export function tableNotes(o: BenchOptions): string[] {
  return [
    "Cells: median across repetitions of the rate, of p50 and of p99; the ratio is Tenure/etcd of the first number (for failover and memory, lower is better).",
    `Load: the same closed loop for both, raw @grpc/grpc-js to the leader's own port, one connection and one lease per worker; lock = blocking acquire + release of a name of the worker's own (etcd: v3lock Lock + Unlock). Each fresh cluster first gets ${o.clusterWarmupMs / 1000} s of lock and lease cycles at 16 workers, discarded (after the idle memory row): V8 compiles Tenure's hot code only after thousands of calls (tools/bench/cluster_warmup.ts); then each figure ${o.warmupMs / 1000} s of its own load before its ${o.measureMs / 1000} s window.`,
    "Transport: etcd plaintext (its default); Tenure mutual TLS 1.3 on every port (its default; the --insecure column, if shown, is plaintext). fsync on for both (etcd's WAL; Tenure's SQLite WAL, fsynced before a write counts: synchronous=FULL, or the leader's own writes fdatasynced on the thread pool).",
    `Keepalive: every lease renewed about ttl/3 after its last renewal (TTL ${o.keepaliveTtlMs / 1000} s, window ${o.keepaliveTtlMs / 1000 + 1} s > TTL), so renewals/s is set by the schedule and leader CPU is the cost; Tenure's leases are held by the SDK (one KeepAlive stream per client, up to 1024 ids per request, latency from a probe renewal beside it), etcd's by 4 raw LeaseKeepAlive streams (one id per request; etcd3 npm would open a stream per lease). "alive" = held by the client at the end AND counted by the server.`,
    `Failover: each system's own client with its defaults (Tenure SDK client.lock(); etcd3 npm lock()), all members' addresses; time from SIGKILL of the leader to the first acquire that started after it. ${o.failoverTrials} trials in all.`,
    "Memory: VmRSS of each member; the witness (w) from Tenure's two-site layout (voters a, b + witness w), idle, and holding the big lease set in the loaded row.",
    ...(o.floor
      ? [
          "Floor (--floor): the same generator and raw target against tools/bench/floor_server.ts, one process serving Tenure's protos over the same grpc-js stack that answers at once (no consensus, no disk, no state): the most any server on this generator and stack could reach on this machine. It runs the request-path figures only.",
          "Quorum floor (--floor): the same against tools/bench/quorum_floor_server.ts, a leader and two followers that do only what every replicated lock service must per request: the call in, a frame to each follower over a grpc-js stream, an fdatasync on each member (the leader's overlapping the round trip, a follower acknowledging after its own), commit on the leader's and one follower's, a lock table (FIFO waiters, one commit per handoff), the reply; requests of one event-loop turn share a batch. No log matching, elections, exactly-once, validation or auth: the most a consensus server on this stack could reach here. It adds the contended figure.",
        ]
      : []),
  ];
}

interface Run {
  readonly o: BenchOptions;
  readonly out: JsonLines;
  readonly build: TenureBuild | null;
  readonly certs: ReturnType<typeof ensureDevCertificates> | null;
  readonly etcdBinary: string | null;
}

const log = (line: string): void => void process.stdout.write(`${line}\n`);
const failures: string[] = [];

/** Runs one figure; a failure is logged and kept for the summary, and the run goes on. */
async function guarded(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const message = `${what}: ${e instanceof Error ? e.message : String(e)}`;
    failures.push(message);
    log(`  FAILED ${message}`);
  }
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const has = (o: BenchOptions, ...names: Selectable[]): boolean => names.some((n) => o.only.has(n));

async function startCluster(run: Run, column: Column, layout: "three" | "witness" = "three"): Promise<BenchCluster> {
  if (column === "floor" || column === "floor-plaintext") return FloorCluster.start(column === "floor" ? run.certs : null, FLOOR_PORT);
  if (column === "quorum-floor" || column === "quorum-floor-plaintext")
    return QuorumFloorCluster.start(column === "quorum-floor" ? run.certs : null, QUORUM_FLOOR_PORT);
  if (column === "etcd") {
    if (run.etcdBinary === null) throw new Error("no etcd");
    return EtcdCluster.start(run.etcdBinary);
  }
  if (run.build === null) throw new Error("no Tenure build");
  return TenureCluster.start({
    build: run.build,
    layout,
    certs: column === "tenure-plaintext" ? null : run.certs,
    basePort: TENURE_BASE_PORT,
    metrics: column === "tenure-metrics",
  });
}

function leaderAddress(cluster: BenchCluster, id: string): string {
  const m = cluster.members.find((x) => x.id === id);
  if (!m) throw new Error(`no member ${id}`);
  return m.clientAddress;
}

async function holdLeases(cluster: BenchCluster, count: number, run: Run, grantMaxMs: number): Promise<LeaseHold> {
  const leader = leaderAddress(cluster, await cluster.leaderId(10_000));
  const hold = { count, ttlMs: run.o.keepaliveTtlMs, grantConcurrency: GRANT_CONCURRENCY, grantDeadlineMs: grantMaxMs, log };
  if (cluster instanceof TenureCluster) {
    return holdTenureLeases({ ...hold, voters: cluster.voterAddresses(), leader, security: cluster.security() });
  }
  return holdEtcdLeases({ ...hold, leader });
}

/** The witness's idle RSS (Tenure's two-site layout: voters a, b and the witness w). */
async function witnessIdleRss(run: Run, column: Column): Promise<Record<string, number>> {
  const cluster = await startCluster(run, column, "witness");
  try {
    await sleep(IDLE_SETTLE_MS);
    const r = memoryResult(cluster, { column, rep: 0, figure: "witness" });
    return Object.fromEntries(Object.entries(r.extra).filter(([k]) => k.startsWith("rssMiB_witness_")) as [string, number][]);
  } finally {
    await cluster.stop();
  }
}

/** The figures measured on a loaded cluster, after its warm-up (memory-idle comes before it). */
const LOADED_FIGURES: readonly Selectable[] = ["lock1", "lock16", "lock64", "contended", "lease", "grants", "failover", "keepalive10k"];
/** What the floor server can stand for: the request path alone (it keeps no lock, lease or data). */
const FLOOR_FIGURES: ReadonlySet<Selectable> = new Set(["lock1", "lock16", "lock64", "lease", "grants"]);
/** The quorum floor keeps a lock table too, so it runs the contended figure (no elections, no expiry). */
const QUORUM_FLOOR_FIGURES: ReadonlySet<Selectable> = new Set([...FLOOR_FIGURES, "contended"]);
/** What each floor column runs; every other column runs the figures asked for. */
const FLOOR_FIGURES_OF: Readonly<Partial<Record<Column, ReadonlySet<Selectable>>>> = {
  floor: FLOOR_FIGURES,
  "floor-plaintext": FLOOR_FIGURES,
  "quorum-floor": QUORUM_FLOOR_FIGURES,
  "quorum-floor-plaintext": QUORUM_FLOOR_FIGURES,
};

const isFloor = (column: Column): boolean => COLUMN_SYSTEM[column] === "floor";

async function runContext(run: Run, cluster: BenchCluster, column: Column, rep: number): Promise<RunContext> {
  const leader = leaderAddress(cluster, await cluster.leaderId(10_000));
  const target =
    cluster instanceof TenureCluster || cluster instanceof FloorCluster || cluster instanceof QuorumFloorCluster
      ? new TenureRawTarget(leader, cluster.security())
      : new EtcdRawTarget(leader);
  return { column, cluster, target, windows: { warmupMs: run.o.warmupMs, measureMs: run.o.measureMs }, rep, log };
}

/** One repetition of the steady-state figures on one system, on a fresh cluster. */
async function repetition(run: Run, column: Column, rep: number): Promise<void> {
  const floorFigures = FLOOR_FIGURES_OF[column];
  const o = floorFigures === undefined ? run.o : { ...run.o, only: new Set([...run.o.only].filter((n) => floorFigures.has(n))) };
  if (o.only.size === 0) return;
  log(`rep ${rep}: ${column} (load average ${loadAverageText()})`);
  const witness = COLUMN_SYSTEM[column] === "tenure" && has(o, "memory") ? await witnessIdleRss(run, column) : {};
  const cluster = await startCluster(run, column);
  const ctx = await runContext(run, cluster, column, rep);
  const target = ctx.target;
  const add = (r: Parameters<JsonLines["add"]>[0]): void => {
    run.out.add(r);
    log(
      `  ${r.figure}: ${r.value.toFixed(1)} ${r.unit}${r.p50Ms === null ? "" : `, p50 ${r.p50Ms.toFixed(2)} / p99 ${(r.p99Ms ?? 0).toFixed(2)} ms`}${r.errors > 0 ? `, ${r.errors} errors` : ""}`,
    );
  };
  try {
    if (has(o, "memory")) {
      await sleep(IDLE_SETTLE_MS);
      const r = memoryResult(cluster, { column, rep, figure: "memory-idle" });
      add({ ...r, extra: { ...r.extra, ...witness } });
    }
    const where = `${column} rep ${rep}`;
    if (has(o, ...LOADED_FIGURES)) await guarded(`cluster warm-up ${where}`, () => warmUpCluster(ctx, o.clusterWarmupMs));
    for (const n of [1, 16, 64] as const)
      if (has(o, `lock${n}`)) await guarded(`lock${n} ${where}`, async () => add(await lockCycles(ctx, n)));
    if (has(o, "contended")) await guarded(`contended ${where}`, async () => add(await contended(ctx, CONTENDED_WORKERS)));
    if (has(o, "lease")) await guarded(`lease ${where}`, async () => add(await leaseCycles(ctx, LEASE_WORKERS)));
    if (has(o, "grants")) await guarded(`grants ${where}`, async () => add(await leaseGrants(ctx, GRANT_CONCURRENCY)));
    if (has(o, "failover")) {
      const perRep = Math.ceil(o.failoverTrials / o.reps);
      const done = (rep - 1) * perRep;
      const make =
        cluster instanceof TenureCluster
          ? () => tenureUserClient(cluster.voterAddresses(), cluster.security())
          : () => etcdUserClient(cluster.members.map((m) => m.clientAddress));
      for (let t = done; t < Math.min(o.failoverTrials, done + perRep); t++) {
        await guarded(`failover trial ${t + 1} ${where}`, async () =>
          add(await failoverTrial({ cluster, column, rep, trial: t + 1, log }, make)),
        );
      }
    }
    // Last: the leases it leaves behind would expire (and load the cluster) under a later figure.
    if (has(o, "keepalive10k")) {
      await guarded(`keepalive10k ${where}`, async () => {
        const hold = await holdLeases(cluster, o.smallLeases, run, o.bigGrantMaxMs);
        try {
          add(
            await keepaliveResult(
              { cluster, column, rep, figure: "keepalive-small", target: o.smallLeases },
              hold,
              o.keepaliveTtlMs + 1000,
            ),
          );
        } finally {
          await hold.close();
        }
      });
    }
  } finally {
    target.close();
    await cluster.stop();
  }
}

/** The big lease set, once per system (granting it is the slow part), with its memory. */
async function bigLeases(run: Run, column: Column): Promise<void> {
  const o = run.o;
  log(`big: ${column}, ${o.bigLeases} leases (granting for at most ${o.bigGrantMaxMs / 1000} s)`);
  const cluster = await startCluster(run, column);
  let memory: BenchResult | null = null;
  try {
    const warm = await runContext(run, cluster, column, 1);
    try {
      await guarded(`cluster warm-up ${column} big`, () => warmUpCluster(warm, o.clusterWarmupMs));
    } finally {
      warm.target.close();
    }
    const hold = await holdLeases(cluster, o.bigLeases, run, o.bigGrantMaxMs);
    log(`  granted ${hold.granted} in ${(hold.grantMs / 1000).toFixed(1)} s`);
    try {
      if (has(o, "keepalive100k")) {
        const r = await keepaliveResult(
          { cluster, column, rep: 1, figure: "keepalive-big", target: o.bigLeases },
          hold,
          o.keepaliveTtlMs + 1000,
        );
        run.out.add(r);
        log(`  keepalive-big: ${r.value.toFixed(0)} renewals/s, alive ${r.extra["aliveAtEnd"]}/${hold.granted}`);
      }
      if (has(o, "memory")) memory = memoryResult(cluster, { column, rep: 1, figure: "memory-big", extra: { leases: hold.granted } });
    } finally {
      await hold.close();
    }
  } finally {
    await cluster.stop();
  }
  if (memory === null) return;
  // The witness under the same load: Tenure's two-site layout holding the big lease set too.
  const witness = column === "etcd" ? {} : await witnessLoadedRss(run, column);
  run.out.add({ ...memory, extra: { ...memory.extra, ...witness } });
}

/** The witness's RSS while the two-site layout (voters a, b and the witness w) holds the big lease set. */
async function witnessLoadedRss(run: Run, column: Column): Promise<Record<string, number>> {
  const cluster = await startCluster(run, column, "witness");
  try {
    // The witness's CPU over the grants too: its heap flags (witness/node_flags.ts) trade memory
    // for more frequent scavenges, and this shows what that costs.
    const witnessPids = cluster.members.filter((m) => m.role === "witness").map((m) => cluster.pid(m.id));
    const cpuBeforeMs = witnessPids.map(cpuMsOf);
    const hold = await holdLeases(cluster, run.o.bigLeases, run, run.o.bigGrantMaxMs);
    try {
      const cpuMs = witnessPids.map((pid, i) => cpuMsOf(pid) - (cpuBeforeMs[i] ?? 0));
      log(
        `  two-site layout: granted ${hold.granted} in ${(hold.grantMs / 1000).toFixed(1)} s; witness CPU ${cpuMs.map((ms) => (ms / 1000).toFixed(1)).join(", ")} s`,
      );
      const r = memoryResult(cluster, { column, rep: 1, figure: "witness" });
      const rss = Object.entries(r.extra).filter(([k]) => k.startsWith("rssMiB_witness_")) as [string, number][];
      return { ...Object.fromEntries(rss), witnessGrantCpuMs: cpuMs.reduce((a, b) => a + b, 0) };
    } finally {
      await hold.close();
    }
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const startedMs = performance.now();
  const out = new JsonLines(o.outFile);
  const machine = machineFacts();
  log(
    `bench: ${o.reps} reps, each fresh cluster warmed up ${o.clusterWarmupMs / 1000} s, windows ${o.warmupMs / 1000} s warm-up + ${o.measureMs / 1000} s, figures ${[...o.only].join(",")}`,
  );
  log(
    `machine: ${machine["cpus"]} × ${machine["cpuModel"]}, ${machine["memoryGiB"]} GiB, ${machine["kernel"]}, node ${machine["node"]}; ${machine["uptime"]}`,
  );
  let etcdBinary: string | null = null;
  let etcdVersion = "not run (--no-etcd)";
  if (o.etcd) {
    const found = findOrInstallEtcd(log, { install: o.installEtcd });
    if (found.ok) {
      etcdBinary = found.binary;
      etcdVersion = found.version;
    } else {
      etcdVersion = `not run: ${found.why}`;
      log(`etcd: ${found.why}\n  running Tenure only.`);
    }
  }
  out.header({ kind: "run", atIso: new Date().toISOString(), argv: process.argv.slice(2), machine, etcd: etcdVersion });
  const certDir = mkdtempSync(join(tmpdir(), "tenure-bench-tls-"));
  const removeCerts = registerCleanup(() => rmSync(certDir, { recursive: true, force: true }));
  let build: TenureBuild | null = null;
  try {
    build = await buildTenure();
    const certs = ensureDevCertificates(certDir, {
      memberIds: [...new Set([...TENURE_MEMBER_IDS.three, ...TENURE_MEMBER_IDS.witness])],
      clientIdentities: [BENCH_CLIENT_IDENTITY],
    });
    const columns: Column[] = [
      ...(etcdBinary !== null ? (["etcd"] as const) : []),
      "tenure",
      ...(o.tenureInsecure ? (["tenure-plaintext"] as const) : []),
      ...(o.tenureMetrics ? (["tenure-metrics"] as const) : []),
      ...(o.floor ? (["floor"] as const) : []),
      ...(o.floor && o.tenureInsecure ? (["floor-plaintext"] as const) : []),
      ...(o.floor ? (["quorum-floor"] as const) : []),
      ...(o.floor && o.tenureInsecure ? (["quorum-floor-plaintext"] as const) : []),
    ];
    const run: Run = { o, out, build, certs, etcdBinary };
    const steady = [...o.only].some((n) => n !== "keepalive100k");
    for (let rep = 1; rep <= o.reps && steady; rep++) {
      // Interleaved: who goes first alternates, so a change in the machine's load lands on both.
      const order = rep % 2 === 1 ? columns : [...columns].reverse();
      for (const column of order) await guarded(`rep ${rep} ${column}`, () => repetition(run, column, rep));
    }
    if (has(o, "keepalive100k", "memory"))
      for (const column of columns.filter((c) => !isFloor(c))) await guarded(`big ${column}`, () => bigLeases(run, column));
    log("");
    for (const line of renderTable(figures(o), columns, out.results)) log(line);
    for (const line of tableNotes(o)) log(`- ${line}`);
    log("");
    log(`etcd ${etcdVersion}; Tenure compiled (node ${build.tenured}), ${o.reps} reps, medians; raw results: ${o.outFile}`);
    for (const f of failures) log(`FAILED ${f}`);
    if (failures.length > 0) process.exitCode = 1;
    log(`took ${((performance.now() - startedMs) / 1000).toFixed(0)} s; load average at the end ${loadAverageText()} (1, 5, 15 min)`);
  } finally {
    stopEveryProcess();
    build?.remove();
    removeCerts();
  }
}

/** Ctrl-C, SIGTERM or a crash: every process started is killed by its pid before we go. */
function installCleanup(): void {
  const bail = (code: number) => () => {
    const n = stopEveryProcess();
    runCleanups();
    process.stderr.write(`bench: stopped ${n} processes, removed the run's temp files\n`);
    process.exit(code);
  };
  process.once("SIGINT", bail(130));
  process.once("SIGTERM", bail(143));
  process.once("uncaughtException", (e) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    bail(1)();
  });
}

installCleanup();
// Hundreds of concurrent SDK calls each add an abort listener to their client's close signal:
// expected here, and Node's leak warning for more than 10 would bury the bench's own output.
setMaxListeners(10_000);
main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  stopEveryProcess();
  runCleanups();
  process.exit(1);
});
