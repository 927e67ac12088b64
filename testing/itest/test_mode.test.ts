// Test mode on real tenured processes (issue 6): the test-only switches are refused without
// --test-mode, the correct read path is unchanged in test mode, each deliberate bug is visible
// from a client, and the test clock file + SIGUSR2 skews a member's wall clock.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { describe, it } from "node:test";
import { ProcessCluster } from "./process_cluster.ts";
import { serverArgs } from "./server_command.ts";
import type { CallResult, TestClient } from "./test_client.ts";

const HOUR_MS = 3_600_000;
/** A lease id no Lease.Grant ever handed out in these short runs. */
const MISSING_LEASE_ID = "424242";

type Obj = Record<string, unknown>;

function describeResult(r: CallResult<unknown>): string {
  return r.ok ? "ok" : `${grpc.status[r.code]} ${r.reason} ${r.details}`;
}

/** A follower that already knows the leader: without the bug it must redirect, not answer. */
async function followerAddress(cluster: ProcessCluster, c: TestClient): Promise<string> {
  const leader = await c.leaderId(10_000);
  const follower = cluster.members.find((m) => m.id !== leader);
  assert.ok(follower);
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const s = await c.callAt<Obj>(follower.clientAddress, "Cluster", "Status", {}, 1000);
    if (s.ok && s.value["leaderId"] === leader) return follower.clientAddress;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`follower ${follower.id} never learned the leader ${leader}`);
}

async function waitForLine(lines: readonly string[], pattern: RegExp, budgetMs = 5_000): Promise<string> {
  const deadline = Date.now() + budgetMs;
  while (Date.now() < deadline) {
    const line = lines.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`no log line matching ${pattern}: ${lines.slice(-5).join(" | ")}`);
}

function acquireWithMissingLease(c: TestClient): Promise<CallResult<Obj>> {
  return c.call<Obj>("Lock", "Acquire", { clientId: "ghost", seq: 1, name: "ghost-lock", leaseId: MISSING_LEASE_ID, wait: false });
}

describe("test mode (test-only switches) on tenured processes", { timeout: 120_000 }, () => {
  it("refuses a test-only option without --test-mode: exit code 2 and a message", async () => {
    const args = [
      ...serverArgs("tenured"),
      "--id",
      "a",
      "--cluster-id",
      "c",
      "--data-dir",
      "/nonexistent/never-created",
      "--peer-listen",
      "127.0.0.1:1",
      "--client-listen",
      "127.0.0.1:2",
      "--members",
      "a=127.0.0.1:1/127.0.0.1:2",
      "--test-bugs",
      "stale-local-reads",
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 2, stderr);
    assert.match(stderr, /--test-bugs requires --test-mode \(test-only option; never use it in production\)/);
  });

  it("test mode alone keeps the correct paths; the clock file + SIGUSR2 moves a member's wall clock", async () => {
    const cluster = await ProcessCluster.start({
      extraFlags: ["--test-mode"],
      perMemberFlags: (id, root) => {
        const file = join(root, `${id}.clock.json`);
        writeFileSync(file, JSON.stringify({ wallOffsetMs: 0, monotonicRate: 1 }));
        return ["--test-clock-file", file];
      },
    });
    const c = cluster.testClient();
    try {
      const logsA = cluster.logs.get("a") ?? [];
      await waitForLine(logsA, /"event":"test-mode".*"warning":"TEST MODE/);
      const follower = await followerAddress(cluster, c);
      const status = await c.callAt<Obj>(follower, "Lock", "Status", { name: "x" });
      assert.ok(!status.ok && status.code === grpc.status.UNAVAILABLE && status.reason === "NOT_LEADER", describeResult(status));
      const acquired = await acquireWithMissingLease(c);
      assert.ok(!acquired.ok && acquired.reason === "LEASE_NOT_FOUND", describeResult(acquired));

      writeFileSync(join(cluster.root, "a.clock.json"), JSON.stringify({ wallOffsetMs: HOUR_MS }));
      const pid = cluster.processes.get("a")?.pid;
      assert.ok(pid !== undefined);
      process.kill(pid, "SIGUSR2");
      // The line is stamped by the process's (now skewed) Date.now().
      const line = await waitForLine(logsA, /"event":"test-clock".*"wallOffsetMs":3600000/);
      const skewMs = Number((JSON.parse(line) as Obj)["timeMs"]) - Date.now();
      assert.ok(Math.abs(skewMs - HOUR_MS) < 30_000, `wall clock of a moved by ${skewMs} ms, expected about an hour`);
      // A skewed wall clock is outside what the cluster reads for decisions: it keeps serving.
      const grant = await c.call<Obj>("Lease", "Grant", { clientId: "after-skew", seq: 1, ttlMs: 5_000 });
      assert.ok(grant.ok, describeResult(grant));
    } finally {
      c.close();
      await cluster.stopAll();
    }
  });

  it("stale-local-reads answers on a follower; grant-without-lease-check grants on a missing lease", async () => {
    const cluster = await ProcessCluster.start({
      extraFlags: ["--test-mode", "--test-bugs", "stale-local-reads,grant-without-lease-check"],
    });
    const c = cluster.testClient();
    try {
      const follower = await followerAddress(cluster, c);
      const status = await c.callAt<Obj>(follower, "Lock", "Status", { name: "x" });
      assert.ok(status.ok, describeResult(status));
      const acquired = await acquireWithMissingLease(c);
      assert.ok(acquired.ok, describeResult(acquired));
    } finally {
      c.close();
      await cluster.stopAll();
    }
  });
});
