import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TestApi, assertError, nextMessage, streamEnd, until } from "../../testing/kits/api_test_kit.ts";

describe("Election service over gRPC", () => {
  let api: TestApi;
  before(async () => {
    api = await TestApi.start();
  });
  after(async () => {
    await api.close();
  });

  async function lease(clientId: string): Promise<string> {
    return String((await api.ok("Lease", "Grant", { clientId, seq: 1, ttlMs: 60_000 }))["leaseId"]);
  }

  it("Campaign, Leader, Observe (current then changes), Proclaim, Resign", async () => {
    const leaseA = await lease("ea");
    const leaseB = await lease("eb");
    const won = await api.ok("Election", "Campaign", { clientId: "ea", seq: 2, name: "svc", leaseId: leaseA, value: "a:1" });
    const leaderA = won["leader"] as Record<string, string>;
    assert.equal(leaderA["value"], "a:1");
    assert.equal(leaderA["leaseId"], leaseA);
    const read = await api.ok("Election", "Leader", { name: "svc" });
    assert.equal(read["hasLeader"], true);
    assert.deepEqual(read["leader"], leaderA);

    const observe = api.serverStream("Election", "Observe", { name: "svc" });
    const current = await nextMessage(observe);
    assert.deepEqual(current["leader"], leaderA);

    const campaignB = api.unary("Election", "Campaign", {
      clientId: "eb",
      seq: 2,
      name: "svc",
      leaseId: leaseB,
      value: "b:1",
      timeoutMs: 5_000,
    });
    const proclaimed = nextMessage(observe);
    await api.ok("Election", "Proclaim", { clientId: "ea", seq: 3, name: "svc", token: leaderA["token"], value: "a:2" });
    assert.deepEqual((await proclaimed)["leader"], { ...leaderA, value: "a:2" });

    const changed = nextMessage(observe);
    await until(async () => api.node.machine.electionStatus("svc").waiters.length === 1, "B queued");
    assert.deepEqual(await api.ok("Election", "Resign", { clientId: "ea", seq: 4, name: "svc", token: leaderA["token"] }), {
      resigned: true,
    });
    const next = (await changed)["leader"] as Record<string, string>;
    assert.equal(next["leaseId"], leaseB);
    assert.equal(next["value"], "b:1");
    assert.ok(BigInt(next["token"]!) > BigInt(leaderA["token"]!));
    const b = await campaignB;
    assert.ok(b.ok);
    assert.equal((b.response["leader"] as Record<string, string>)["token"], next["token"]);

    const stale = assertError(
      await api.unary("Election", "Proclaim", { clientId: "ea", seq: 5, name: "svc", token: leaderA["token"], value: "x" }),
      grpc.status.FAILED_PRECONDITION,
      "NOT_HOLDER",
    );
    assert.equal(String(stale.detail?.currentToken), next["token"]);

    const ended = streamEnd(observe);
    observe.cancel();
    const end = await ended;
    assert.ok(!end.ok && end.code === grpc.status.CANCELLED);
    await until(async () => api.node.listenerCount() === 0, "observe unsubscribed");
  });

  it("a campaign that times out is withdrawn", async () => {
    const leaseA = await lease("ta");
    const leaseB = await lease("tb");
    await api.ok("Election", "Campaign", { clientId: "ta", seq: 2, name: "t", leaseId: leaseA, value: "" });
    const reply = await api.unary("Election", "Campaign", {
      clientId: "tb",
      seq: 2,
      name: "t",
      leaseId: leaseB,
      value: "",
      timeoutMs: 100,
    });
    assertError(reply, grpc.status.DEADLINE_EXCEEDED, "TIMEOUT");
    assert.equal(api.node.machine.electionStatus("t").waiters.length, 0);
    const empty = await api.ok("Election", "Leader", { name: "nobody" });
    assert.equal(empty["hasLeader"], false);
  });

  it("Observe drops a reader that falls more than observeBufferMax updates behind", async () => {
    const small = await TestApi.start({ observeBufferMax: 1 });
    try {
      const leaseId = Number((await small.ok("Lease", "Grant", { clientId: "s", seq: 1, ttlMs: 60_000 }))["leaseId"]);
      const won = await small.ok("Election", "Campaign", { clientId: "s", seq: 2, name: "hot", leaseId, value: "0" });
      const token = Number((won["leader"] as Record<string, string>)["token"]);
      const observe = small.serverStream("Election", "Observe", { name: "hot" });
      await nextMessage(observe);
      const ended = streamEnd(observe);
      // Two updates in one tick: the second finds the first not yet flushed to the transport.
      const proclaim = (seq: number) =>
        small.node.submit({ kind: "ElectionProclaim", clientId: "s", seq, name: "hot", token, value: String(seq) });
      await Promise.all([proclaim(3), proclaim(4)]);
      assertError(await ended, grpc.status.RESOURCE_EXHAUSTED, "SLOW_CONSUMER");
      await until(async () => small.node.listenerCount() === 0, "observe unsubscribed");
      await small.ok("Election", "Leader", { name: "hot" });
    } finally {
      await small.close();
    }
  });
});
