// The batch runner of the small unit files (unit_batch.ts): every file's tests run and count, each
// under its file's name; a failure in one file fails the batch and names the file; a file that
// leaks a handle does not hang the batch, and the files after it still run.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const entry = fileURLToPath(new URL("./unit_batch.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tenure-unit-batch-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `import { describe, it } from "node:test";\n${body}\n`);
  return path;
}

function runBatch(files: readonly string[]): { status: number | null; output: string } {
  // Without this test's own runner context: under it the child would report in the runner's
  // binary protocol instead of the spec text a batch prints.
  // Nor the runner's test bundle: this test runs the .ts entry through tsx.
  const { NODE_TEST_CONTEXT: _, TEST_BUNDLE_DIR: _bundle, ...env } = process.env;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test-reporter=spec", "--test-force-exit", entry, ...files], {
    encoding: "utf8",
    env,
    timeout: 60_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("unit_batch", () => {
  it("runs every test of every file, each file as a suite of its own name", () => {
    // The second file's tests register after the first file's have run: they must still run.
    const first = file("first.test.mjs", 'describe("first suite", () => { it("one", () => {}); it("two", () => {}); });');
    const second = file("second.test.mjs", 'it("three", async () => { await new Promise((r) => setTimeout(r, 20)); });');
    const { status, output } = runBatch([first, second]);
    assert.equal(status, 0, output);
    assert.match(output, /ℹ tests 3\n/);
    assert.match(output, /ℹ pass 3\n/);
    assert.match(output, new RegExp(`^✔ ${first.replaceAll(".", "\\.")} \\(`, "m"));
    assert.match(output, new RegExp(`^✔ ${second.replaceAll(".", "\\.")} \\(`, "m"));
  });

  it("fails the batch when one file fails, names the file and still runs the files after it", () => {
    const failing = file("failing.test.mjs", 'it("breaks", () => { throw new Error("the failure under test"); });');
    // A leaked interval: without --test-force-exit the batch would never end.
    const leaking = file("leaking.test.mjs", 'setInterval(() => {}, 1000);\nit("leaks a handle", () => {});');
    const last = file("last.test.mjs", 'it("runs last", () => {});');
    const { status, output } = runBatch([failing, leaking, last]);
    assert.equal(status, 1, output);
    assert.match(output, new RegExp(`^✖ ${failing.replaceAll(".", "\\.")} \\(`, "m"));
    assert.match(output, /the failure under test/);
    assert.match(output, /✔ runs last/);
    assert.match(output, /ℹ pass 2\n/);
    assert.match(output, /ℹ fail 1\n/);
  });

  it("refuses to run without files", () => {
    const { status, output } = runBatch([]);
    assert.equal(status, 2);
    assert.match(output, /usage:/);
  });
});
