// Elections through the SDK on three real tenured processes: two campaigners; the elected one's
// lease is revoked and the other is elected with a higher token; observe() yields both in order,
// and keeps following the election across a kill -9 of the Raft leader.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TenureClient, type LeaderInfo } from "../../../client-sdk/index.ts";
import { ProcessCluster, raftLeader } from "./helpers.ts";
import { until } from "../wait.ts";

describe("SDK elections on three tenured processes", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  const clients: TenureClient[] = [];
  const client = (id: string): TenureClient => {
    const c = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: id });
    clients.push(c);
    return c;
  };

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300 });
    await raftLeader(cluster);
  });

  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stopAll();
  });

  it("the survivor is elected with a higher token after the leader's lease is revoked; observe yields both in order", async () => {
    const watcher = client("watcher");
    const seen: (LeaderInfo | null)[] = [];
    const stopObserving = new AbortController();
    const observing = (async () => {
      for await (const l of watcher.election("e").observe({ signal: stopObserving.signal })) seen.push(l);
    })();

    const a = client("camp-a");
    const b = client("camp-b");
    const leaseA = await a.grantLease({ ttlMs: 2000 });
    const first = await a.election("e").campaign("one", { lease: leaseA });
    assert.equal((await b.election("e").leader())?.value, "one");
    // Long enough to outlive the Raft failover below on a loaded machine with margin.
    const leaseB = await b.grantLease({ ttlMs: 6000 });
    const secondP = b.election("e").campaign("two", { lease: leaseB });
    const status = cluster.testClient();
    try {
      await until("b to queue behind a", 10_000, async () => {
        const r = await status.call<Record<string, unknown>>("Lease", "TimeToLive", { leaseId: String(leaseB.id) }, 1000);
        return r.ok && ((r.value["elections"] as string[] | undefined) ?? []).includes("e");
      });
    } finally {
      status.close();
    }
    await leaseA.revoke();
    assert.equal(first.signal.aborted, true, "revoking the lease aborts the leadership's signal at once");
    const second = await secondP;
    assert.ok(second.token > first.token, `${second.token} > ${first.token}`);
    assert.equal(second.signal.aborted, false);

    await until("the observer to see b lead", 10_000, () => seen.some((l) => l?.token === second.token));
    const leaders = seen.filter((l): l is LeaderInfo => l !== null);
    assert.deepEqual(
      leaders.map((l) => [l.token, l.value]),
      [
        [first.token, "one"],
        [second.token, "two"],
      ],
    );

    // Raft failover: observe reconnects to the new leader and still sees the next change.
    await cluster.kill9(await raftLeader(cluster));
    await second.proclaim("two-bis", { timeoutMs: 10_000 });
    await until("the observer to see the proclaimed value after the failover", 20_000, () => seen.some((l) => l?.value === "two-bis"));
    assert.ok(
      seen.some((l) => l?.value === "two-bis" && l.token === second.token),
      `seen ${JSON.stringify(seen)}`,
    );
    assert.equal(second.signal.aborted, false, "the leadership survived the Raft failover");

    assert.equal(await second.resign(), true);
    stopObserving.abort();
    await observing;
  });
});
