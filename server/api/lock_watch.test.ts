// Lock.Watch over gRPC: the status now, then one status per change of state or holder (granted,
// freed, delayed), lease ids shown only to their owner, a slow reader dropped.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TestApi, assertError, nextMessage, streamEnd, until } from "../../testing/kits/api_test_kit.ts";

type Obj = Record<string, unknown>;
const statusOf = (m: Obj): Obj => m["status"] as Obj;

describe("Lock.Watch over gRPC", () => {
  let api: TestApi;
  before(async () => {
    api = await TestApi.start();
  });
  after(async () => {
    await api.close();
  });

  it("sends the current status, then a status per grant and release, with the applied index", async () => {
    const leaseA = String((await api.ok("Lease", "Grant", { clientId: "wa", seq: 1, ttlMs: 60_000 }))["leaseId"]);
    const leaseB = String((await api.ok("Lease", "Grant", { clientId: "wb", seq: 1, ttlMs: 60_000 }))["leaseId"]);
    const watch = api.serverStream("Lock", "Watch", { name: "w" });
    const first = await nextMessage(watch);
    assert.equal(statusOf(first)["state"], "MUTEX_STATE_FREE");
    const firstIndex = Number(first["appliedIndex"]);

    const granted = nextMessage(watch);
    const a = await api.ok("Lock", "Acquire", { clientId: "wa", seq: 2, name: "w", leaseId: leaseA, wait: false });
    const held = await granted;
    assert.equal(statusOf(held)["state"], "MUTEX_STATE_HELD");
    assert.equal((statusOf(held)["holder"] as Obj)["token"], a["token"]);
    assert.ok(Number(held["appliedIndex"]) > firstIndex);

    // B queues (no message: the holder did not change), then A releases: B is granted at once.
    const blocked = api.unary("Lock", "Acquire", { clientId: "wb", seq: 2, name: "w", leaseId: leaseB, wait: true, timeoutMs: 5_000 });
    await until(async () => api.node.machine.lockStatus("w").waiters.length === 1, "B queued");
    const handedOver = nextMessage(watch);
    await api.ok("Lock", "Release", { clientId: "wa", seq: 3, name: "w", token: a["token"] });
    const next = statusOf(await handedOver);
    assert.equal(next["state"], "MUTEX_STATE_HELD");
    const b = await blocked;
    assert.ok(b.ok);
    assert.equal((next["holder"] as Obj)["token"], b.response["token"]);
    assert.ok(BigInt(String(b.response["token"])) > BigInt(String(a["token"])));

    const freed = nextMessage(watch);
    await api.ok("Lock", "Release", { clientId: "wb", seq: 4, name: "w", token: b.response["token"] });
    assert.equal(statusOf(await freed)["state"], "MUTEX_STATE_FREE");
    watch.on("error", () => {}); // CANCELLED, by us
    watch.cancel();
    await until(async () => api.node.listenerCount() === 0, "watch unsubscribed");
  });

  it("ends NOT_LEADER, with the hint, once this member no longer leads (Observe too)", async () => {
    const watch = api.serverStream("Lock", "Watch", { name: "moved" });
    const observe = api.serverStream("Election", "Observe", { name: "moved" });
    await nextMessage(watch);
    await nextMessage(observe);
    const ends = [streamEnd(watch), streamEnd(observe)];
    api.node.mode = { kind: "notLeader", hint: { leaderId: "b", leaderAddress: "127.0.0.1:7002" } };
    try {
      for (const end of ends) {
        const e = assertError(await end, grpc.status.UNAVAILABLE, "NOT_LEADER");
        assert.match(e.details, /the leader is b at 127\.0\.0\.1:7002/);
      }
      await until(async () => api.node.listenerCount() === 0, "both unsubscribed");
    } finally {
      api.node.mode = { kind: "leader" };
    }
  });

  it("at most appliedStreamsMax watch and observe streams at once: the next is LIMIT_EXCEEDED, the open ones go on", async () => {
    const capped = await TestApi.start({ appliedStreamsMax: 2 });
    try {
      const a = capped.serverStream("Lock", "Watch", { name: "x" });
      const b = capped.serverStream("Election", "Observe", { name: "x" });
      await nextMessage(a);
      await nextMessage(b);
      assertError(await streamEnd(capped.serverStream("Lock", "Watch", { name: "y" })), grpc.status.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED");
      const leaseId = String((await capped.ok("Lease", "Grant", { clientId: "c", seq: 1, ttlMs: 60_000 }))["leaseId"]);
      const next = nextMessage(a);
      await capped.ok("Lock", "Acquire", { clientId: "c", seq: 2, name: "x", leaseId, wait: false });
      assert.equal(statusOf(await next)["state"], "MUTEX_STATE_HELD", "the open watch goes on");
      a.on("error", () => {});
      a.cancel();
      await until(async () => capped.node.listenerCount() === 1, "a's slot freed");
      const c = capped.serverStream("Lock", "Watch", { name: "x" });
      assert.equal(statusOf(await nextMessage(c))["state"], "MUTEX_STATE_HELD", "a freed slot is taken again");
      for (const s of [b, c]) {
        s.on("error", () => {});
        s.cancel();
      }
    } finally {
      await capped.close();
    }
  });

  it("a bad name is INVALID_ARGUMENT; a slow reader is dropped with SLOW_CONSUMER", async () => {
    assertError(await streamEnd(api.serverStream("Lock", "Watch", { name: "" })), grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
    const small = await TestApi.start({ observeBufferMax: 1 });
    try {
      const leaseId = String((await small.ok("Lease", "Grant", { clientId: "s", seq: 1, ttlMs: 60_000 }))["leaseId"]);
      const watch = small.serverStream("Lock", "Watch", { name: "hot" });
      await nextMessage(watch);
      const ended = streamEnd(watch);
      // A grant and a release in one tick: the second status finds the first not yet flushed.
      const grant = await small.node.submit({
        kind: "LockAcquire",
        clientId: "s",
        seq: 2,
        name: "hot",
        leaseId: Number(leaseId),
        wait: false,
      });
      assert.equal(grant.kind, "applied");
      const token = grant.kind === "applied" ? Number((grant.result as { token?: number }).token ?? 0) : 0;
      await small.node.submit({ kind: "LockRelease", clientId: "s", seq: 3, name: "hot", token });
      assertError(await ended, grpc.status.RESOURCE_EXHAUSTED, "SLOW_CONSUMER");
      await until(async () => small.node.listenerCount() === 0, "watch unsubscribed");
    } finally {
      await small.close();
    }
  });
});
