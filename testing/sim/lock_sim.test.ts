// The lock simulation in CI: determinism, a seed corpus that must stay clean, the negative
// control (broken clock bounds: overlap observed, guard still safe), reads that stay
// linearizable when apply lags commit, and proof that the lock checkers have teeth (each bug
// switch caught within a stated number of seeds; the measured table is in testing/sim/README.md).
//
// LOCK_SIM_SEEDS (default 300; the file takes about 60 s of CPU: the clients run the SDK over the api
// handlers, and readers ask every member) sets the corpus size; `npm run sim -- --lock --seeds N` runs more.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { runLockSeed, type LockRunOptions } from "./lock_sim.ts";
import type { ApplyLag, LockCheckName, LockSimBugName } from "./lock_sim_types.ts";

const corpusSeeds = Number(process.env["LOCK_SIM_SEEDS"] ?? 300);

interface BugCase {
  readonly bug: LockSimBugName;
  /** Seeds (from 1) within which the bug must be caught; measured first catch well below it. */
  readonly limit: number;
  readonly check: LockCheckName;
  readonly options?: Partial<LockRunOptions>;
}

/** The apply-lag fault on every node: one entry per Ready, one Ready per pass, a pass every 30 ms (--apply-lag 1,1,30). */
export const EVERY_NODE_LAGS: ApplyLag = { committedEntriesPerReadyMax: 1, readiesPerPassMax: 1, passEveryMs: 30 };

export const LOCK_BUG_CASES: readonly BugCase[] = [
  { bug: "grantWithoutLeaseCheck", limit: 20, check: "grant-without-lease" },
  { bug: "reuseTokenAfterRestore", limit: 40, check: "applied-diverged" },
  // The same bug with replica hashes ignored: the token log alone must catch it.
  { bug: "reuseTokenAfterRestore", limit: 40, check: "token-not-increasing", options: { compareStateHashes: false } },
  { bug: "guardCheckNotAtomic", limit: 40, check: "guard-accepted-stale" },
  // The SDK's own lease code (client-sdk/client.ts ClientRuntime): t0 taken when the answer arrives.
  { bug: "leaseStartAfterReply", limit: 20, check: "mutual-exclusion" },
  // A stale read needs a leader whose applied index lags an entry committed before the read was
  // sent: with every node lagging, caught on about one seed in twelve (README; first at seed 21).
  // Runs are deterministic, but any change to the loop moves the first catching seed: at one in
  // twelve a bound of 40 would be missed by about 3% of such changes, 80 by about 0.1%.
  { bug: "readBeforeApplied", limit: 80, check: "read-linearizable", options: { applyLag: EVERY_NODE_LAGS } },
  // The Ready loop's switch through RaftNode: append acknowledgements leave before the write is
  // synced; a leader counting one commits what no durable quorum holds (caught at seed 1).
  { bug: "sendBeforePersist", limit: 10, check: "commit-not-durable" },
];

export async function firstCaughtLockSeed(c: BugCase): Promise<{ seed: number; check: string } | null> {
  for (let seed = 1; seed <= c.limit; seed++) {
    // Caught by the named check (the read check runs last, after a run another check may have stopped).
    const vs = (await runLockSeed({ seed, bug: c.bug, ...c.options })).violations;
    const v = vs.find((x) => x.check === c.check) ?? vs[0];
    if (v) return { seed, check: v.check };
  }
  return null;
}

describe("lock simulation", () => {
  it("replays a seed exactly (same trace hash and stats), a blocking call's own timeout included", async () => {
    // 550 and 63 wait with a timeout_ms: before the api layer's wait ran on the simulated clock
    // (ServiceDeps.waitClock), a real timer ended it, and they gave a new trace every few runs.
    for (const seed of [3, 11, 550, 63]) {
      const a = await runLockSeed({ seed, bug: null });
      const b = await runLockSeed({ seed, bug: null });
      assert.equal(a.traceHash, b.traceHash);
      assert.deepEqual(a.stats, b.stats);
      assert.deepEqual(a.violations, b.violations);
    }
    assert.notEqual((await runLockSeed({ seed: 3, bug: null })).traceHash, (await runLockSeed({ seed: 4, bug: null })).traceHash);
  });

  it("a finished seed leaves nothing behind (the SDK's keepalive sleep once kept every client alive)", async () => {
    // AbortSignal.any composites with a listener stay in a global set until they abort; the SDK's
    // keepalive loop slept on one, so each seed's abandoned clients, and the whole simulation
    // with them, stayed reachable: about 0.6 MB a seed, out of heap near seed 6,500 of a long run.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    for (let seed = 1; seed <= 10; seed++) await runLockSeed({ seed, bug: null }); // warm the code
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let seed = 11; seed <= 40; seed++) await runLockSeed({ seed, bug: null });
    gc();
    const grownMb = (process.memoryUsage().heapUsed - before) / 1e6;
    assert.ok(grownMb < 8, `the heap grew ${grownMb.toFixed(1)} MB over 30 seeds: something keeps finished runs alive`);
  });

  it("runs the SDK on simulated time only: no real timer is set during a run", async () => {
    const real = globalThis.setTimeout;
    let calls = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      calls++;
      return real(...args);
    }) as typeof setTimeout;
    try {
      await runLockSeed({ seed: 5, bug: null });
    } finally {
      globalThis.setTimeout = real;
    }
    assert.equal(calls, 0, "the SDK, the wire or the api handlers set a real timer");
  });

  it(`runs ${corpusSeeds} seeds with no violation and exercises grants, faults and the guard`, async () => {
    const failures: string[] = [];
    const total = {
      grants: 0,
      beliefs: 0,
      crashes: 0,
      partitions: 0,
      clientPauses: 0,
      replyPauses: 0,
      guardAccepted: 0,
      guardRejected: 0,
      leasesLost: 0,
      slowNodes: 0,
      readsAnswered: 0,
      readsRefused: 0,
      readCheckUnknown: 0,
      churnReaders: 0,
      churnReadsAnswered: 0,
      durableCommitChecks: 0,
      restoresToWaiters: 0,
      crashPointsArmed: 0,
      crashesInReady: 0,
      backgroundWrites: 0,
      backgroundWritesLost: 0,
    };
    const crashedBefore: Record<string, number> = {};
    for (let seed = 1; seed <= corpusSeeds; seed++) {
      // Every other seed as tenured runs by default: the leader's write in the background, its
      // sync a later event (the rest keep the synchronous path of the witness and --fsync-on-event-loop).
      const r = await runLockSeed({ seed, bug: null, backgroundWrites: seed % 2 === 0 });
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r.stats[k];
      for (const [op, n] of Object.entries(r.stats.crashesInReadyBefore)) crashedBefore[op] = (crashedBefore[op] ?? 0) + n;
      const flags = seed % 2 === 0 ? " --background-writes" : "";
      for (const v of r.violations)
        failures.push(`seed ${seed}: ${v.check}: ${v.detail} (npm run sim -- --lock --seed ${seed}${flags} --verbose)`);
    }
    assert.deepEqual(failures, []);
    assert.ok(total.backgroundWrites > corpusSeeds * 20, `only ${total.backgroundWrites} background writes`);
    assert.ok(total.backgroundWritesLost > 0, "no process crashed while a background write was in flight");
    // A corpus that grants nothing or injects no faults proves nothing.
    assert.ok(total.grants > corpusSeeds * 8, `only ${total.grants} grants`);
    assert.ok(total.beliefs > corpusSeeds * 8, `only ${total.beliefs} beliefs`);
    assert.ok(total.guardAccepted > corpusSeeds * 20, `only ${total.guardAccepted} guarded writes`);
    assert.ok(total.crashes > corpusSeeds / 2, `only ${total.crashes} crashes`);
    assert.ok(total.partitions > corpusSeeds / 2, `only ${total.partitions} partitions`);
    assert.ok(total.clientPauses > corpusSeeds / 2, `only ${total.clientPauses} client pauses`);
    assert.ok(total.replyPauses > corpusSeeds, `only ${total.replyPauses} pauses on a lease answer`);
    assert.ok(total.leasesLost > corpusSeeds, `only ${total.leasesLost} leases lost`);
    // Late writes of a previous holder happen even with correct clocks (reordering): fenced off.
    assert.ok(total.guardRejected > 0, "the guard never had to reject a stale write");
    // Reads at every member: the leader answers, followers refuse; every read history searched to a verdict.
    assert.ok(total.readsAnswered > corpusSeeds * 20, `only ${total.readsAnswered} reads answered`);
    assert.ok(total.readsRefused > corpusSeeds * 20, `only ${total.readsRefused} reads refused`);
    assert.ok(total.slowNodes > corpusSeeds / 2, `only ${total.slowNodes} nodes with the apply-lag fault`);
    assert.equal(total.readCheckUnknown, 0, "the read check ran out of search budget");
    // Members the churn adds are read too.
    assert.ok(
      total.churnReaders > 0 && total.churnReadsAnswered > corpusSeeds,
      `only ${total.churnReadsAnswered} reads of churned-in members`,
    );
    // Every leader commit is checked against the synced disks of a quorum.
    assert.ok(total.durableCommitChecks > corpusSeeds * 20, `only ${total.durableCommitChecks} commits checked durable`);
    // Crash points inside a Ready fire, before each common operation of the loop (snapshot writes
    // and compactions are rare: counted, not required; vopr_bugs.test.ts stops SimStorage there).
    assert.ok(total.crashesInReady > corpusSeeds / 4, `only ${total.crashesInReady} crashes inside a Ready`);
    for (const op of ["writeEntries", "writeHardState", "sync", "send"]) {
      assert.ok((crashedBefore[op] ?? 0) > 0, `no crash before ${op} (${JSON.stringify(crashedBefore)})`);
    }
  });

  it("answers a waiter queued on a member that catches up by InstallSnapshot, with no acquire deadline (seed 550)", async () => {
    // Without RaftNode telling its restore listeners (raft_node.ts restoreSnapshot), this seed's
    // waiter on the restored member was never answered: liveness (seed 328 before the commit was
    // sent lazily; 550 since, checked by hand; the seed moves whenever the runs change:
    // testing/sim/README.md).
    const r = await runLockSeed({ seed: 550, bug: null });
    assert.deepEqual(r.violations, []);
    assert.ok(r.stats.restoresToWaiters > 0, "no restore reached a queued waiter: the seed no longer tests the fix");
  });

  it("a blocking acquire given up while queued leaves no wait behind (seeds 1953 and 3967 with background writes)", async () => {
    // Found at 10,000 seeds: the application gave up an acquire (its lease in jeopardy) after the
    // wait had queued; the SDK checked only whether the lease held the lock, so the wait stayed and
    // was granted later to a lease whose owner did not know, and kept it alive: two clients each
    // held the lock the other waited for (liveness). The SDK now settles the wait under the same
    // seq (client-sdk/rpc.ts settleWait). The seeds move whenever the runs change.
    for (const seed of [1953, 3967]) {
      const r = await runLockSeed({ seed, bug: null, backgroundWrites: true });
      assert.deepEqual(r.violations, [], `seed ${seed} (npm run sim -- --lock --seed ${seed} --background-writes --verbose)`);
    }
  });

  it("apply lagging commit on every node: confirmed reads wait for the state machine, and stay linearizable", async () => {
    const failures: string[] = [];
    let lagged = 0;
    let answered = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = await runLockSeed({ seed, bug: null, applyLag: EVERY_NODE_LAGS });
      if (r.stats.applyLagMax >= 3) lagged++;
      answered += r.stats.readsAnswered;
      for (const v of r.violations)
        failures.push(`seed ${seed}: ${v.check}: ${v.detail} (npm run sim -- --lock --seed ${seed} --apply-lag 1,1,30 --verbose)`);
    }
    assert.deepEqual(failures, []);
    assert.ok(lagged >= 30, `applied lagged commit by 3 or more entries in only ${lagged} of 40 seeds`);
    assert.ok(answered > 40 * 20, `only ${answered} reads answered`);
  });

  it("negative control: with clock bounds broken, overlap is observed and the guard still rejects every stale write", async () => {
    let overlaps = 0;
    let seedsWithOverlap = 0;
    let staleRejected = 0;
    const failures: string[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const r = await runLockSeed({ seed, bug: null, breakDriftBound: true });
      overlaps += r.observations.overlaps;
      if (r.observations.overlaps > 0) seedsWithOverlap++;
      staleRejected += r.stats.guardRejected;
      // Overlap is expected here and reported as an observation; every check still holds,
      // guard-accepted-stale above all.
      for (const v of r.violations) failures.push(`seed ${seed}: ${v.check}: ${v.detail}`);
    }
    assert.deepEqual(failures, []);
    assert.ok(seedsWithOverlap >= 5, `overlap observed in only ${seedsWithOverlap} of 40 seeds (${overlaps} overlaps)`);
    assert.ok(staleRejected > 0, "no stale write reached the guard");
  });

  for (const c of LOCK_BUG_CASES) {
    const how = c.options?.compareStateHashes === false ? " (state hashes ignored)" : "";
    it(`catches ${c.bug}${how} with ${c.check} within ${c.limit} seeds`, async () => {
      const caught = await firstCaughtLockSeed(c);
      assert.ok(caught, `${c.bug} was not caught within ${c.limit} seeds`);
      assert.equal(caught.check, c.check, `${c.bug} first caught at seed ${caught.seed} by ${caught.check}`);
    });
  }
});
