// Failover through the SDK: keepalive carries a lease (and the lock it holds) across kill -9 of
// the Raft leader without its signal ever aborting; a retry storm of many clients acquiring during
// a leader kill never grants a lock twice (tokens unique, strictly increasing per name in grant
// order, no overlapping holders).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TenureClient, TenureError } from "../../../client-sdk/index.ts";
import { ProcessCluster, raftLeader, sleep } from "./helpers.ts";
import { until } from "../wait.ts";

/** Long enough that a failover on a loaded machine fits inside it with margin: the test proves
 *  the lease survives one, not how fast it is (lock_service.test.ts prints that figure). */
const TTL_MS = 6000;

describe("SDK across Raft leader failures", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  const clients: TenureClient[] = [];

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300 });
    await raftLeader(cluster);
  });

  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stopAll();
  });

  it("a lease and its lock survive kill -9 of the Raft leader: the signal never aborts, the token stays current", async () => {
    const client = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: "survivor" });
    clients.push(client);
    const lease = await client.grantLease({ ttlMs: TTL_MS });
    const lock = await client.lock("kept", { lease });
    const events: string[] = [];
    lease.on("jeopardy", () => events.push("jeopardy"));
    lease.on("lost", () => events.push("lost"));
    const leader = await raftLeader(cluster);
    await cluster.kill9(leader);
    try {
      // The deadline the lease had when the old leader died: only renewals through the new
      // leader can carry it past that point without a jeopardy.
      const deadlineAtKill = lease.expiresAt;
      await until(
        "the lease's deadline at the kill to pass",
        2 * TTL_MS,
        () => performance.now() > deadlineAtKill + 100 || events.length > 0,
      );
      assert.deepEqual(events, []);
      assert.ok(lease.expiresAt > deadlineAtKill, "never renewed after the kill");
      assert.equal(lease.signal.aborted, false);
      assert.equal(lock.signal.aborted, false);
      assert.equal(lease.state, "active");
      assert.ok(lock.validUntil > performance.now());
      assert.deepEqual(await client.validateToken("kept", lock.token), { current: true, currentToken: lock.token });
      assert.equal(await lock.release(), true);
      await lease.revoke();
    } finally {
      await cluster.startMember(leader, { bootstrap: false });
    }
  });

  it("a retry storm during a leader kill never grants a lock twice", async () => {
    const names = ["s0", "s1", "s2"];
    type Grant = { name: string; token: number; client: number; acquiredAt: number; releaseAt: number };
    const grants: Grant[] = [];
    const errors: string[] = [];
    let stop = false;
    const workers = Array.from({ length: 12 }, (_, i) => {
      const c = new TenureClient({
        endpoints: cluster.endpoints(),
        ...cluster.clientSecurity(),
        clientId: `storm-${i}`,
        attemptTimeoutMs: 1000,
      });
      clients.push(c);
      return (async () => {
        for (let n = 0; !stop; n++) {
          const name = names[(i + n) % names.length] ?? "s0";
          try {
            const lock = await c.lock(name, { ttlMs: 2000, timeoutMs: 4000 }, { timeoutMs: 8000 });
            const acquiredAt = performance.now();
            await sleep(5);
            const releaseAt = performance.now();
            grants.push({ name, token: lock.token, client: i, acquiredAt, releaseAt });
            await lock.release({ timeoutMs: 8000 }).catch((e: unknown) => errors.push(`release ${TenureError.from(e).code}`));
          } catch (e) {
            errors.push(TenureError.from(e).code);
          }
        }
      })();
    });
    let leader = "";
    try {
      await until("the storm to get grants", 30_000, () => grants.length >= 10);
      leader = await raftLeader(cluster);
      await cluster.kill9(leader);
      const atKill = grants.length;
      await until("the storm to get grants from the new leader", 30_000, () => grants.length >= atKill + 20);
    } finally {
      stop = true;
      await Promise.all(workers);
      if (leader !== "") await cluster.startMember(leader, { bootstrap: false });
    }

    assert.ok(grants.length > 20, `only ${grants.length} grants (errors: ${errors.join(",")})`);
    const tokens = grants.map((g) => g.token);
    assert.equal(new Set(tokens).size, tokens.length, "no two grants share a token");
    for (const name of names) {
      const g = grants.filter((x) => x.name === name).sort((a, b) => a.acquiredAt - b.acquiredAt);
      for (let k = 1; k < g.length; k++) {
        const prev = g[k - 1]!;
        const cur = g[k]!;
        assert.ok(cur.token > prev.token, `${name}: token ${cur.token} after ${prev.token}`);
        // The next holder was granted only after the previous one started releasing.
        assert.ok(cur.acquiredAt >= prev.releaseAt, `${name}: overlapping holders ${prev.token} and ${cur.token}`);
      }
    }
  });
});
