// Locks through the SDK on three real tenured processes: lock + release, `await using`, withLock,
// try-lock (LOCK_HELD), FIFO waiters with strictly increasing tokens, watchLock across a failover,
// and one client holding more leases than one client_id may.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TenureClient, TenureError, type Lock } from "../../../client-sdk/index.ts";
import { ProcessCluster, raftLeader, sleep } from "./helpers.ts";

describe("SDK locks on three tenured processes", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  let client: TenureClient;

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300 });
    await raftLeader(cluster);
    client = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: "itest-lock" });
  });

  after(async () => {
    client?.close();
    await cluster?.stopAll();
  });

  it("lock, then release: the token is fenced, release is idempotent and frees the lock", async () => {
    const lock = await client.lock("a", { ttlMs: 3000 });
    assert.ok(lock.token > 0);
    assert.equal(lock.signal.aborted, false);
    assert.ok(lock.validUntil > performance.now());
    assert.deepEqual(await client.validateToken("a", lock.token), { current: true, currentToken: lock.token });
    assert.equal(await lock.release(), true);
    assert.equal(await lock.release(), true, "a second release answers the first one's result");
    assert.equal(lock.signal.aborted, true, "a released lock's signal is aborted");
    assert.equal((await client.lockStatus("a")).state, "free");
    assert.equal(lock.lease.state, "revoked", "the SDK-granted lease went with the lock");
  });

  it("`await using` releases at the end of the block", async () => {
    let token = 0;
    {
      await using lock = await client.lock("b");
      token = lock.token;
      assert.equal((await client.lockStatus("b")).token, token);
    }
    assert.equal((await client.lockStatus("b")).state, "free");
  });

  it("withLock runs fn with the token and signal and releases afterwards, also when fn throws", async () => {
    const r = await client.withLock("c", ({ token, signal }) => {
      assert.equal(signal.aborted, false);
      return token;
    });
    assert.ok(r > 0);
    assert.equal((await client.lockStatus("c")).state, "free");
    await assert.rejects(
      client.withLock("c", () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal((await client.lockStatus("c")).state, "free");
  });

  it("try-lock on a held lock fails with LOCK_HELD and the holder's token", async () => {
    const lease = await client.grantLease({ ttlMs: 3000 });
    const held = await client.lock("d", { lease });
    const e = await client.lock("d", { wait: false }).then(
      () => assert.fail("granted twice"),
      (err: unknown) => err as TenureError,
    );
    assert.equal(e.code, "LOCK_HELD");
    assert.equal(e.currentToken, held.token);
    // Same lease again: the grant comes back with the same token.
    const again = await client.lock("d", { lease });
    assert.equal(again.token, held.token);
    await held.release();
    await lease.revoke();
  });

  it("waiters are served FIFO with strictly increasing tokens", async () => {
    const holder = await client.lock("fifo");
    const order: number[] = [];
    const waits: Promise<Lock>[] = [];
    for (let i = 0; i < 4; i++) {
      waits.push(
        client.lock("fifo").then(async (l) => {
          order.push(i);
          await sleep(20);
          await l.release();
          return l;
        }),
      );
      // Let each wait reach the queue before the next one (the FIFO order is the order queued).
      while ((await client.lockStatus("fifo")).waiterLeaseIds.length < i + 1) await sleep(10);
    }
    await holder.release();
    const locks = await Promise.all(waits);
    assert.deepEqual(order, [0, 1, 2, 3]);
    const tokens = [holder.token, ...locks.map((l) => l.token)];
    for (let i = 1; i < tokens.length; i++) assert.ok((tokens[i] ?? 0) > (tokens[i - 1] ?? 0), `tokens ${tokens.join(",")}`);
  });

  it("a waiting lock with a timeout ends with DEADLINE_EXCEEDED and nothing granted", async () => {
    const holder = await client.lock("t");
    const t = performance.now();
    await assert.rejects(client.lock("t", { timeoutMs: 300 }), (e: unknown) => e instanceof TenureError && e.code === "DEADLINE_EXCEEDED");
    assert.ok(performance.now() - t < 2500);
    assert.equal((await client.lockStatus("t")).waiterLeaseIds.length, 0);
    await holder.release();
  });

  // Last: it kills the leader.
  it("watchLock: the status now, each grant and release, and it follows a kill -9 of the leader", async () => {
    const stop = new AbortController();
    const seen: { state: string; token: number }[] = [];
    const watching = (async () => {
      for await (const s of client.watchLock("wl", { signal: stop.signal })) seen.push({ state: s.state, token: s.token });
    })();
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!ok()) {
        if (Date.now() > deadline) assert.fail(`${what}; saw ${JSON.stringify(seen)}`);
        await sleep(20);
      }
    };
    await until("the current status", () => seen.length === 1);
    assert.deepEqual(seen[0], { state: "free", token: 0 });
    const first = await client.lock("wl", { ttlMs: 3000 });
    await until("the grant", () => seen.some((s) => s.state === "held" && s.token === first.token));
    await first.release();
    await until("the release", () => seen.at(-1)?.state === "free");

    await cluster.kill9(await raftLeader(cluster));
    const second = await client.lock("wl", { ttlMs: 3000 }, { timeoutMs: 20_000 });
    await until("the grant at the new leader", () => seen.some((s) => s.state === "held" && s.token === second.token));
    assert.ok(second.token > first.token);
    await second.release();
    await until("the release at the new leader", () => seen.at(-1)?.state === "free" && seen.length >= 5);
    stop.abort();
    await watching;
    const tokens = seen.filter((s) => s.state === "held").map((s) => s.token);
    assert.deepEqual(tokens, [first.token, second.token], "each grant seen once, in order");
  });

  it("one client holds more leases than the server allows per client_id, and keeps them all alive", { timeout: 45_000 }, async () => {
    // leasesPerClientMax is 1,000: the 1,001st grant is refused on the first session and made on another.
    const holder = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: "itest-many" });
    try {
      const leases = [];
      for (let i = 0; i < 1_050; i++) leases.push(await holder.grantLease({ ttlMs: 3_000 }));
      assert.equal(new Set(leases.map((l) => l.id)).size, 1_050);
      await sleep(3_500); // past the TTL: only renewals keep them
      assert.deepEqual(
        leases.filter((l) => l.state !== "active").map((l) => `${l.id} ${l.state}`),
        [],
        "every lease renewed on the client's one KeepAlive stream",
      );
    } finally {
      holder.close();
    }
  });
});
