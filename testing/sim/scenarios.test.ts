// Runs every data-driven Raft script in testing/testdata/raft (etcd-io/raft's interaction_test.go).
// Each file gets a fresh InteractionEnv. REWRITE=1 regenerates the expected outputs; commit such
// a rewrite only after reading the diff and agreeing with every changed line.
//
// The safety checker's "SAFETY VIOLATION" lines (and PANIC lines: a core assertion fired) are
// allowed only in *_bug.txt scripts, which run the core with a deliberate bug switch and must
// show the damage; every other script must be clean.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { runDataDriven } from "./datadriven.ts";
import { InteractionEnv } from "./interaction_env.ts";

const dir = join(fileURLToPath(new URL(".", import.meta.url)), "..", "testdata", "raft");
const files = readdirSync(dir).filter((f) => f.endsWith(".txt")).sort();

describe("raft interaction scripts", () => {
  it("finds the scripts", () => assert.ok(files.length > 0, `no scripts in ${dir}`));
  for (const f of files) {
    it(f, () => {
      const path = join(dir, f);
      const env = new InteractionEnv();
      runDataDriven(path, (cmd) => env.handle(cmd));
      const text = readFileSync(path, "utf8");
      const violations = /^ *(SAFETY VIOLATION:|PANIC )/m.test(text); // output lines, not comments
      if (f.endsWith("_bug.txt")) assert.ok(violations, `${f} runs a bug switch but shows no SAFETY VIOLATION`);
      else assert.ok(!violations, `${f} shows a SAFETY VIOLATION or PANIC`);
    });
  }
});
