// The simulator in CI, part 1 of 3: the random preset's seed corpus, which must stay clean, and
// the determinism check. Part 2 (vopr_presets.test.ts) runs the figure8 and witness presets and
// membership churn; part 3 (vopr_bugs.test.ts) proves the checkers have teeth and tests the crash
// points. Three files so the test runner can spread the simulator over both cores.
//
// SIM_SEEDS (default 550; 600 before the disk lies, which made each seed dearer) sets how many seeds the corpus runs; `npm run sim` runs more. The
// corpus runs with the disk lies as drawn (sim_disk_lies.ts; README "The disk lies").

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CrashPointOp } from "./sim_disk.ts";
import { DISK_LIE_KINDS, type DiskLieKind } from "./sim_disk_lies.ts";
import { runSeed } from "./vopr.ts";

const corpusSeeds = Number(process.env["SIM_SEEDS"] ?? 550);

describe("simulator", () => {
  it("replays a seed exactly (same trace hash and stats)", () => {
    for (const seed of [3, 11]) {
      const a = runSeed({ seed, bug: null });
      const b = runSeed({ seed, bug: null });
      assert.equal(a.traceHash, b.traceHash);
      assert.deepEqual(a.stats, b.stats);
    }
    assert.notEqual(runSeed({ seed: 3, bug: null }).traceHash, runSeed({ seed: 4, bug: null }).traceHash);
    // Seed 3's disks lie: with the lies off it runs otherwise (their draws are on their own stream).
    const lying = runSeed({ seed: 3, bug: null });
    assert.ok(lying.stats.recoveriesStarted > 0, "seed 3 no longer lies; pick a lying seed");
    assert.notEqual(runSeed({ seed: 3, bug: null, diskLies: "off" }).traceHash, lying.traceHash);
  });

  it(`runs ${corpusSeeds} seeds with no violation and makes progress`, () => {
    const failures: string[] = [];
    let acked = 0;
    let crashes = 0;
    let partitions = 0;
    const inReady: Record<CrashPointOp, number> = { writeSnapshot: 0, writeEntries: 0, writeHardState: 0, compact: 0, sync: 0, send: 0 };
    const lies: Record<DiskLieKind, number> = { corrupt: 0, lost: 0, misdirected: 0, wiped: 0 };
    let recovered = 0;
    for (let seed = 1; seed <= corpusSeeds; seed++) {
      const r = runSeed({ seed, bug: null });
      acked += r.stats.proposalsAcked;
      crashes += r.stats.crashes;
      partitions += r.stats.partitions;
      for (const op of Object.keys(inReady) as CrashPointOp[]) inReady[op] += r.stats.crashesInReadyBefore[op];
      for (const k of DISK_LIE_KINDS) lies[k] += r.stats.diskLies[k];
      recovered += r.stats.recoveriesCompleted;
      for (const v of r.violations) failures.push(`seed ${seed}: ${v.check}: ${v.detail} (npm run sim -- --seed ${seed} --verbose)`);
    }
    assert.deepEqual(failures, []);
    // The corpus must actually exercise faults and commit work, or it proves nothing.
    assert.ok(acked > corpusSeeds * 20, `only ${acked} proposals acknowledged`);
    assert.ok(crashes > corpusSeeds / 4, `only ${crashes} crashes injected`);
    assert.ok(partitions > corpusSeeds / 4, `only ${partitions} partitions injected`);
    // Crashes inside a Ready, before every kind of storage operation and before the send.
    const inReadyTotal = Object.values(inReady).reduce((a, b) => a + b, 0);
    assert.ok(inReadyTotal > corpusSeeds / 2, `only ${inReadyTotal} crashes inside a Ready`);
    // (Snapshot writes and compactions are rarer Ready operations: see the SimStorage test below.)
    for (const op of ["writeEntries", "writeHardState", "sync", "send"] as const) {
      assert.ok(inReady[op] > 0, `no crash point ever stopped a node before ${op}: ${JSON.stringify(inReady)}`);
    }
    // Every kind of disk lie, and members that caught up after one (about 1 lie in 3 seeds).
    for (const k of DISK_LIE_KINDS) assert.ok(lies[k] > corpusSeeds / 200, `only ${lies[k]} ${k} lies: ${JSON.stringify(lies)}`);
    assert.ok(recovered > corpusSeeds / 10, `only ${recovered} recoveries completed`);
  });

  it("stops once liveness is shown and the cluster settled, with the verdict of the full window", () => {
    // Seeds of the random preset with and without membership churn; the full window runs on to
    // the liveness deadline. Same checks failed (none), and most seeds stop well before it.
    let early = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const stopped = runSeed({ seed, bug: null });
      const full = runSeed({ seed, bug: null, fullLivenessWindow: true });
      assert.deepEqual(stopped.violations, full.violations, `seed ${seed}`);
      assert.equal(full.stats.settledStopMs, -1);
      assert.equal(stopped.stats.recoveryMs, full.stats.recoveryMs, `seed ${seed}: the same run until the stop`);
      if (stopped.stats.settledStopMs >= 0) {
        early++;
        assert.equal(stopped.stats.simulatedMs, stopped.stats.settledStopMs);
        assert.ok(
          stopped.stats.simulatedMs < full.stats.simulatedMs,
          `seed ${seed} stopped at ${stopped.stats.simulatedMs} ms, not before ${full.stats.simulatedMs}`,
        );
        assert.ok(stopped.stats.events < full.stats.events);
      }
    }
    assert.ok(early >= 6, `only ${early} of 8 seeds stopped early`);
  });
});
