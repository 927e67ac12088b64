// The chaos checks have teeth: the same harness, pointed at a server in a deliberately broken
// test mode (tenured --test-mode --test-bugs ..., never on by default) or with every server clock
// running beyond the rate bound, must report violations of the right kind. Each run is short and
// uses the faults that expose its bug.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runChaos, type ChaosOptions } from "./run.ts";

async function run(o: Omit<ChaosOptions, "outDir" | "topology" | "clients" | "locks" | "log">): Promise<{ violations: string[]; log: string }> {
  const out = mkdtempSync(join(tmpdir(), "tenure-teeth-"));
  const lines: string[] = [];
  try {
    const r = await runChaos({ topology: "three", clients: 6, locks: 3, outDir: out, log: (l) => lines.push(l), ...o });
    return { violations: r.violations, log: lines.join("\n") };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

describe("chaos checks catch broken servers", { timeout: 240_000 }, () => {
  it("stale-local-reads: a member answering reads from its own state is not linearizable", async () => {
    const r = await run({ seconds: 20, seed: 11, bugs: ["stale-local-reads"], faults: ["partition", "one-way", "pause", "delay"], readers: 4 });
    assert.ok(r.violations.some((v) => v.includes("not linearizable")), `no stale read caught:\n${r.log}`);
  });

  it("grant-without-lease-check: a grant on a revoked lease is reported", async () => {
    const r = await run({ seconds: 8, seed: 12, bugs: ["grant-without-lease-check"], faults: ["delay"] });
    assert.ok(r.violations.some((v) => v.includes("on a lease whose revoke was acknowledged")), `no dead-lease grant caught:\n${r.log}`);
  });

  it("server clocks twice as fast as rho allows: two holders believe at once (the guard still fences)", async () => {
    const r = await run({ seconds: 20, seed: 13, clockRateOutOfModel: 2, faults: ["client-pause"] });
    assert.ok(r.violations.some((v) => v.includes("still believed it held")), `no overlap caught:\n${r.log}`);
    assert.ok(!r.violations.some((v) => v.startsWith("guard ") || v.startsWith("resource:")), `the guard accepted a stale write:\n${r.log}`);
  });
});
