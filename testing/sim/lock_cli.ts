// npm run sim -- --lock --seeds N [--from S] | --seed S [--verbose] [--bug NAME]
//                       [--break-drift-bound] [--apply-lag off|C,P,D] [--acquire-deadline]
//                       [--background-writes] [--time-budget-s T]
// The lock simulation's command line (vopr_cli.ts hands over when it sees --lock): runs seeds,
// prints a summary, and for every failure the command that replays it. With --break-drift-bound
// (the negative control) overlapping beliefs are reported as observations, not failures.
// --apply-lag: none on any node (off), or on every node at most C committed entries per Ready,
// P Readies per pass, a pass every D ms (default: drawn from the seed). --acquire-deadline: the
// clients put a 4-TTL deadline on every blocking acquire (the former workaround; default none).

import { runLockSeed, type LockRunResult } from "./lock_sim.ts";
import { LOCK_SIM_BUG_NAMES, type LockRunOptions, type LockSimBugName } from "./lock_sim_types.ts";

interface LockCliOptions {
  seeds: number;
  from: number;
  single: number | null;
  bug: LockSimBugName | null;
  verbose: boolean;
  breakDriftBound: boolean;
  applyLag: NonNullable<LockRunOptions["applyLag"]>;
  acquireDeadline: boolean;
  backgroundWrites: boolean;
  timeBudgetS: number;
}

function parseApplyLag(v: string | undefined): NonNullable<LockRunOptions["applyLag"]> {
  if (v === "off" || v === "drawn") return v;
  const [c, p, d] = (v ?? "").split(",").map(Number);
  if (![c, p, d].every((x) => Number.isSafeInteger(x) && (x ?? 0) >= 1))
    throw new Error("--apply-lag needs off, drawn or C,P,D (positive integers)");
  return { committedEntriesPerReadyMax: c ?? 1, readiesPerPassMax: p ?? 1, passEveryMs: d ?? 1 };
}

function describeApplyLag(a: LockCliOptions["applyLag"]): string {
  return typeof a === "string" ? a : `${a.committedEntriesPerReadyMax},${a.readiesPerPassMax},${a.passEveryMs}`;
}

function parse(argv: readonly string[]): LockCliOptions {
  const o: LockCliOptions = {
    seeds: 100,
    from: 1,
    single: null,
    bug: null,
    verbose: false,
    breakDriftBound: false,
    applyLag: "drawn",
    acquireDeadline: false,
    backgroundWrites: false,
    timeBudgetS: Infinity,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${arg} needs a non-negative integer`);
      return v;
    };
    if (arg === "--seeds") o.seeds = value();
    else if (arg === "--from") o.from = value();
    else if (arg === "--seed") o.single = value();
    else if (arg === "--time-budget-s") o.timeBudgetS = value();
    else if (arg === "--verbose") o.verbose = true;
    else if (arg === "--break-drift-bound") o.breakDriftBound = true;
    else if (arg === "--acquire-deadline") o.acquireDeadline = true;
    else if (arg === "--background-writes") o.backgroundWrites = true;
    else if (arg === "--apply-lag") o.applyLag = parseApplyLag(argv[++i]);
    else if (arg === "--bug") {
      const b = argv[++i];
      if (!LOCK_SIM_BUG_NAMES.includes(b as LockSimBugName)) throw new Error(`--bug must be one of ${LOCK_SIM_BUG_NAMES.join(", ")}`);
      o.bug = b as LockSimBugName;
    } else throw new Error(`unknown argument ${arg} (lock simulation)`);
  }
  return o;
}

function print(r: LockRunResult, o: LockCliOptions, verbose: boolean): void {
  if (verbose || !r.ok) {
    console.log(`SEED=${r.seed} ${r.ok ? "ok" : "FAILED"} trace=${r.traceHash} ${r.swarm}`);
    console.log(`  stats ${JSON.stringify(r.stats)}`);
  }
  for (const v of r.violations) console.log(`  violation ${v.check} at ${v.atMs.toFixed(1)}ms: ${v.detail}`);
  if (verbose) for (const d of r.observations.details) console.log(`  observed (expected) overlap: ${d}`);
  if (!r.ok) {
    const flags = `${o.bug ? ` --bug ${o.bug}` : ""}${o.breakDriftBound ? " --break-drift-bound" : ""}${o.applyLag !== "drawn" ? ` --apply-lag ${describeApplyLag(o.applyLag)}` : ""}${o.acquireDeadline ? " --acquire-deadline" : ""}${o.backgroundWrites ? " --background-writes" : ""}`;
    console.log(`  replay: npm run sim -- --lock --seed ${r.seed}${flags} --verbose`);
  }
}

/** Resolves to the process exit code. */
export async function runLockCli(argv: readonly string[]): Promise<number> {
  const o = parse(argv);
  const startedMs = performance.now();
  const seeds = o.single !== null ? [o.single] : Array.from({ length: o.seeds }, (_, i) => o.from + i);
  let ran = 0;
  let failed = 0;
  let overlaps = 0;
  let seedsWithOverlap = 0;
  let staleRejected = 0;
  const crashPoints = { armed: 0, fired: 0, before: {} as Record<string, number> };
  let churnReadsAnswered = 0;
  let durableCommitChecks = 0;
  let restoresToWaiters = 0;
  for (const seed of seeds) {
    if ((performance.now() - startedMs) / 1000 > o.timeBudgetS) break;
    const r = await runLockSeed({
      seed,
      bug: o.bug,
      breakDriftBound: o.breakDriftBound,
      applyLag: o.applyLag,
      acquireDeadline: o.acquireDeadline,
      backgroundWrites: o.backgroundWrites,
    });
    ran++;
    if (!r.ok) failed++;
    overlaps += r.observations.overlaps;
    if (r.observations.overlaps > 0) seedsWithOverlap++;
    staleRejected += r.stats.guardRejected;
    crashPoints.armed += r.stats.crashPointsArmed;
    crashPoints.fired += r.stats.crashesInReady;
    for (const [op, n] of Object.entries(r.stats.crashesInReadyBefore)) crashPoints.before[op] = (crashPoints.before[op] ?? 0) + n;
    churnReadsAnswered += r.stats.churnReadsAnswered;
    durableCommitChecks += r.stats.durableCommitChecks;
    restoresToWaiters += r.stats.restoresToWaiters;
    print(r, o, o.verbose || o.single !== null);
  }
  const seconds = (performance.now() - startedMs) / 1000;
  console.log(
    `lock simulator: ${ran} seeds, ${failed} with violations, ${seconds.toFixed(1)}s` +
      `${o.bug ? `, bug=${o.bug}` : ""}${o.applyLag !== "drawn" ? `, apply lag ${describeApplyLag(o.applyLag)}` : ""}; stale writes rejected by the guard: ${staleRejected}` +
      (o.breakDriftBound ? `; negative control: ${overlaps} overlapping beliefs observed in ${seedsWithOverlap} seeds (expected)` : ""),
  );
  const before = Object.entries(crashPoints.before)
    .map(([op, n]) => `${op} ${n}`)
    .join(", ");
  console.log(
    `  crash points: ${crashPoints.armed} armed, ${crashPoints.fired} fired inside a Ready (before: ${before}); ` +
      `reads answered to readers of churned-in members: ${churnReadsAnswered}; leader commits checked durable: ${durableCommitChecks}; ` +
      `snapshot restores told to queued waiters: ${restoresToWaiters}`,
  );
  return failed > 0 ? 1 : 0;
}
