import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TestApi, assertError, nextMessage, streamEnd } from "../../testing/kits/api_test_kit.ts";

describe("Lease service over gRPC", () => {
  let api: TestApi;
  before(async () => {
    api = await TestApi.start();
  });
  after(async () => {
    await api.close();
  });

  it("grants with valid_until, renews over KeepAlive, revokes", async () => {
    const grant = await api.ok("Lease", "Grant", { clientId: "c1", seq: 1, ttlMs: 5_000 });
    const leaseId = String(grant["leaseId"]);
    assert.deepEqual(grant["validUntil"], {
      ttlMs: "5000",
      rho: 0.01,
      appliedAtMs: "1000",
      serverDeadlineMs: String(1_000 + 5_000 + 50),
    });

    api.node.advance(1_000);
    const stream = api.bidi("Lease", "KeepAlive");
    stream.write({ clientId: "c1", seq: 2, leaseIds: [leaseId, "999"] });
    const renewal = await nextMessage(stream);
    assert.equal(renewal["seq"], "2");
    assert.deepEqual(renewal["renewed"], [
      { leaseId, validUntil: { ttlMs: "5000", rho: 0.01, appliedAtMs: "2000", serverDeadlineMs: "7050" } },
    ]);
    assert.deepEqual(renewal["failed"], [{ leaseId: "999", reason: "LEASE_NOT_FOUND" }]);
    stream.write({ clientId: "c1", seq: 3, leaseIds: [leaseId] });
    assert.equal((await nextMessage(stream))["seq"], "3");
    const ended = streamEnd(stream);
    stream.end();
    assert.equal((await ended).ok, true);

    const ttl = await api.ok("Lease", "TimeToLive", { leaseId });
    assert.equal(ttl["clientId"], "c1");
    assert.equal(ttl["remainingMs"], "5050");

    const revoked = await api.ok("Lease", "Revoke", { clientId: "c1", seq: 4, leaseId });
    assert.equal(revoked["leaseId"], leaseId);
    const gone = assertError(await api.unary("Lease", "TimeToLive", { leaseId }), grpc.status.NOT_FOUND, "LEASE_NOT_FOUND");
    assert.match(gone.details, /lease \d+ not found/);
  });

  it("a bad KeepAlive request ends only its stream with INVALID_ARGUMENT", async () => {
    const stream = api.bidi("Lease", "KeepAlive");
    const ended = streamEnd(stream);
    stream.write({ clientId: "c2", seq: 0, leaseIds: ["1"] });
    const reply = assertError(await ended, grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
    assert.match(reply.details, /seq must be 1\.\.9007199254740990, got 0/);
    await api.ok("Lease", "Grant", { clientId: "c2", seq: 1, ttlMs: 1_000 });
  });

  it("a KeepAlive on a follower ends the stream with the leader hint", async () => {
    const stream = api.bidi("Lease", "KeepAlive");
    const ended = streamEnd(stream);
    api.node.mode = { kind: "notLeader", hint: { leaderId: "b", leaderAddress: null } };
    try {
      stream.write({ clientId: "c3", seq: 1, leaseIds: ["1"] });
      const reply = assertError(await ended, grpc.status.UNAVAILABLE, "NOT_LEADER");
      assert.equal(reply.detail?.leaderAddress, "127.0.0.1:7002");
    } finally {
      api.node.mode = { kind: "leader" };
    }
  });

  it("lists leases in id order, paged", async () => {
    for (let seq = 1; seq <= 3; seq++) await api.ok("Lease", "Grant", { clientId: "lister", seq, ttlMs: 1_000 });
    const first = await api.ok("Lease", "List", { limit: 2 });
    const ids = (first["leases"] as { leaseId: string }[]).map((l) => Number(l.leaseId));
    assert.equal(ids.length, 2);
    assert.ok(ids[0]! < ids[1]!);
    assert.equal(first["more"], true);
    const rest = await api.ok("Lease", "List", { afterLeaseId: String(ids[1]), limit: 10_000 });
    const restIds = (rest["leases"] as { leaseId: string }[]).map((l) => Number(l.leaseId));
    assert.ok(restIds.every((id) => id > ids[1]!));
    assert.equal(rest["more"], false);
    assertError(await api.unary("Lease", "List", { limit: 10_001 }), grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
  });
});
