// The Jepsen-style run: cluster (or an existing deployment via --endpoints), workload (lock
// holders in the harness and in a separate client process, readers, a lease prober), a seeded
// nemesis, heal, checks, summary and report. CLI: testing/chaos/cli.ts.

import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { TenureClient, TenureError } from "../../client-sdk/index.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { SeededRandom } from "../../server/core/random.ts";
import {
  checkAuditMatchesHistory,
  checkExactlyOnce,
  checkFinal,
  checkGuardAudit,
  checkMutualExclusion,
  checkRealTimeOrder,
  checkRevokedLeaseGrants,
  checkUniqueTokens,
  type FinalLock,
} from "./check.ts";
import { checkLinearizability } from "./checker/linearizability.ts";
import { ClientHandle } from "./client_handle.ts";
import { ChaosCluster, MEMBER_FAULTS, sleep, type MemberFault, type Topology } from "./faults.ts";
import { runProbes } from "./probes.ts";
import { checkElectionFinal, checkElections } from "./check_elections.ts";
import { probeElection, runElections, type ElectionEvent, type ElectionFinal } from "./elections.ts";
import { toCheckerHistory } from "./to_checker.ts";
import { HttpGuardTarget } from "./http_guard.ts";
import { GuardStores, History, runWorkload, type GuardTarget, type Op } from "./workload.ts";

export interface ChaosOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly topology: Topology;
  /** Lock holders in the harness process. */
  readonly clients: number;
  readonly locks: number;
  readonly outDir: string;
  /** Clients that read Lock.Status / ValidateToken from one member directly (default 2). */
  readonly readers?: number;
  /** A lock holder in its own process, paused by the nemesis (default on; with --endpoints the
   *  only fault injected). */
  readonly clientProcess?: boolean;
  /** An existing deployment: no cluster is started and no faults are injected. */
  readonly endpoints?: readonly string[];
  /** How the harness's clients reach an existing deployment (--endpoints): its CA and a client
   *  certificate, or insecure. Ignored for the harness's own cluster (it issues its own). */
  readonly security?: TransportSecurity;
  /** The harness's own cluster on plaintext (--insecure on every member), for comparison; by
   *  default it runs mutual TLS on both ports with certificates from a CA of its own. */
  readonly insecure?: boolean;
  /** A user's own guarded store over HTTP (examples/guarded_store.ts protocol) instead of the
   *  harness's SQLite guards; needs locks = 1 (one guard compares one lock's tokens). */
  readonly guardUrl?: string;
  /** Test-only broken server modes (tenured --test-bugs), to show the checks catch them. */
  readonly bugs?: readonly string[];
  /** Every server clock runs this much fast for the whole run: beyond rho, out of the model. */
  readonly clockRateOutOfModel?: number;
  /** Test-only slow state machine on every member (tenured --test-apply-delay-ms): each entry
   *  takes this long to apply, so applied lags commit (a restarted or caught-up member replays
   *  its backlog slowly). Not a bug: the checks must still hold, unless a bug needs it. */
  readonly applyDelayMs?: number;
  /** Campaigners on one election (default 3; 0: no elections workload), with 2 observers. */
  readonly campaigners?: number;
  /** Fault kinds to use (default all). */
  readonly faults?: readonly FaultKind[];
  /** How long a client-pause waits for the client process's next grant before pausing it anyway
   *  (default 3000 ms). A run that needs the pause to catch a fresh holder waits longer, so a
   *  slow machine does not turn it into pauses of an idle process. */
  readonly clientPauseGrantWaitMs?: number;
  /** The range a client-pause's length is drawn from (default 500..4500 ms, one draw either way). */
  readonly clientPauseMs?: { readonly min: number; readonly max: number };
  readonly log?: (line: string) => void;
}

export type FaultKind = MemberFault | "client-pause";
export const FAULT_KINDS: readonly FaultKind[] = [...MEMBER_FAULTS, "client-pause"];

export interface ChaosResult {
  readonly operations: number;
  readonly byType: Record<string, number>;
  readonly faults: Record<FaultKind, number>;
  readonly violations: string[];
  readonly linearizability: string;
  readonly historyPath: string;
  readonly reportPath: string;
}

const TTL_MS = 2000;

interface NemesisDeps {
  readonly cluster: ChaosCluster | null;
  readonly client: ClientHandle | null;
  readonly kinds: readonly FaultKind[];
  readonly faults: Record<FaultKind, number>;
  readonly log: (l: string) => void;
  readonly clientPauseGrantWaitMs: number;
  readonly clientPauseMs: { readonly min: number; readonly max: number };
}

/** One fault at a time, kinds in seeded shuffled rounds (every kind appears early), half of the
 *  member faults on the current leader; each held 300..1500 ms (a paused client 500..4500 ms, so
 *  often past its lease), then 300..1000 ms of calm. */
async function nemesis(d: NemesisDeps, rng: SeededRandom, stop: AbortSignal): Promise<void> {
  const c = d.cluster;
  let round: FaultKind[] = [];
  await sleep(1000);
  while (!stop.aborted) {
    if (round.length === 0) {
      round = [...d.kinds];
      for (let i = round.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1);
        [round[i], round[j]] = [round[j] as FaultKind, round[i] as FaultKind];
      }
    }
    const kind = round.shift() as FaultKind;
    const onLeader = rng.nextInt(2) === 0;
    const ids = c?.ids ?? [];
    const randomId = ids[rng.nextInt(Math.max(1, ids.length))] ?? "a";
    const holdMs = 300 + rng.nextInt(1200);
    const calmMs = 300 + rng.nextInt(700);
    const faultRng = rng.fork();
    if (kind === "client-pause") {
      // runChaos passes client-pause only with a client process, member faults only with a cluster.
      if (d.client === null) throw new Error("nemesis bug: client-pause without a client process");
      const pauseMs = d.clientPauseMs.min + rng.nextInt(d.clientPauseMs.max - d.clientPauseMs.min);
      const holding = await d.client.nextAcquire(d.clientPauseGrantWaitMs);
      d.log(`nemesis: client-pause for ${pauseMs} ms${holding ? " (just granted a lock)" : ""}`);
      d.faults[kind]++;
      try {
        d.client.pause();
        await sleep(pauseMs);
      } finally {
        d.client.resume();
      }
    } else {
      if (c === null) throw new Error(`nemesis bug: ${kind} without a cluster`);
      // A witness-topology membership change moves the witness (removing a full voter of two
      // would leave one full copy of the state); with three voters any member.
      const target =
        kind === "membership" && c.witnesses.length > 0
          ? (c.witnesses[0] ?? randomId)
          : onLeader
            ? ((await c.leader()) ?? randomId)
            : randomId;
      d.log(`nemesis: ${kind} ${target}${onLeader && kind !== "membership" ? " (leader)" : ""} for ${holdMs} ms`);
      d.faults[kind]++;
      await c.inject(kind, target, holdMs, faultRng, d.log);
    }
    await sleep(calmMs);
  }
}

async function finalProbe(
  endpoints: readonly string[],
  security: TransportSecurity,
  names: readonly string[],
  stores: GuardTarget,
  clientPrefix: string,
): Promise<FinalLock[]> {
  const client = new TenureClient({ endpoints, ...security, clientId: `${clientPrefix}-final` });
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
        const w = await stores.write(name, lock.token, -1);
        await lock.release({ timeoutMs: 5000 });
        out.push({ name, state, token, probeToken: lock.token, probeHeldToken: held.token, probeWriteAccepted: w.ok });
      } catch (e) {
        const t = TenureError.from(e);
        out.push({
          name,
          state,
          token,
          probeToken: null,
          probeError: `${t.code} ${t.message}`,
          probeHeldToken: 0,
          probeWriteAccepted: false,
        });
      }
    }
  } finally {
    client.close();
  }
  return out;
}

/** Locks and elections draw from one token counter: no token may be granted to both. */
function checkTokensAcrossKinds(ops: readonly Op[], events: readonly ElectionEvent[]): string[] {
  const lockTokens = new Map<number, string>();
  for (const op of ops) if (op.type === "acquire" && op.outcome === "ok" && op.token !== undefined) lockTokens.set(op.token, op.name);
  const out: string[] = [];
  for (const e of events) {
    if (e.type !== "campaign" || e.outcome !== "ok" || e.token === undefined) continue;
    const lock = lockTokens.get(e.token);
    if (lock !== undefined) out.push(`token ${e.token} granted to lock ${lock} and to a leadership`);
  }
  return out;
}

/** Tokens acknowledged to anyone (holders, leaders, the final probes, the lease prober) and the
 *  number of grant requests whose outcome is unknown, for checkExactlyOnce. */
function grantAccounting(
  ops: readonly Op[],
  events: readonly ElectionEvent[],
  finals: readonly FinalLock[],
  electionFinal: ElectionFinal | null,
): [number[], number] {
  const tokens: number[] = [];
  let ambiguous = 0;
  for (const op of ops) {
    if (op.type !== "acquire" && op.type !== "lease-acquire") continue;
    if (op.outcome === "ok" && op.token !== undefined) tokens.push(op.token);
    if (op.outcome === "info") ambiguous++;
  }
  for (const e of events) {
    if (e.type !== "campaign") continue;
    if (e.outcome === "ok" && e.token !== undefined) tokens.push(e.token);
    if (e.outcome === "info") ambiguous++;
  }
  for (const f of finals) if (f.probeToken !== null) tokens.push(f.probeToken);
  if (electionFinal?.probeToken != null) tokens.push(electionFinal.probeToken);
  // A final probe that failed may still have been granted.
  ambiguous += finals.filter((f) => f.probeToken === null).length + (electionFinal !== null && electionFinal.probeToken === null ? 1 : 0);
  return [tokens, ambiguous];
}

function electionSummary(events: readonly ElectionEvent[]): string {
  const counts: Record<string, number> = {};
  for (const e of events) {
    const k = "outcome" in e ? `${e.type}:${e.outcome}` : e.type;
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return `${events.length} events (${Object.entries(counts)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")})`;
}

/** The transport the run's clients use, for its log and report lines. */
function transportOf(security: TransportSecurity): string {
  return security.insecure === true ? "PLAINTEXT (--insecure)" : `mutual TLS ${security.tls?.minVersion ?? "TLSv1.3"}`;
}

/** Sets an environment variable for processes spawned from now on; returns the undo. */
function setEnv(name: string, value: string): () => void {
  const before = process.env[name];
  process.env[name] = value;
  return () => {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  };
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  mkdirSync(o.outDir, { recursive: true });
  const names = Array.from({ length: o.locks }, (_, i) => `chaos-${o.seed}-l${i}`);
  // Session ids unique per run: a reused seed against a long-lived deployment replays nothing.
  const clientPrefix = `chaos-${o.seed}-${Date.now().toString(36)}`;
  const history = new History(join(o.outDir, "history.jsonl"));
  if (o.guardUrl !== undefined && o.locks !== 1) throw new Error("--guard-url needs --locks 1: one guard compares the tokens of one lock");
  const local = o.guardUrl === undefined ? new GuardStores(o.outDir, names) : null;
  const stores: GuardTarget = local ?? new HttpGuardTarget(o.guardUrl ?? "", clientPrefix);
  const kinds = o.faults ?? FAULT_KINDS;
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const rng = new SeededRandom(o.seed);
  // The apply delay reaches every member, started now or restarted by a fault, through the
  // environment (TENURE_TEST_APPLY_DELAY_MS is --test-apply-delay-ms); restored after the run.
  const restoreEnv =
    o.applyDelayMs !== undefined && !o.endpoints ? setEnv("TENURE_TEST_APPLY_DELAY_MS", String(o.applyDelayMs)) : () => undefined;
  let cluster: ChaosCluster | null;
  try {
    cluster = o.endpoints
      ? null
      : await ChaosCluster.start(o.topology, {
          ...(o.bugs ? { bugs: o.bugs } : {}),
          ...(o.clockRateOutOfModel !== undefined ? { clockRateOutOfModel: o.clockRateOutOfModel } : {}),
          insecure: o.insecure === true,
        });
  } catch (e) {
    restoreEnv();
    throw e;
  }
  const security = cluster?.clientSecurity() ?? o.security ?? {};
  const started = performance.now();
  const violations: string[] = [];
  let finals: FinalLock[] = [];
  let client: ClientHandle | null = null;
  const electionName = `chaos-${o.seed}-leader`;
  const electionLog = createWriteStream(join(o.outDir, "elections.jsonl"));
  let electionEvents: ElectionEvent[] = [];
  let electionFinal: ElectionFinal | null = null;
  const campaigners = o.campaigners ?? 3;
  const stopWork = new AbortController();
  const stopNemesis = new AbortController();
  try {
    const endpoints = o.endpoints ?? cluster?.clientEndpoints() ?? [];
    if (cluster && (await cluster.waitLeader(20_000)) === null) throw new Error("no leader at start");
    log(
      `chaos: seed ${o.seed}, ${o.endpoints ? "external" : o.topology}, ${o.clients} clients, ${transportOf(security)}, locks ${names.join(" ")}, ${o.seconds} s, out ${o.outDir}${o.bugs?.length ? `, TEST BUGS ${o.bugs.join(",")}` : ""}${o.applyDelayMs !== undefined ? `, apply delay ${o.applyDelayMs} ms` : ""}`,
    );
    const tokens = new Map<string, number[]>();
    const record = (op: Op): void => {
      history.add(op);
      if (op.type === "acquire" && op.outcome === "ok" && op.token !== undefined) {
        const list = tokens.get(op.name) ?? [];
        if (list.length < 10_000) list.push(op.token);
        tokens.set(op.name, list);
      }
    };
    const workSeed = rng.nextUint32();
    const work = runWorkload(
      { endpoints, security, clients: o.clients, names, seed: workSeed, ttlMs: TTL_MS, stop: stopWork.signal, clientPrefix },
      { add: record },
      stores,
    );
    const readers = o.readers ?? 2;
    const probes = runProbes(
      {
        endpoints,
        security,
        names,
        readers,
        seed: rng.nextUint32(),
        clientPrefix,
        firstClient: 1000,
        tokensOf: (n) => tokens.get(n) ?? [],
        stop: stopWork.signal,
      },
      record,
    );
    const elections =
      campaigners > 0
        ? runElections({
            endpoints,
            security,
            name: electionName,
            campaigners,
            observers: 2,
            seed: rng.nextUint32(),
            ttlMs: TTL_MS,
            stop: stopWork.signal,
            clientPrefix: `${clientPrefix}-e`,
            onEvent: (e) => electionLog.write(`${JSON.stringify(e)}\n`),
          })
        : Promise.resolve([]);
    if (o.clientProcess ?? true) {
      client = new ClientHandle(
        {
          endpoints,
          security,
          names,
          outDir: o.outDir,
          seed: rng.nextUint32(),
          clientPrefix: `${clientPrefix}-p`,
          firstClient: 500,
          clients: 1,
          ttlMs: TTL_MS,
          ...(o.guardUrl ? { guardUrl: o.guardUrl } : {}),
        },
        record,
      );
    }
    // Against an existing deployment only our own client process can be faulted (paused).
    const usable = kinds.filter((k) => (k === "client-pause" ? client !== null : cluster !== null));
    const nem =
      usable.length > 0
        ? nemesis(
            {
              cluster,
              client,
              kinds: usable,
              faults,
              log,
              clientPauseGrantWaitMs: o.clientPauseGrantWaitMs ?? 3000,
              clientPauseMs: o.clientPauseMs ?? { min: 500, max: 4500 },
            },
            rng.fork(),
            stopNemesis.signal,
          )
        : Promise.resolve();
    nem.catch(() => undefined); // a fault that throws fails the run at `await nem`, not as an unhandled rejection
    await sleep(o.seconds * 1000);
    stopNemesis.abort();
    await nem;
    if (cluster) {
      const restored = await cluster.healAll(log);
      const leader = await cluster.waitLeader(20_000);
      log(`healed; leader ${leader ?? "none"}; membership ${restored ? "restored" : "NOT restored"}`);
      if (leader === null) violations.push("no leader within 20 s after healing");
      if (!restored) violations.push("membership not restored within 20 s after healing");
    }
    await sleep(1000); // some quiet traffic on the healed cluster
    stopWork.abort();
    [electionEvents] = await Promise.all([elections, work, probes, client?.stop()]);
    finals = await finalProbe(endpoints, security, names, stores, clientPrefix);
    if (campaigners > 0)
      electionFinal = await probeElection({
        endpoints,
        security,
        name: electionName,
        ttlMs: TTL_MS,
        clientId: `${clientPrefix}-efinal`,
        random: rng.fork(),
      });
  } finally {
    // Also when a fault or the heal threw: nothing of the workload may outlive the run.
    stopNemesis.abort();
    stopWork.abort();
    await client?.stop();
    await history.close();
    await new Promise<void>((res) => electionLog.end(() => res()));
    await cluster?.stop(false);
    restoreEnv();
  }
  const ops = history.ops;
  const marks = new Map<string, bigint | null>();
  if (local) {
    for (const name of names) {
      const audit = local.audit(name);
      violations.push(...checkGuardAudit(name, audit), ...checkAuditMatchesHistory(name, audit, ops));
      marks.set(
        name,
        audit.reduce<bigint | null>((m, t) => (m === null || t > m ? t : m), null),
      );
    }
  } else if (stores instanceof HttpGuardTarget) {
    violations.push(...(await stores.checkStore()));
  }
  violations.push(
    ...checkUniqueTokens(ops),
    ...checkRealTimeOrder(ops),
    ...checkMutualExclusion(ops),
    ...checkRevokedLeaseGrants(ops),
    ...checkFinal(ops, finals, (n) => marks.get(n) ?? null),
    ...checkElections(electionEvents),
    ...checkTokensAcrossKinds(ops, electionEvents),
    ...checkExactlyOnce(...grantAccounting(ops, electionEvents, finals, electionFinal)),
    ...(electionFinal ? checkElectionFinal(electionEvents, electionFinal) : []),
  );
  // The same history against the sequential models (Porcupine-style search, per lock/resource).
  const linStarted = performance.now();
  // A 30-minute run puts ~20k operations on one lock; the search is near-linear on legal
  // histories (memoized), so a generous budget costs seconds, and "unknown" stays rare.
  const lin = checkLinearizability(toCheckerHistory(ops), { budget: 50_000_000 });
  if (lin.verdict === "illegal") violations.push(lin.explanation);
  const linSteps = lin.partitions.reduce((n, p) => n + p.steps, 0);
  stores.close();
  const byType: Record<string, number> = {};
  for (const op of ops) {
    const k = `${op.type}:${op.outcome}`;
    byType[k] = (byType[k] ?? 0) + 1;
  }
  const transport = transportOf(security);
  const totalFaults = Object.values(faults).reduce((a, b) => a + b, 0);
  const elapsed = ((performance.now() - started) / 1000).toFixed(1);
  const linearizability = `${lin.verdict}${lin.verdict === "unknown" ? " (search budget exhausted; not a verdict)" : ""}, ${lin.partitions.length} objects, ${linSteps} search steps, ${((performance.now() - linStarted) / 1000).toFixed(1)} s`;
  const lines = [
    `tenure chaos run: seed ${o.seed}, topology ${o.endpoints ? `external ${o.endpoints.join(",")}` : o.topology}, ${o.clients} clients, ${transport}, ${o.seconds} s (${elapsed} s total)${o.bugs?.length ? `, TEST BUGS ${o.bugs.join(",")}` : ""}${o.clockRateOutOfModel !== undefined ? `, every clock ${o.clockRateOutOfModel}x (out of model)` : ""}${o.applyDelayMs !== undefined ? `, apply delay ${o.applyDelayMs} ms per entry` : ""}`,
    `operations: ${ops.length} (${Object.entries(byType)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")})`,
    `faults injected: ${totalFaults} (${FAULT_KINDS.map((k) => `${k} ${faults[k]}`).join(", ")})`,
    ...(campaigners > 0
      ? [
          `elections: ${electionSummary(electionEvents)}; final campaign token ${electionFinal?.probeToken ?? `none (${electionFinal?.probeError ?? ""})`}`,
        ]
      : []),
    ...finals.map(
      (f) => `final ${f.name}: status ${f.state} token ${f.token}; probe token ${f.probeToken ?? `none (${f.probeError ?? ""})`}`,
    ),
    `linearizability: ${linearizability}`,
    `violations: ${violations.length}`,
    ...violations.slice(0, 200).map((v) => `  - ${v}`),
    ...(violations.length > 200 ? [`  ... and ${violations.length - 200} more`] : []),
    `history: ${history.path}`,
  ];
  const reportPath = join(o.outDir, "report.txt");
  writeFileSync(reportPath, `${lines.join("\n")}\n`);
  for (const l of lines) log(l);
  return { operations: ops.length, byType, faults, violations, linearizability, historyPath: history.path, reportPath };
}
