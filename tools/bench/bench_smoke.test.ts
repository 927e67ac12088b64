// The bench CLI starts, measures one tiny figure on a real (compiled, TLS) Tenure cluster and on
// the floor servers (--floor: the same protos and TLS, answering at once; and the quorum floor,
// a leader and two followers that only fsync and acknowledge), prints its table and
// writes its JSON lines, and leaves no process behind. Tenure only (--no-etcd), so it needs no
// etcd on the machine; a few seconds of load, about 20 s in all.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const CLI = new URL("./cli.ts", import.meta.url).pathname;

test("npm run bench -- --only lock1 --reps 1 --seconds 2 --no-etcd --floor: one table row, a JSON result line per column", {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-smoke-"));
  try {
    const out = join(dir, "smoke.jsonl");
    const bench = run(
      process.execPath,
      [
        ...["--import", "tsx", CLI, "--only", "lock1", "--reps", "1", "--seconds", "2", "--warmup", "0.5", "--cluster-warmup", "1"],
        ...["--no-etcd", "--floor", "--out", out],
      ],
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
    assert.deepEqual(
      results.map((l) => `${l["figure"]} ${l["column"]}`).sort(),
      ["lock1 floor", "lock1 quorum-floor", "lock1 tenure"],
      JSON.stringify(results),
    );
    const floor = results.find((l) => l["column"] === "floor") ?? {};
    assert.equal(floor["errors"], 0);
    assert.ok(typeof floor["ops"] === "number" && floor["ops"] > 0, `the floor server answered: ${JSON.stringify(floor)}`);
    const quorum = results.find((l) => l["column"] === "quorum-floor") ?? {};
    assert.equal(quorum["errors"], 0);
    assert.ok(typeof quorum["ops"] === "number" && quorum["ops"] > 0, `the quorum floor answered: ${JSON.stringify(quorum)}`);
    const r = results.find((l) => l["column"] === "tenure") ?? {};
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
    assert.match(stdout, /floor: no-op server \(mutual TLS 1\.3\)/);
    assert.match(stdout, /quorum floor: fsync \+ one follower \(mutual TLS 1\.3\)/);
    const shown = Number(/\| ([\d.]+) cycles\/s/.exec(row)?.[1]);
    assert.ok(Math.abs(shown - Number(r["value"])) <= 0.5, `table shows ${shown}, JSON has ${r["value"]}`);
    // Nothing of the run is left running.
    const { stdout: ps } = await run("ps", ["-eo", "args"]);
    assert.ok(!ps.includes(`tenure-bench/build-${benchPid}/`), "no server process of the run is left");
    assert.ok(!ps.includes("floor_server.ts --listen"), "no floor server is left");
    assert.ok(!ps.includes("quorum_floor_server.ts --role"), "no quorum floor process is left");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
