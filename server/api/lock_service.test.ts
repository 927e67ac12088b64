import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TestApi, assertError, until, type Message } from "../../testing/kits/api_test_kit.ts";

describe("Lock service over gRPC", () => {
  let api: TestApi;
  let nextClient = 0;
  before(async () => {
    api = await TestApi.start();
  });
  after(async () => {
    await api.close();
  });

  /** A fresh client id and a lease; seq 1 is used. */
  async function lease(): Promise<{ clientId: string; leaseId: string }> {
    const clientId = `client-${nextClient++}`;
    const grant = await api.ok("Lease", "Grant", { clientId, seq: 1, ttlMs: 60_000 });
    return { clientId, leaseId: String(grant["leaseId"]) };
  }

  async function status(name: string): Promise<Message> {
    return api.ok("Lock", "Status", { name });
  }

  it("acquires, validates and releases by token", async () => {
    const a = await lease();
    const got = await api.ok("Lock", "Acquire", { ...a, seq: 2, name: "db", wait: false });
    const token = String(got["token"]);
    assert.ok(Number(token) > 0);
    assert.equal((got["validUntil"] as Message)["ttlMs"], "60000");
    const held = await status("db");
    assert.equal(held["state"], "MUTEX_STATE_HELD");
    assert.equal((held["holder"] as Message)["token"], token);
    const check = await api.ok("Lock", "ValidateToken", { name: "db", token });
    assert.deepEqual(check, { current: true, kind: "GRANT_KIND_LOCK", currentToken: token });

    const b = await lease();
    const readsBefore = api.node.reads;
    const busy = assertError(
      await api.unary("Lock", "Acquire", { ...b, seq: 2, name: "db", wait: false }),
      grpc.status.ABORTED,
      "LOCK_HELD",
    );
    assert.equal(busy.detail?.currentToken, Number(token));
    // The token comes with the refusal's own commit: no second (ReadIndex) round for it.
    assert.equal(api.node.reads, readsBefore, "a refused try-lock asked for a read");
    // A retry of the refused request replays the stored refusal, token included.
    const again = assertError(
      await api.unary("Lock", "Acquire", { ...b, seq: 2, name: "db", wait: false }),
      grpc.status.ABORTED,
      "LOCK_HELD",
    );
    assert.equal(again.detail?.currentToken, Number(token));

    assert.deepEqual(await api.ok("Lock", "Release", { clientId: a.clientId, seq: 3, name: "db", token }), { released: true });
    // Fenced and idempotent: the same token again releases nothing.
    assert.deepEqual(await api.ok("Lock", "Release", { clientId: a.clientId, seq: 4, name: "db", token }), { released: false });
    assert.equal((await status("db"))["state"], "MUTEX_STATE_FREE");
  });

  it("hands the node the call's signal: a read whose call passed its deadline is dropped, not left pending", async () => {
    const a = await lease();
    const got = await api.ok("Lock", "Acquire", { ...a, seq: 2, name: "signalled", wait: false });
    await api.ok("Lock", "Release", { clientId: a.clientId, seq: 3, name: "signalled", token: String(got["token"]) });
    assert.ok(api.node.signals.at(-1) instanceof AbortSignal, "Release passed no signal");
    api.node.holdReads = true;
    try {
      const before = api.node.signals.length;
      const reply = await api.unary("Lock", "Status", { name: "signalled" }, { deadlineMs: 300 });
      assert.ok(!reply.ok && reply.code === grpc.status.DEADLINE_EXCEEDED, JSON.stringify(reply));
      const signal = api.node.signals[before];
      assert.ok(signal instanceof AbortSignal, "Status passed no signal");
      await until(async () => signal.aborted, "the read's signal to abort");
    } finally {
      api.node.holdReads = false;
    }
  });

  it("a call that got its answer never aborts its signal (grpc-js emits cancelled at the end of every call)", async () => {
    const a = await lease();
    const before = api.node.signals.length;
    const got = await api.ok("Lock", "Acquire", { ...a, seq: 2, name: "answered", wait: false });
    await api.ok("Lock", "Release", { clientId: a.clientId, seq: 3, name: "answered", token: String(got["token"]) });
    await api.ok("Lock", "Status", { name: "answered" });
    const signals = api.node.signals.slice(before).filter((s) => s !== undefined);
    assert.ok(signals.length >= 2, `only ${signals.length} signals recorded (Release, Status)`);
    // Give grpc-js's end-of-call cancel (process.nextTick after the trailers) time to arrive.
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(
      signals.map((s) => s.aborted),
      signals.map(() => false),
      "an answered call aborted its signal: the node's abort listeners ran after the fact",
    );
  });

  it("a retry with the same (client_id, seq) returns the same token", async () => {
    const a = await lease();
    const first = await api.ok("Lock", "Acquire", { ...a, seq: 2, name: "retry", wait: true, timeoutMs: 1_000 });
    const again = await api.ok("Lock", "Acquire", { ...a, seq: 2, name: "retry", wait: true, timeoutMs: 1_000 });
    assert.equal(again["token"], first["token"]);
    assert.equal(again["replayed"], true);
    assert.equal(first["replayed"], false);
  });

  it("grants 8 waiters in FIFO order with strictly increasing tokens", async () => {
    const holder = await lease();
    const first = await api.ok("Lock", "Acquire", { ...holder, seq: 2, name: "fifo", wait: false });
    const waiters = [];
    for (let i = 0; i < 8; i++) {
      const w = await lease();
      const reply = api.unary("Lock", "Acquire", { ...w, seq: 2, name: "fifo", wait: true, timeoutMs: 10_000 });
      await until(async () => ((await status("fifo"))["waiterLeaseIds"] as string[]).length === i + 1, `waiter ${i}`);
      waiters.push({ ...w, reply });
    }
    assert.deepEqual(
      (await status("fifo"))["waiterLeaseIds"],
      waiters.map((w) => w.leaseId),
    );
    let previous = { clientId: holder.clientId, token: String(first["token"]) };
    for (const w of waiters) {
      await api.ok("Lock", "Release", { clientId: previous.clientId, seq: 3, name: "fifo", token: previous.token });
      const reply = await w.reply;
      assert.ok(reply.ok, `waiter ${w.leaseId} failed`);
      const token = String(reply.response["token"]);
      assert.ok(BigInt(token) > BigInt(previous.token), `token ${token} after ${previous.token}`);
      assert.equal(((await status("fifo"))["holder"] as Message)["leaseId"], w.leaseId);
      previous = { clientId: w.clientId, token };
    }
  });

  it("a wait that times out gives DEADLINE_EXCEEDED and leaves no waiter", async () => {
    const holder = await lease();
    await api.ok("Lock", "Acquire", { ...holder, seq: 2, name: "slow", wait: false });
    const w = await lease();
    const reply = await api.unary("Lock", "Acquire", { ...w, seq: 2, name: "slow", wait: true, timeoutMs: 150 });
    const error = assertError(reply, grpc.status.DEADLINE_EXCEEDED, "TIMEOUT");
    assert.match(error.details, /not granted within 150 ms; the wait was withdrawn/);
    const after = await status("slow");
    assert.deepEqual(after["waiterLeaseIds"], []);
    assert.equal((after["holder"] as Message)["leaseId"], holder.leaseId);
    // seq + 1 went to the withdrawal; the client continues at seq + 2.
    const next = api.node.submitted.at(-1);
    assert.equal(next?.kind, "WaitCancel");
    assert.equal(next?.seq, 3);
    await api.ok("Lease", "Revoke", { clientId: w.clientId, seq: 4, leaseId: w.leaseId });
    assert.equal(api.node.listenerCount(), 0);
  });

  it("a client deadline withdraws the wait too", async () => {
    const holder = await lease();
    await api.ok("Lock", "Acquire", { ...holder, seq: 2, name: "gone", wait: false });
    const w = await lease();
    const reply = await api.unary("Lock", "Acquire", { ...w, seq: 2, name: "gone", wait: true }, { deadlineMs: 300 });
    assert.equal(reply.ok, false);
    assert.ok(!reply.ok && reply.code === grpc.status.DEADLINE_EXCEEDED);
    await until(async () => ((await status("gone"))["waiterLeaseIds"] as string[]).length === 0, "withdrawal");
  });

  it("a waiter whose lease is revoked gets NOT_FOUND", async () => {
    const holder = await lease();
    await api.ok("Lock", "Acquire", { ...holder, seq: 2, name: "revoked", wait: false });
    const w = await lease();
    const reply = api.unary("Lock", "Acquire", { ...w, seq: 2, name: "revoked", wait: true, timeoutMs: 5_000 });
    await until(async () => ((await status("revoked"))["waiterLeaseIds"] as string[]).length === 1, "queued");
    await api.ok("Lease", "Revoke", { clientId: holder.clientId, seq: 3, leaseId: w.leaseId });
    assertError(await reply, grpc.status.NOT_FOUND, "LEASE_NOT_FOUND");
  });
});
