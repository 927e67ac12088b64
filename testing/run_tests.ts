// The test runner behind `npm test`, `npm run test:unit` and `npm run test:system`: finds every
// *.test.ts, puts each in exactly one half by where it lives, and runs the files in parallel: each
// system file and each long unit file in a process of its own, the small unit files a few batches
// of one process each (all through testing/unit_batch.ts; --isolated: one process per file).
// Exit code 1 when any file (or the type-check) fails or a file sits in the wrong half, 0 otherwise.
//
//   node --import tsx testing/run_tests.ts [--typecheck] unit|system [unit|system] [--list] [--verbose] [--isolated] [path-substring ...]
//
// The split is by directory (README "Set up, run, test"):
//   system  testing/itest/**, testing/chaos/*.test.ts (the runs on real processes), tools/**:
//           the tests that start tenured, tenure-witness, the launcher or the chaos harness.
//   unit    everything else: server/**, client-sdk/**, witness/**, testing/sim/**,
//           testing/chaos/checker/**, testing/*.test.ts. They start no cluster.
// A unit file that imports the harnesses that run clusters (testing/itest/process_cluster.ts,
// testing/chaos/run.ts or faults.ts) is refused: move it to testing/itest/. (A unit test may
// spawn one tenured that must exit at once, e.g. on a bad config.)
//
// Scheduling: jobs start in order (the type-check, then the long files of LONGEST_FIRST, then the
// others by path), each as soon as its slots let it. Unit files (CPU-bound) and the type-check:
// one per core. System files: 4 at once (they mostly wait on real processes; ports are race-free
// and timing bounds generous), of which at most 2 heavy ones: the chaos runs (files importing
// testing/chaos/run.ts or teeth_kit.ts: each runs a cluster, a client process and a nemesis, and
// their checks need the workload to make progress) and the files in HEAVY. `npm test` runs the
// type-check and both halves in one schedule, the CPU-bound jobs at nice 10: the system files'
// timing depends on getting the CPU when they need it, the simulator's results do not, and it
// takes whatever the system files leave. TEST_UNIT_CONCURRENCY, TEST_SYSTEM_CONCURRENCY and
// TEST_HEAVY_CONCURRENCY override the slots. Each file gets 10 minutes (unit_batch.ts) and
// --test-force-exit (a leaked handle ends the file instead of hanging the run).
//
// Before the first job: one build of the server (TEST_SERVER_BUILD_DIR), one pool of RSA keys
// for the test processes' certificates (TEST_DEV_KEY_POOL, tools/dev_keys.ts) and one bundle of
// the test files (testing/test_bundle.ts, TEST_BUNDLE_DIR; TEST_BUNDLE=0 runs them through tsx):
// the jobs run with plain node. The run's time includes all three.
//
// Output: one line per passing file, the whole output of a failing one (or of every file with
// --verbose or TEST_VERBOSE=1), then the slowest and a summary.

import { spawn } from "node:child_process";
import { type Dirent, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, setPriority, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { buildServer } from "../tools/build.ts";
import { TEST_KEY_POOL_ENV, writeKeyPool } from "../tools/dev_keys.ts";
import { BUILD_DIR_ENV } from "./itest/server_command.ts";
import { TEST_ROOTS } from "./test_roots.ts";
import { TEST_BUNDLE_DIR_ENV, bundledPath } from "./bundle_paths.ts";
import { buildTestBundle } from "./test_bundle.ts";

const repoRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));
const ROOTS = TEST_ROOTS;

/** The long poles of both halves, longest first (measured on 2 cores). */
const LONGEST_FIRST = [
  "testing/sim/lock_sim.test.ts",
  "testing/sim/vopr.test.ts",
  "testing/sim/vopr_presets.test.ts",
  "testing/itest/snapshot_catchup.test.ts",
  "testing/chaos/endpoints.test.ts",
  "testing/chaos/teeth.test.ts",
  "testing/chaos/chaos.test.ts",
  "testing/chaos/chaos_witness.test.ts",
  "testing/chaos/teeth_clock.test.ts",
  "testing/sim/vopr_bugs.test.ts",
  "testing/itest/lock_service.test.ts",
  "testing/itest/sdk/failover.test.ts",
  "testing/itest/sdk/leader_worker_example.test.ts",
  "testing/itest/local_cluster.test.ts",
  "testing/chaos/elections.test.ts",
];

/** RSA keys generated once per run for the test processes' certificates (tools/dev_keys.ts): the
 *  most one test file takes is 16 (server/tls/tls.test.ts); a file needing more generates the rest. */
const KEY_POOL_SIZE = 16;

/** How many processes the small unit files share (TEST_UNIT_BATCHES overrides): a few more than
 *  the unit slots, so that the last to finish is short. */
const UNIT_BATCHES = 4;

/** An import of a harness that runs clusters of real processes: only system tests may. */
const RUNS_CLUSTERS = /from\s+["'][^"']*(?:itest\/process_cluster|chaos\/run|chaos\/faults)\.ts["']/;
/** An import of the chaos harness's run (directly or through the teeth kit): a "chaos run". */
const RUNS_CHAOS = /from\s+["'](?:\.\/|[^"']*\/chaos\/)(?:run|teeth_kit)\.ts["']/;
/** Other system files that load the machine as much as a chaos run (40,000 grants from 500
 *  clients): they take a chaos-run slot too. */
const HEAVY = ["testing/itest/snapshot_catchup.test.ts"];

export type Half = "unit" | "system";

export function halfOf(path: string): Half {
  if (path.startsWith("testing/itest/") || path.startsWith("tools/")) return "system";
  if (path.startsWith("testing/chaos/") && !path.startsWith("testing/chaos/checker/")) return "system";
  return "unit";
}

function testFiles(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(join(repoRoot, dir), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((d) => {
    const p = `${dir}/${d.name}`;
    if (d.isDirectory()) return d.name === "node_modules" ? [] : testFiles(p);
    return d.name.endsWith(".test.ts") ? [p] : [];
  });
}

export function ordered(files: readonly string[]): string[] {
  const rank = (f: string): number => {
    const i = LONGEST_FIRST.indexOf(f);
    return i < 0 ? LONGEST_FIRST.length : i;
  };
  return [...files].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** What a job loads the machine with: a CPU-bound unit file (or the type-check), a heavy system
 *  file, or a system file that mostly waits on real processes. */
type Kind = "cpu" | "heavy" | "system";

interface Job {
  readonly name: string;
  /** The test files a batch job runs (unit_batch.ts), for one line each in the report. */
  readonly batchFiles?: readonly string[];
  readonly kind: Kind;
  readonly args: readonly string[];
  /** CPU priority (nice value) of the job's process and what it starts; 0 is normal. */
  readonly nice: number;
}

interface JobResult {
  readonly name: string;
  readonly ok: boolean;
  readonly seconds: number;
  /** CPU (user + system) of the job's process and the processes it waited for: unlike the wall
   *  time it does not depend on what else ran beside it, so it is the figure to cut. */
  readonly cpuSeconds: number;
  readonly tests: string;
}

/** CPU seconds of this process's reaped children and theirs (cutime + cstime of /proc/self/stat;
 *  0 where there is no /proc). A child's share is added when it is reaped, so the growth between
 *  two exits is the CPU of the job that just ended (two ending in the same tick share it). */
function reapedChildrenCpuSeconds(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command name: state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}
/** USER_HZ: 100 on every Linux Node supports. */
const CLOCK_TICKS_PER_S = 100;
let reapedCpuSeenS = 0;

/** Unit files (and the type-check) and system files have slots of their own. */
interface Limits {
  readonly cpu: number;
  readonly system: number;
  readonly heavy: number;
}

const running = new Set<number>();
/** When the run started, for the "from-to" of each job's line. */
const runStartedS = performance.now() / 1000;

function runJob(job: Job, verbose: boolean): Promise<JobResult> {
  const started = performance.now();
  const child = spawn(process.execPath, job.args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  // Set before the job can start anything (it first loads for a few hundred ms): its own
  // children inherit it.
  if (job.nice !== 0 && child.pid !== undefined) {
    try {
      setPriority(child.pid, job.nice);
    } catch {
      // not permitted here: run at normal priority
    }
  }
  const chunks: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => chunks.push(b));
  child.stderr.on("data", (b: Buffer) => chunks.push(b));
  running.add(child.pid ?? -1);
  return new Promise((done) => {
    child.on("close", (code, signal) => {
      running.delete(child.pid ?? -1);
      const reapedCpuS = reapedChildrenCpuSeconds();
      const cpuSeconds = reapedCpuS - reapedCpuSeenS;
      reapedCpuSeenS = reapedCpuS;
      const output = Buffer.concat(chunks).toString();
      const count = (what: string): string => new RegExp(`ℹ ${what} (\\d+)`).exec(output)?.[1] ?? "?";
      const ok = code === 0;
      const seconds = (performance.now() - started) / 1000;
      const tests = job.name === "typecheck" ? (ok ? "no errors" : "type errors") : `${count("pass")}/${count("tests")} passed`;
      const at = `${(started / 1000 - runStartedS).toFixed(0)}-${(performance.now() / 1000 - runStartedS).toFixed(0)} s`;
      process.stdout.write(
        `${ok ? "ok  " : "FAIL"} ${job.name} (${seconds.toFixed(1)} s, cpu ${cpuSeconds.toFixed(1)} s, ${tests}${signal ? `, ${signal}` : ""}; ${at})\n`,
      );
      if (job.batchFiles !== undefined) process.stdout.write(batchFileLines(output, job.batchFiles));
      if (!ok || verbose) process.stdout.write(`${output.replace(/^/gm, "    ")}\n`);
      done({ name: job.name, ok, seconds, cpuSeconds, tests });
    });
  });
}

/** One line per file of a batch, from the spec reporter's top-level suite line of each (a file
 *  whose line is missing did not finish: the batch's output says why). */
function batchFileLines(output: string, files: readonly string[]): string {
  const ends = new Map<string, { ok: boolean; ms: number }>();
  for (const m of output.matchAll(/^(✔|✖) (\S+\.test\.ts) \(([\d.]+)ms\)$/gm)) {
    ends.set(m[2] as string, { ok: m[1] === "✔", ms: Number(m[3]) });
  }
  return files
    .map((f) => {
      const end = ends.get(f);
      return end === undefined
        ? `     ?    ${f} (did not finish)\n`
        : `     ${end.ok ? "ok  " : "FAIL"} ${f} (${(end.ms / 1000).toFixed(1)} s)\n`;
    })
    .join("");
}

/** Splits the files into `count` batches of similar length (round-robin over the path order, so
 *  each holds a share of every directory). */
export function batches(files: readonly string[], count: number): string[][] {
  const out: string[][] = Array.from({ length: Math.min(count, files.length) }, () => []);
  files.forEach((f, i) => out[i % out.length]?.push(f));
  return out;
}

/** Runs the jobs in order, each as soon as the limits allow (the first waiting job that fits). */
function runAll(jobs: readonly Job[], limits: Limits, verbose: boolean): Promise<JobResult[]> {
  const waiting = [...jobs];
  const results: JobResult[] = [];
  const active: Record<Kind, number> = { cpu: 0, heavy: 0, system: 0 };
  const fits = (j: Job): boolean =>
    j.kind === "cpu"
      ? active.cpu < limits.cpu
      : active.system + active.heavy < limits.system && (j.kind === "system" || active.heavy < limits.heavy);
  return new Promise((resolveAll) => {
    const next = (): void => {
      for (let i = waiting.findIndex(fits); i >= 0; i = waiting.findIndex(fits)) {
        const [job] = waiting.splice(i, 1) as [Job];
        active[job.kind]++;
        void runJob(job, verbose).then((r) => {
          results.push(r);
          active[job.kind]--;
          if (waiting.length === 0 && active.cpu + active.system + active.heavy === 0) resolveAll(results);
          else next();
        });
      }
    };
    if (jobs.length === 0) resolveAll(results);
    else next();
  });
}

const USAGE =
  "usage: node --import tsx testing/run_tests.ts [--typecheck] unit|system [unit|system] [--list] [--verbose] [--isolated] [path-substring ...]\n";

async function main(argv: readonly string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => a.startsWith("--")));
  const positional = argv.filter((a) => !a.startsWith("--"));
  const halves = new Set(positional.filter((a): a is Half => a === "unit" || a === "system"));
  const filters = positional.filter((a) => a !== "unit" && a !== "system");
  if (halves.size === 0) {
    process.stderr.write(USAGE);
    return 2;
  }
  const all = ROOTS.flatMap(testFiles);
  const misplaced = all.filter((f) => halfOf(f) === "unit" && RUNS_CLUSTERS.test(readFileSync(join(repoRoot, f), "utf8")));
  if (misplaced.length > 0) {
    process.stderr.write(
      `these tests run clusters of real processes but sit outside the system directories (move them under testing/itest/):\n${misplaced.map((f) => `  ${f}\n`).join("")}`,
    );
    return 1;
  }
  const files = ordered(all.filter((f) => halves.has(halfOf(f)) && (filters.length === 0 || filters.some((s) => f.includes(s)))));
  if (flags.has("--list")) {
    process.stdout.write(files.map((f) => `${f}\n`).join(""));
    return 0;
  }
  if (files.length === 0) {
    process.stderr.write(`no test files${filters.length > 0 ? ` matching ${filters.join(" ")}` : ""}\n`);
    return 1;
  }
  const kindOf = (f: string): Kind =>
    halfOf(f) === "unit" ? "cpu" : HEAVY.includes(f) || RUNS_CHAOS.test(readFileSync(join(repoRoot, f), "utf8")) ? "heavy" : "system";
  // Every job runs its files through unit_batch.ts with plain node: a system file or a long unit
  // file alone, the small unit files a few processes of several files each. `node --test FILE`
  // would start a second process and TypeScript loader per file, most of a small file's CPU, and
  // would hand its children NODE_TEST_CONTEXT. --isolated runs every file in a process of its own.
  const isolated = flags.has("--isolated");
  const smallUnitFiles = files.filter((f) => kindOf(f) === "cpu" && !LONGEST_FIRST.includes(f));
  const unitBatchCount = positiveInt(process.env["TEST_UNIT_BATCHES"], UNIT_BATCHES);
  // From the run's test bundle (testing/test_bundle.ts) with plain node, unless TEST_BUNDLE=0:
  // then through tsx from the sources.
  const bundled = process.env["TEST_BUNDLE"] !== "0";
  if (!bundled) delete process.env[TEST_BUNDLE_DIR_ENV];
  let bundleDir: string | null = null;
  if (bundled) {
    mkdirSync(join(repoRoot, "dist"), { recursive: true });
    bundleDir = mkdtempSync(join(repoRoot, "dist", "test-bundle-"));
  }
  const runnerFlags = ["--test-reporter=spec", "--test-force-exit"];
  const batchArgs =
    bundleDir === null
      ? ["--import", "tsx", ...runnerFlags, join(repoRoot, "testing/unit_batch.ts")]
      : [...runnerFlags, bundledPath(bundleDir, "testing/unit_batch.ts")];
  // With system files in the same run, CPU-bound jobs go at lower priority: the system files'
  // timing depends on getting the CPU when they need it, a simulator's result does not.
  const cpuNice = halves.has("system") ? 10 : 0;
  const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
  const jobs: Job[] = [
    ...(flags.has("--typecheck")
      ? [{ name: "typecheck", kind: "cpu" as const, args: [tsc, "-p", "tsconfig.json", "--noEmit"], nice: cpuNice }]
      : []),
    ...files
      .filter((f) => isolated || kindOf(f) !== "cpu" || LONGEST_FIRST.includes(f))
      .map((f) => {
        const kind = kindOf(f);
        return { name: f, kind, args: [...batchArgs, f], nice: kind === "cpu" ? cpuNice : 0 };
      }),
    ...(isolated ? [] : batches(smallUnitFiles, unitBatchCount)).map((group, i, all) => ({
      name: `unit batch ${i + 1}/${all.length} (${group.length} files)`,
      kind: "cpu" as const,
      args: [...batchArgs, ...group],
      nice: cpuNice,
      batchFiles: group,
    })),
  ];
  const limits: Limits = {
    cpu: positiveInt(process.env["TEST_UNIT_CONCURRENCY"], availableParallelism()),
    system: positiveInt(process.env["TEST_SYSTEM_CONCURRENCY"], 4),
    heavy: positiveInt(process.env["TEST_HEAVY_CONCURRENCY"], 2),
  };
  const verbose = flags.has("--verbose") || process.env["TEST_VERBOSE"] === "1";
  const what = [...(flags.has("--typecheck") ? ["typecheck"] : []), ...halves].join(" + ");
  const slots = [
    ...(halves.has("unit") || flags.has("--typecheck") ? [`${limits.cpu} unit${cpuNice !== 0 ? ` (nice ${cpuNice})` : ""}`] : []),
    ...(halves.has("system") ? [`${limits.system} system of which ${limits.heavy} heavy`] : []),
  ];
  process.stdout.write(`${what}: ${jobs.length} jobs, at once: ${slots.join(", ")}\n`);
  // One build of the server per run (tools/build.ts): the system tests start tenured and
  // tenure-witness from it with plain node, as production runs them (testing/itest/server_command.ts).
  let buildDir: string | null = null;
  const building = async (): Promise<void> => {
    if (!halves.has("system") || process.env[BUILD_DIR_ENV] !== undefined) return;
    // Inside the repository, so the bundle's external packages resolve from its node_modules.
    mkdirSync(join(repoRoot, "dist"), { recursive: true });
    buildDir = mkdtempSync(join(repoRoot, "dist", "test-build-"));
    await buildServer(buildDir);
    process.env[BUILD_DIR_ENV] = buildDir;
    process.stdout.write(`built the server into ${buildDir} (${BUILD_DIR_ENV})\n`);
  };
  // The key pool: every test process that issues certificates takes its keys from it instead of
  // generating them (about a second of CPU per file).
  let keyPoolDir: string | null = null;
  const pooling = async (): Promise<void> => {
    if (process.env[TEST_KEY_POOL_ENV] !== undefined) return;
    keyPoolDir = mkdtempSync(join(tmpdir(), "tenure-test-keys-"));
    const file = join(keyPoolDir, "keys.pem");
    await writeKeyPool(file, KEY_POOL_SIZE);
    process.env[TEST_KEY_POOL_ENV] = file;
  };
  const bundling = async (): Promise<void> => {
    if (bundleDir === null) return;
    await buildTestBundle(repoRoot, bundleDir, ["testing/unit_batch.ts", ...files]);
    process.env[TEST_BUNDLE_DIR_ENV] = bundleDir;
  };
  // The run's time includes the builds and the pool (it is what `npm test` waits for).
  const started = performance.now();
  try {
    await Promise.all([building(), pooling(), bundling()]);
  } catch (e) {
    if (bundleDir !== null) rmSync(bundleDir, { recursive: true, force: true });
    throw e;
  }
  const results = await runAll(jobs, limits, verbose);
  if (bundleDir !== null) rmSync(bundleDir, { recursive: true, force: true });
  if (buildDir !== null) rmSync(buildDir, { recursive: true, force: true });
  if (keyPoolDir !== null) rmSync(keyPoolDir, { recursive: true, force: true });
  const failed = results.filter((r) => !r.ok);
  const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 5);
  process.stdout.write(`slowest: ${slowest.map((r) => `${r.name} ${r.seconds.toFixed(1)} s`).join(", ")}\n`);
  const hungriest = [...results].sort((a, b) => b.cpuSeconds - a.cpuSeconds).slice(0, 8);
  process.stdout.write(`most cpu: ${hungriest.map((r) => `${r.name} ${r.cpuSeconds.toFixed(1)} s`).join(", ")}\n`);
  const cpuTotalS = results.reduce((sum, r) => sum + r.cpuSeconds, 0);
  process.stdout.write(`cpu: ${cpuTotalS.toFixed(0)} s in the jobs (${availableParallelism()} cores)\n`);
  process.stdout.write(
    `${what}: ${results.length - failed.length}/${results.length} passed in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  for (const r of failed) process.stdout.write(`FAILED ${r.name} (${r.tests})\n`);
  return failed.length > 0 ? 1 : 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    for (const pid of running) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    process.exit(1);
  });
}

process.exitCode = await main(process.argv.slice(2));
