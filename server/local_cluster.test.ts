// `npm start`'s local cluster as a real child process on real SQLite files: it elects a leader
// and commits, a second run resumes the same log and term from disk, and a member whose data
// was wiped is refused rather than allowed back under its old id.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const script = new URL("./local_cluster.ts", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "tenure-local-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));

interface NodeStatus {
  id: string;
  role: string;
  term: number;
  commit: number;
}

function run(durationMs: number): { code: number | null; lines: Record<string, unknown>[]; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", script, "--data-dir", dataDir, "--duration-ms", String(durationMs)], {
    encoding: "utf8",
    timeout: 60_000,
  });
  const lines = r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code: r.status, lines, stderr: r.stderr };
}

function lastStatus(lines: Record<string, unknown>[]): NodeStatus[] {
  const statuses = lines.filter((l) => l["event"] === "status");
  const last = statuses[statuses.length - 1];
  assert.ok(last, "no status line printed");
  return last["nodes"] as NodeStatus[];
}

describe("npm start local cluster", () => {
  let firstCommit = 0;
  let firstTerm = 0;

  it("elects one leader and commits entries on all three voters", () => {
    const r = run(2500);
    assert.equal(r.code, 0, r.stderr);
    const nodes = lastStatus(r.lines);
    assert.equal(nodes.filter((n) => n.role === "leader").length, 1);
    firstCommit = Math.min(...nodes.map((n) => n.commit));
    firstTerm = Math.max(...nodes.map((n) => n.term));
    assert.ok(firstCommit >= 5, `commit only ${firstCommit}`);
  });

  it("resumes from disk: the log continues and the term never goes back", () => {
    const r = run(2000);
    assert.equal(r.code, 0, r.stderr);
    const nodes = lastStatus(r.lines);
    assert.ok(Math.min(...nodes.map((n) => n.commit)) > firstCommit);
    assert.ok(Math.min(...nodes.map((n) => n.term)) >= firstTerm);
  });

  it("refuses to start when one member's data directory was wiped", () => {
    rmSync(join(dataDir, "b"), { recursive: true, force: true });
    const r = run(1000);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /data for b is missing/);
  });
});
