// A client cut off from every voter (all three tenured processes stopped with SIGSTOP: the TCP
// connections stay open, so the keepalive stream is silent, not closed) must see its lease's and
// lock's signal abort no later than the client deadline, from its own monotonic clock alone.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TenureClient } from "../../../client-sdk/index.ts";
import { ProcessCluster, raftLeader } from "./helpers.ts";
import { until } from "../wait.ts";

const TTL_MS = 3000;
const GRACE_MS = 1000;
/** How late the abort may come after expiresAt: the lease's own timer on a loaded machine (the
 *  event loop of this test process also forwards the cluster's traffic). Measured: a few ms. */
const TIMER_SLACK_MS = 500;

describe("SDK cut off from every voter", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  let client: TenureClient;

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300 });
    await raftLeader(cluster);
    client = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: "cutoff", graceMs: GRACE_MS });
  });

  after(async () => {
    client?.close();
    await cluster?.stopAll();
  });

  it("signal aborts at expiresAt while every process is stopped; nothing depends on the stream closing", async (t) => {
    const lease = await client.grantLease({ ttlMs: TTL_MS });
    const lock = await client.lock("cut", { lease });
    const firstDeadline = lease.expiresAt;
    await until("a renewal to go through", 10_000, () => lease.expiresAt > firstDeadline);
    assert.equal(lease.signal.aborted, false);

    const abortedAt = new Promise<{ at: number; expiresAt: number }>((resolve) => {
      lock.signal.addEventListener("abort", () => resolve({ at: performance.now(), expiresAt: lease.expiresAt }), { once: true });
    });
    const pids = [...cluster.processes.values()].map((p) => p.pid).filter((p): p is number => p !== undefined);
    assert.equal(pids.length, 3);
    const stoppedAt = performance.now();
    try {
      for (const pid of pids) process.kill(pid, "SIGSTOP");
      const { at, expiresAt } = await abortedAt;
      t.diagnostic(`abort ${(at - expiresAt).toFixed(1)} ms from expiresAt, ${(at - stoppedAt).toFixed(0)} ms after SIGSTOP`);
      // From its own timer at the deadline: not early, and well before the grace runs out (the
      // tight figure, a few ms, is printed above).
      assert.ok(at >= expiresAt - 1, `aborted ${(expiresAt - at).toFixed(1)} ms before expiresAt`);
      assert.ok(at <= expiresAt + TIMER_SLACK_MS, `aborted ${(at - expiresAt).toFixed(1)} ms after expiresAt`);
      assert.ok(at - stoppedAt <= TTL_MS + TIMER_SLACK_MS, `aborted ${(at - stoppedAt).toFixed(0)} ms after the stop (ttl ${TTL_MS})`);
      assert.equal(lease.signal.aborted, true);
      assert.equal(lease.state, "jeopardy");
      const lost = await lease.lost; // grace without an answer
      assert.equal(lost.code, "LEASE_LOST");
      assert.equal(lease.state, "lost");
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGCONT");
        } catch {
          // already gone
        }
      }
    }
    // After the resume the cluster serves again; the lost lease's lock is handed on (expiry +
    // lock-delay), and a new lock gets a higher token.
    const next = await client.lock("cut", { ttlMs: 2000, timeoutMs: 10_000 }, { timeoutMs: 15_000 });
    assert.ok(next.token > lock.token);
    await next.release();
  });
});
