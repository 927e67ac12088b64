// A client cut off from every voter (all three tenured processes stopped with SIGSTOP: the TCP
// connections stay open, so the keepalive stream is silent, not closed) must see its lease's and
// lock's signal abort no later than the client deadline, from its own monotonic clock alone.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TenureClient } from "../../../client-sdk/index.ts";
import { ProcessCluster, raftLeader, sleep } from "./helpers.ts";

describe("SDK cut off from every voter", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  let client: TenureClient;

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300 });
    await raftLeader(cluster);
    client = new TenureClient({ endpoints: cluster.endpoints(), clientId: "cutoff", graceMs: 1000 });
  });

  after(async () => {
    client?.close();
    await cluster?.stopAll();
  });

  it("signal aborts by expiresAt (+50 ms) while every process is stopped; nothing depends on the stream closing", async (t) => {
    const lease = await client.grantLease({ ttlMs: 1500 });
    const lock = await client.lock("cut", { lease });
    await sleep(700); // at least one renewal went through
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
      assert.ok(at <= expiresAt + 50, `aborted ${(at - expiresAt).toFixed(1)} ms after expiresAt`);
      assert.ok(at - stoppedAt <= 1500, `aborted ${(at - stoppedAt).toFixed(0)} ms after the stop (ttl 1500)`);
      assert.equal(lease.signal.aborted, true);
      assert.equal(lease.state, "jeopardy");
      const lost = await lease.lost; // grace of 1000 ms without an answer
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
