// The bench CLI starts, measures one tiny figure on a real (compiled, TLS) Tenure cluster, prints
// its table and writes its JSON lines, and leaves no process behind. Tenure only (--no-etcd), so
// it needs no etcd on the machine; a couple of seconds of load, about 15 s in all.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const CLI = new URL("./cli.ts", import.meta.url).pathname;

test("npm run bench -- --only lock1 --reps 1 --seconds 2 --no-etcd: one table row, one JSON result line", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-smoke-"));
  try {
    const out = join(dir, "smoke.jsonl");
    const bench = run(
      process.execPath,
      ["--import", "tsx", CLI, "--only", "lock1", "--reps", "1", "--seconds", "2", "--warmup", "0.5", "--no-etcd", "--out", out],
      { timeout: 50_000 },
    );
    const benchPid = bench.child.pid;
    const { stdout } = await bench;
    const lines = readFileSync(out, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines[0]?.["kind"], "run");
    const results = lines.filter((l) => l["kind"] === "result");
    assert.equal(results.length, 1, `one result line, got ${JSON.stringify(results)}`);
    const r = results[0] ?? {};
    assert.equal(r["figure"], "lock1");
    assert.equal(r["column"], "tenure");
    assert.equal(r["errors"], 0);
    assert.ok(typeof r["ops"] === "number" && r["ops"] > 0, `cycles were counted: ${JSON.stringify(r)}`);
    assert.ok(typeof r["value"] === "number" && r["value"] > 0);
    const p50 = r["p50Ms"];
    const p99 = r["p99Ms"];
    assert.ok(typeof p50 === "number" && typeof p99 === "number" && p50 > 0 && p99 >= p50, `p50 ${p50} <= p99 ${p99}`);
    // The printed table carries the same figure, and the run says it measured Tenure with TLS.
    const row = stdout.split("\n").find((l) => l.startsWith("| lock cycle, 1 client |"));
    assert.ok(row, `table row in:\n${stdout}`);
    assert.match(stdout, /Tenure \(mutual TLS 1\.3\)/);
    const shown = Number(/\| ([\d.]+) cycles\/s/.exec(row)?.[1]);
    assert.ok(Math.abs(shown - Number(r["value"])) <= 0.5, `table shows ${shown}, JSON has ${r["value"]}`);
    // Nothing of the run is left running.
    const { stdout: ps } = await run("ps", ["-eo", "args"]);
    assert.ok(!ps.includes(`tenure-bench/build-${benchPid}/`), "no server process of the run is left");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
