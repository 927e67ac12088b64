// One short chaos run against a deliberately broken cluster, for the teeth tests
// (teeth.test.ts, teeth_clock.test.ts, endpoints.test.ts): three voters, 6 holders on 3 locks,
// its own temp dir; and the bounded retry that keeps a timing-dependent catch from flaking.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runChaos, type ChaosOptions } from "./run.ts";

export interface BrokenRun {
  readonly violations: string[];
  readonly log: string;
}

export async function runBroken(o: Omit<ChaosOptions, "outDir" | "topology" | "clients" | "locks" | "log">): Promise<BrokenRun> {
  const out = mkdtempSync(join(tmpdir(), "tenure-teeth-"));
  const lines: string[] = [];
  try {
    const r = await runChaos({ topology: "three", clients: 6, locks: 3, outDir: out, log: (l) => lines.push(l), ...o });
    return { violations: r.violations, log: lines.join("\n") };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/**
 * Runs `attempt` with each seed in turn until `caught` holds, at most `seeds.length` runs. A catch
 * that needs a fault to land at the right moment (a client pause right after a grant) can miss on
 * one draw when the machine is loaded; a second seed is a second draw. A check that lost its teeth
 * misses on every seed, so the test still fails. Returns the catching run, or the last one with
 * every run's log when none caught.
 */
export async function untilCaught(
  seeds: readonly number[],
  attempt: (seed: number) => Promise<BrokenRun>,
  caught: (violation: string) => boolean,
): Promise<{ caught: boolean; run: BrokenRun; log: string }> {
  const logs: string[] = [];
  let last: BrokenRun | undefined;
  for (const seed of seeds) {
    const run = await attempt(seed);
    logs.push(`--- seed ${seed} ---\n${run.log}`);
    if (run.violations.some(caught)) return { caught: true, run, log: logs.join("\n") };
    last = run;
  }
  if (last === undefined) throw new Error("untilCaught needs at least one seed");
  return { caught: false, run: last, log: logs.join("\n") };
}
