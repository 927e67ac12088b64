// The chaos harness on real processes for ~25 s with a fixed seed, two voters + a witness: zero
// violations, faults of several kinds including a membership change, enough grants. (The
// three-voter run is chaos.test.ts.)

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runChaos } from "./run.ts";

describe("chaos run on real processes, witness topology", { timeout: 180_000 }, () => {
  it("two voters + a witness survive the same nemesis with zero violations", async () => {
    const out = mkdtempSync(join(tmpdir(), "tenure-chaos-w-"));
    const lines: string[] = [];
    try {
      const r = await runChaos({ seconds: 25, seed: 8, topology: "witness", clients: 6, locks: 3, outDir: out, log: (l) => lines.push(l) });
      assert.deepEqual(r.violations, [], lines.join("\n"));
      const injected = Object.values(r.faults).reduce((a, b) => a + b, 0);
      assert.ok(injected >= 8, `only ${injected} faults:\n${lines.join("\n")}`);
      assert.ok(r.faults.membership >= 1, `no membership change:\n${lines.join("\n")}`);
      assert.ok((r.byType["acquire:ok"] ?? 0) >= 10, `too few grants:\n${lines.join("\n")}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
