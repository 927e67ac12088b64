// npm run sim -- --seeds N [--from S] | --seed S [--verbose] [--bug NAME] [--preset random|figure8|witness]
//                [--time-budget-s T] [--fresh-members empty|bootstrap] [--disk-lies drawn|off|focused]
//                [--ack-watermark N] [--leader-sends-before-persist] [--commit-with-next-message]
//                [--full-liveness-window] [--trace]
// Runs simulator seeds, prints a summary, and for every failure the command that replays it.
// npm run sim -- --lock ... runs the lock-service simulation instead (lock_cli.ts).

import { BUG_NAMES, BUG_PRESET, SWARM_PRESETS, type BugName, type SwarmPreset } from "./swarm.ts";
import { runSeed, type RunResult, type RunStats } from "./vopr.ts";
import { PRODUCTION_ACK_POLICY, type SimAckPolicy } from "./sim_ack_record.ts";
import { DISK_LIE_KINDS, FOCUSED_DISK_LIES } from "./sim_disk_lies.ts";
import { runLockCli } from "./lock_cli.ts";

interface CliOptions {
  seeds: number;
  from: number;
  single: number | null;
  bug: BugName | null;
  verbose: boolean;
  timeBudgetS: number;
  preset: SwarmPreset | null;
  /** What members the churn adds start from (RunOptions.freshMembers; default empty). */
  freshMembers: "empty" | "bootstrap";
  /** RunOptions.diskLies (default drawn); focused: drawn, with FOCUSED_DISK_LIES's rates. */
  diskLies: "drawn" | "off" | "focused";
  /** The ack record's watermark in entries (RunOptions.ackPolicy; null: the simulator's exact default). */
  ackWatermark: number | null;
  /** RunOptions.leaderSendsBeforePersist: leaders park their Ready (tenured's default). */
  leaderSendsBeforePersist: boolean;
  /** RunOptions.sendCommitAtOnce false (--commit-with-next-message), as tenured runs. */
  commitWithNextMessage: boolean;
  /** RunOptions.fullLivenessWindow: no early stop once liveness is shown. */
  fullLivenessWindow: boolean;
  /** RunOptions.debug: every node's status each simulated second and the core's log lines. */
  trace: boolean;
}

function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = {
    seeds: 100,
    from: 1,
    single: null,
    bug: null,
    verbose: false,
    timeBudgetS: Infinity,
    preset: null,
    freshMembers: "empty",
    diskLies: "drawn",
    ackWatermark: null,
    leaderSendsBeforePersist: false,
    commitWithNextMessage: false,
    fullLivenessWindow: false,
    trace: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--seeds") o.seeds = positiveInt(value(), "--seeds");
    else if (arg === "--from") o.from = positiveInt(value(), "--from");
    else if (arg === "--seed") o.single = positiveInt(value(), "--seed");
    else if (arg === "--verbose") o.verbose = true;
    else if (arg === "--leader-sends-before-persist") o.leaderSendsBeforePersist = true;
    else if (arg === "--commit-with-next-message") o.commitWithNextMessage = true;
    else if (arg === "--full-liveness-window") o.fullLivenessWindow = true;
    else if (arg === "--trace") o.trace = true;
    else if (arg === "--time-budget-s") o.timeBudgetS = positiveInt(value(), "--time-budget-s");
    else if (arg === "--fresh-members") {
      const f = value();
      if (f !== "empty" && f !== "bootstrap") throw new Error("--fresh-members must be empty or bootstrap");
      o.freshMembers = f;
    } else if (arg === "--disk-lies") {
      const d = value();
      if (d !== "drawn" && d !== "off" && d !== "focused") throw new Error("--disk-lies must be drawn, off or focused");
      o.diskLies = d;
    } else if (arg === "--ack-watermark") {
      o.ackWatermark = positiveInt(value(), "--ack-watermark");
    } else if (arg === "--preset") {
      const p = value();
      if (!(p in SWARM_PRESETS)) throw new Error(`--preset must be one of ${Object.keys(SWARM_PRESETS).join(", ")}`);
      o.preset = p as SwarmPreset;
    } else if (arg === "--bug") {
      const b = value();
      if (!BUG_NAMES.includes(b as BugName)) throw new Error(`--bug must be one of ${BUG_NAMES.join(", ")}`);
      o.bug = b as BugName;
    } else throw new Error(`unknown argument ${arg}`);
  }
  return o;
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer, got ${s}`);
  return n;
}

function replayCommand(seed: number, o: CliOptions, preset: SwarmPreset): string {
  const fresh = o.freshMembers === "bootstrap" ? " --fresh-members bootstrap" : "";
  const lies = o.diskLies !== "drawn" ? ` --disk-lies ${o.diskLies}` : "";
  const ack = o.ackWatermark !== null ? ` --ack-watermark ${o.ackWatermark}` : "";
  const parked = o.leaderSendsBeforePersist ? " --leader-sends-before-persist" : "";
  const lazy = o.commitWithNextMessage ? " --commit-with-next-message" : "";
  const full = o.fullLivenessWindow ? " --full-liveness-window" : "";
  return `npm run sim -- --seed ${seed}${o.bug ? ` --bug ${o.bug}` : ""} --preset ${preset}${fresh}${lies}${ack}${parked}${lazy}${full} --verbose`;
}

function printResult(r: RunResult, o: CliOptions, preset: SwarmPreset, verbose: boolean): void {
  if (verbose || !r.ok) {
    console.log(`SEED=${r.seed} ${r.ok ? "ok" : "FAILED"} trace=${r.traceHash} ${r.swarm}`);
    console.log(`  stats ${JSON.stringify(r.stats)}`);
  }
  for (const v of r.violations) console.log(`  violation ${v.check} at ${v.atMs.toFixed(1)}ms: ${v.detail}`);
  if (!r.ok) console.log(`  replay: ${replayCommand(r.seed, o, preset)}`);
}

interface DiskTotals {
  lies: RunStats["diskLies"];
  overBound: number;
  recoveriesStarted: number;
  recoveriesCompleted: number;
}

function newDiskTotals(): DiskTotals {
  return { lies: { corrupt: 0, lost: 0, misdirected: 0, wiped: 0 }, overBound: 0, recoveriesStarted: 0, recoveriesCompleted: 0 };
}

function addDiskTotals(t: DiskTotals, s: RunStats): void {
  for (const k of DISK_LIE_KINDS) t.lies[k] += s.diskLies[k];
  t.overBound += s.diskLiesOverBound;
  t.recoveriesStarted += s.recoveriesStarted;
  t.recoveriesCompleted += s.recoveriesCompleted;
}

function main(): void {
  if (process.argv.includes("--lock")) {
    // The lock simulation is async (its clients run the SDK's promise-based code).
    void runLockCli(process.argv.slice(2).filter((a) => a !== "--lock")).then((code) => {
      process.exitCode = code;
    });
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  if (o.trace && o.single === null) throw new Error("--trace needs --seed S (one seed's trace is long)");
  const startedMs = performance.now();
  const seeds = o.single !== null ? [o.single] : Array.from({ length: o.seeds }, (_, i) => o.from + i);
  // A bug is measured under the preset that makes it reachable unless one is named.
  const preset: SwarmPreset = o.preset ?? (o.bug ? BUG_PRESET[o.bug] : "random");
  let failed = 0;
  let ran = 0;
  let events = 0;
  let parked = 0;
  const disk = newDiskTotals();
  const ackPolicy: SimAckPolicy | undefined =
    o.ackWatermark === null ? undefined : { ...PRODUCTION_ACK_POLICY, watermarkEntries: Math.max(1, o.ackWatermark) };
  for (const seed of seeds) {
    if ((performance.now() - startedMs) / 1000 > o.timeBudgetS) break;
    let r: RunResult;
    try {
      r = runSeed({
        seed,
        bug: o.bug,
        preset,
        freshMembers: o.freshMembers,
        diskLies: o.diskLies === "off" ? "off" : "drawn",
        ...(o.diskLies === "focused" ? { diskLieOverrides: FOCUSED_DISK_LIES } : {}),
        ...(ackPolicy ? { ackPolicy } : {}),
        leaderSendsBeforePersist: o.leaderSendsBeforePersist,
        sendCommitAtOnce: !o.commitWithNextMessage,
        fullLivenessWindow: o.fullLivenessWindow,
        debug: o.trace,
      });
    } catch (err) {
      // A seed that throws (the event queue over its limit, a simulator error) is a failure of
      // that seed, reported with its replay line; the run goes on with the next seed.
      ran++;
      failed++;
      console.log(`SEED=${seed} THREW ${err instanceof Error ? err.message : String(err)}`);
      console.log(`  replay: ${replayCommand(seed, o, preset)}`);
      continue;
    }
    ran++;
    events += r.stats.events;
    parked += r.stats.parkedReadies;
    addDiskTotals(disk, r.stats);
    if (!r.ok) failed++;
    printResult(r, o, preset, o.verbose || o.single !== null);
  }
  const seconds = (performance.now() - startedMs) / 1000;
  console.log(
    `simulator: ${ran} seeds, ${failed} with violations, ${events} events, ` +
      `${seconds.toFixed(1)}s, ${(ran / seconds).toFixed(1)} seeds/s, preset=${preset}${o.bug ? `, bug=${o.bug}` : ""}`,
  );
  const lies = DISK_LIE_KINDS.map((k) => `${k} ${disk.lies[k]}`).join(", ");
  console.log(
    `disk lies: ${lies} (${disk.overBound} more drawn over the loss bound); ` +
      `recoveries started ${disk.recoveriesStarted}, completed ${disk.recoveriesCompleted}`,
  );
  if (o.leaderSendsBeforePersist) console.log(`leader Readies parked (appends sent before the write): ${parked}`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main();
