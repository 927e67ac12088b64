// One short chaos run against a deliberately broken cluster, for the teeth tests
// (teeth.test.ts, teeth_clock.test.ts): three voters, 6 holders on 3 locks, its own temp dir.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runChaos, type ChaosOptions } from "./run.ts";

export async function runBroken(
  o: Omit<ChaosOptions, "outDir" | "topology" | "clients" | "locks" | "log">,
): Promise<{ violations: string[]; log: string }> {
  const out = mkdtempSync(join(tmpdir(), "tenure-teeth-"));
  const lines: string[] = [];
  try {
    const r = await runChaos({ topology: "three", clients: 6, locks: 3, outDir: out, log: (l) => lines.push(l), ...o });
    return { violations: r.violations, log: lines.join("\n") };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
