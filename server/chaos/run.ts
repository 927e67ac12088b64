// The Jepsen-style run: cluster (or an existing deployment via --endpoints), workload, seeded
// nemesis, heal, checks, summary and report. CLI: npm run chaos -- --seconds N --seed S
// [--topology three|witness] [--clients N] [--locks N] [--out DIR] [--endpoints a,b,c].

import { checkLinearizability } from "./checker/linearizability.ts";
import { toCheckerHistory } from "./to_checker.ts";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { TenureClient, TenureError } from "../../client-sdk/index.ts";
import { SeededRandom } from "../core/random.ts";
import { checkAuditMatchesHistory, checkFinal, checkGuardAudit, checkRealTimeOrder, checkUniqueTokens, type FinalLock } from "./check.ts";
import { ChaosCluster, sleep, type FaultKind, type Topology } from "./faults.ts";
import { GuardStores, History, runWorkload } from "./workload.ts";

export interface ChaosOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly topology: Topology;
  readonly clients: number;
  readonly locks: number;
  readonly outDir: string;
  /** An existing deployment: no cluster is started and no faults are injected. */
  readonly endpoints?: readonly string[];
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly operations: number;
  readonly byType: Record<string, number>;
  readonly faults: Record<FaultKind, number>;
  readonly violations: string[];
  readonly historyPath: string;
  readonly reportPath: string;
}

const KINDS: readonly FaultKind[] = ["kill", "pause", "partition"];

/** One fault at a time, kinds in seeded shuffled rounds (so every kind appears early), half of
 *  them on the current leader; each held 300..1500 ms, then 300..1000 ms of calm. */
async function nemesis(c: ChaosCluster, rng: SeededRandom, stop: AbortSignal, faults: Record<FaultKind, number>, log: (l: string) => void): Promise<void> {
  let round: FaultKind[] = [];
  await sleep(1000);
  while (!stop.aborted) {
    if (round.length === 0) {
      round = [...KINDS];
      for (let i = round.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1);
        [round[i], round[j]] = [round[j] as FaultKind, round[i] as FaultKind];
      }
    }
    const kind = round.shift() as FaultKind;
    const onLeader = rng.nextInt(2) === 0;
    const randomId = c.ids[rng.nextInt(c.ids.length)] ?? "a";
    const holdMs = 300 + rng.nextInt(1200);
    const calmMs = 300 + rng.nextInt(700);
    const target = onLeader ? ((await c.leader()) ?? randomId) : randomId;
    log(`nemesis: ${kind} ${target}${onLeader ? " (leader)" : ""} for ${holdMs} ms`);
    faults[kind]++;
    await c.inject(kind, target, holdMs);
    await sleep(calmMs);
  }
}

async function finalProbe(endpoints: readonly string[], names: readonly string[], stores: GuardStores): Promise<FinalLock[]> {
  const client = new TenureClient({ endpoints, clientId: `chaos-final-${Date.now()}` });
  const out: FinalLock[] = [];
  try {
    for (const name of names) {
      let state = "";
      let token = 0;
      try {
        const s = await client.lockStatus(name, { timeoutMs: 10_000 });
        state = s.state;
        token = s.token;
      } catch (e) {
        state = `error ${TenureError.from(e).code}`;
      }
      try {
        // Abandoned leases expire after their TTL: the wait covers that.
        const lock = await client.lock(name, { ttlMs: 5000, timeoutMs: 15_000 }, { timeoutMs: 20_000 });
        const held = await client.lockStatus(name, { timeoutMs: 5000 });
        const w = stores.write(name, lock.token, -1);
        await lock.release({ timeoutMs: 5000 });
        out.push({ name, state, token, probeToken: lock.token, probeHeldToken: held.token, probeWriteAccepted: w.ok });
      } catch (e) {
        const t = TenureError.from(e);
        out.push({ name, state, token, probeToken: null, probeError: `${t.code} ${t.message}`, probeHeldToken: 0, probeWriteAccepted: false });
      }
    }
  } finally {
    client.close();
  }
  return out;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  mkdirSync(o.outDir, { recursive: true });
  const names = Array.from({ length: o.locks }, (_, i) => `chaos-${o.seed}-l${i}`);
  const history = new History(join(o.outDir, "history.jsonl"));
  const stores = new GuardStores(o.outDir, names);
  const faults: Record<FaultKind, number> = { kill: 0, pause: 0, partition: 0 };
  const rng = new SeededRandom(o.seed);
  const cluster = o.endpoints ? null : await ChaosCluster.start(o.topology);
  const started = performance.now();
  const violations: string[] = [];
  let finals: FinalLock[] = [];
  try {
    const endpoints = o.endpoints ?? cluster?.clientEndpoints() ?? [];
    if (cluster && (await cluster.waitLeader(20_000)) === null) throw new Error("no leader at start");
    log(`chaos: seed ${o.seed}, ${o.topology}, ${o.clients} clients, locks ${names.join(" ")}, ${o.seconds} s, out ${o.outDir}`);
    const stopWork = new AbortController();
    const stopNemesis = new AbortController();
    const work = runWorkload({ endpoints, clients: o.clients, names, seed: rng.nextUint32(), ttlMs: 2000, stop: stopWork.signal }, history, stores);
    const nem = cluster ? nemesis(cluster, rng.fork(), stopNemesis.signal, faults, log) : Promise.resolve();
    await sleep(o.seconds * 1000);
    stopNemesis.abort();
    await nem;
    if (cluster) {
      await cluster.healAll();
      const leader = await cluster.waitLeader(20_000);
      log(`healed; leader ${leader ?? "none"}`);
      if (leader === null) violations.push("no leader within 20 s after healing");
    }
    await sleep(1000); // some quiet traffic on the healed cluster
    stopWork.abort();
    await work;
    finals = await finalProbe(endpoints, names, stores);
  } finally {
    await history.close();
    await cluster?.stop(false);
  }
  const ops = history.ops;
  const marks = new Map<string, bigint | null>();
  for (const name of names) {
    const audit = stores.audit(name);
    violations.push(...checkGuardAudit(name, audit), ...checkAuditMatchesHistory(name, audit, ops));
    marks.set(name, audit.reduce<bigint | null>((m, t) => (m === null || t > m ? t : m), null));
  }
  violations.push(...checkUniqueTokens(ops), ...checkRealTimeOrder(ops), ...checkFinal(ops, finals, (n) => marks.get(n) ?? null));
  // The same history against the sequential models (Porcupine-style search, per lock/resource).
  const linearizability = checkLinearizability(toCheckerHistory(ops));
  if (linearizability.verdict === "illegal") violations.push(linearizability.explanation);
  stores.close();
  const byType: Record<string, number> = {};
  for (const op of ops) {
    const k = `${op.type}:${op.outcome}`;
    byType[k] = (byType[k] ?? 0) + 1;
  }
  const elapsed = ((performance.now() - started) / 1000).toFixed(1);
  const lines = [
    `tenure chaos run: seed ${o.seed}, topology ${o.endpoints ? `external ${o.endpoints.join(",")}` : o.topology}, ${o.clients} clients, ${o.seconds} s (${elapsed} s total)`,
    `operations: ${ops.length} (${Object.entries(byType).sort().map(([k, v]) => `${k} ${v}`).join(", ")})`,
    `faults injected: ${KINDS.map((k) => `${k} ${faults[k]}`).join(", ")}`,
    ...finals.map((f) => `final ${f.name}: status ${f.state} token ${f.token}; probe token ${f.probeToken ?? `none (${f.probeError ?? ""})`}`),
    `linearizability: ${linearizability.verdict}${linearizability.verdict === "unknown" ? " (search budget exhausted; not a verdict)" : ""}`,
    `violations: ${violations.length}`,
    ...violations.map((v) => `  - ${v}`),
    `history: ${history.path}`,
  ];
  const reportPath = join(o.outDir, "report.txt");
  writeFileSync(reportPath, `${lines.join("\n")}\n`);
  for (const l of lines) log(l);
  return { operations: ops.length, byType, faults, violations, historyPath: history.path, reportPath };
}
