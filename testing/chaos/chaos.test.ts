// The chaos harness on real processes for ~25 s with a fixed seed (three voters): zero violations
// and at least one fault of each kind. Plus the checks themselves catching hand-made bad
// histories. The witness topology's run is chaos_witness.test.ts (a file of its own so the two
// runs can go side by side in npm run test:system).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  checkExactlyOnce,
  checkFinal,
  checkGuardAudit,
  checkMutualExclusion,
  checkRealTimeOrder,
  checkRevokedLeaseGrants,
  checkUniqueTokens,
} from "./check.ts";
import { runChaos } from "./run.ts";
import type { Op } from "./workload.ts";

const acq = (client: number, name: string, inv: number, cmp: number, token: number): Op => ({
  type: "acquire",
  client,
  name,
  inv,
  cmp,
  outcome: "ok",
  token,
});

describe("chaos checks catch bad histories", () => {
  it("flags a stale accepted write, a duplicate token, a real-time inversion and a lost grant", () => {
    assert.equal(checkGuardAudit("x", [1n, 3n, 2n]).length, 1);
    assert.equal(checkGuardAudit("x", [1n, 3n, 3n, 5n]).length, 0);
    assert.equal(checkUniqueTokens([acq(0, "x", 0, 1, 4), acq(1, "y", 2, 3, 4)]).length, 1);
    assert.equal(checkRealTimeOrder([acq(0, "x", 0, 1, 5), acq(1, "x", 2, 3, 4)]).length, 1);
    assert.equal(checkRealTimeOrder([acq(0, "x", 0, 3, 5), acq(1, "x", 2, 4, 4)]).length, 0, "overlapping acquires are unordered");
    const final = { name: "x", state: "MUTEX_STATE_HELD", token: 4, probeToken: 9, probeHeldToken: 9, probeWriteAccepted: true };
    assert.equal(checkFinal([acq(0, "x", 0, 1, 4), acq(1, "x", 2, 3, 6)], [final], () => null).length, 1);
    assert.equal(checkFinal([acq(0, "x", 0, 1, 4)], [{ ...final, probeToken: null, probeError: "NO_LEADER" }], () => null).length, 1);
  });
});

const held = (client: number, token: number, heldFrom: number, heldUntil: number): Op => ({
  type: "release",
  client,
  name: "x",
  inv: heldUntil,
  cmp: heldUntil + 1,
  outcome: "ok",
  token,
  heldFrom,
  heldUntil,
});

describe("mutual exclusion and revoked-lease checks", () => {
  it("flag overlapping holders, also behind a long earlier hold, and stay quiet on hand-offs", () => {
    assert.deepEqual(checkMutualExclusion([held(0, 1, 0, 10), held(1, 2, 10, 20), held(0, 3, 20, 30)]), []);
    assert.equal(checkMutualExclusion([held(0, 1, 0, 10), held(1, 2, 9, 20)]).length, 1);
    // The overlap is with a hold that began long before (the sweep keeps the furthest reach).
    assert.equal(checkMutualExclusion([held(0, 1, 0, 100), held(1, 2, 10, 20), held(2, 3, 50, 60)]).length, 2);
    // Different locks never conflict.
    assert.deepEqual(checkMutualExclusion([held(0, 1, 0, 10), { ...held(1, 2, 5, 20), name: "y" }]), []);
  });

  it("exactly-once: flags tokens taken by grants nobody was told of beyond the unknown outcomes", () => {
    assert.deepEqual(checkExactlyOnce([5, 6, 8, 9], 1), [], "one gap, one ambiguous acquire");
    assert.equal(checkExactlyOnce([5, 6, 8, 10], 1).length, 1, "two gaps, one ambiguous acquire");
    assert.deepEqual(checkExactlyOnce([5, 6, 6, 7], 0), [], "a replayed answer (same token twice) is no gap");
  });

  it("flags any grant on a revoked lease", () => {
    const probe = (outcome: "ok" | "fail"): Op => ({
      type: "lease-acquire",
      client: 9,
      name: "x-revoked-lease",
      inv: 0,
      cmp: 1,
      outcome,
      token: 5,
    });
    assert.equal(checkRevokedLeaseGrants([probe("fail"), probe("ok")]).length, 1);
    assert.deepEqual(checkRevokedLeaseGrants([probe("fail")]), []);
  });
});

describe("chaos run on real processes", { timeout: 180_000 }, () => {
  it("survives kill -9, SIGSTOP and partitions with zero violations", async () => {
    const out = mkdtempSync(join(tmpdir(), "tenure-chaos-"));
    const lines: string[] = [];
    try {
      const r = await runChaos({ seconds: 25, seed: 7, topology: "three", clients: 6, locks: 3, outDir: out, log: (l) => lines.push(l) });
      assert.deepEqual(r.violations, [], lines.join("\n"));
      for (const k of ["kill", "pause", "partition"] as const) assert.ok(r.faults[k] >= 1, `no ${k} fault injected:\n${lines.join("\n")}`);
      assert.ok((r.byType["acquire:ok"] ?? 0) >= 10, `too few grants:\n${lines.join("\n")}`);
      assert.ok((r.byType["write:ok"] ?? 0) >= 10, `too few guarded writes:\n${lines.join("\n")}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
