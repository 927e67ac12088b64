import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stateConfig } from "./limits.ts";
import { Driver } from "../../testing/kits/state_test_kit.ts";

describe("leases", () => {
  it("grant returns the ttl and the server deadline = apply time + ttl * (1 + rho)", () => {
    const d = new Driver(stateConfig({ rho: 0.01 })).at(5_000);
    const r = d.client("a", { kind: "LeaseGrant", ttlMs: 10_000 });
    assert.ok(r.ok && r.kind === "LeaseGrant");
    assert.deepEqual(r.validUntil, { ttlMs: 10_000, rho: 0.01, appliedAtMs: 5_000, serverDeadlineMs: 15_100 });
    assert.equal(d.machine.leaseTimeToLive(r.leaseId)?.remainingMs, 10_100);
  });

  it("keepalive renews many leases in one entry and reports the missing ones", () => {
    const d = new Driver();
    const l1 = d.grant("a");
    const l2 = d.grant("b");
    d.at(4_000);
    const r = d.client("n", { kind: "LeaseKeepAlive", leaseIds: [l1, l2, 999, l1] });
    assert.ok(r.ok && r.kind === "LeaseKeepAlive");
    assert.deepEqual(
      r.renewed.map((x) => [x.leaseId, x.validUntil.serverDeadlineMs]),
      [
        [l1, 14_100],
        [l2, 14_100],
      ],
    );
    assert.deepEqual(r.failed, [{ leaseId: 999, code: "LEASE_NOT_FOUND" }]);
  });

  it("expires through a guarded LeaseExpire proposed by timers()", () => {
    const d = new Driver();
    const lease = d.grant("a", 1_000); // deadline 1000 + 1010
    d.at(2_009);
    assert.deepEqual(d.machine.timers(d.timeMs), []);
    assert.equal(d.system({ kind: "LeaseExpire", leaseId: lease, renewSeq: 0 }).ok, true);
    assert.notEqual(d.machine.leaseTimeToLive(lease), null, "an early expire is a no-op");
    d.at(2_010);
    assert.deepEqual(d.machine.timers(d.timeMs), [{ kind: "LeaseExpire", leaseId: lease, renewSeq: 0 }]);
    const [r] = d.fireTimers();
    assert.ok(r?.ok && r.kind === "LeaseExpire" && r.applied);
    assert.equal(d.machine.leaseTimeToLive(lease), null);
    assert.deepEqual(r.events, [{ kind: "leaseGone", leaseId: lease, clientId: "a", expired: true }]);
  });

  it("an expire loses to a renewal committed just before it", () => {
    const d = new Driver();
    const lease = d.grant("a", 1_000);
    d.at(2_005);
    const [expire] = d.machine.timers(2_010); // the leader's timer fired on the old deadline...
    d.client("a", { kind: "LeaseKeepAlive", leaseIds: [lease] }); // ...but this renewal commits first
    d.at(2_010);
    assert.ok(expire !== undefined);
    const r = d.system(expire);
    assert.ok(r.ok && r.kind === "LeaseExpire" && !r.applied);
    assert.equal(d.machine.leaseTimeToLive(lease)?.serverDeadlineMs, 2_005 + 1_010);
    // Even applied late, past the new deadline too, the old renewSeq loses; the current one wins.
    d.at(9_000);
    const late = d.system(expire);
    assert.ok(late.ok && late.kind === "LeaseExpire" && !late.applied);
    const current = d.system({ kind: "LeaseExpire", leaseId: lease, renewSeq: 1 });
    assert.ok(current.ok && current.kind === "LeaseExpire" && current.applied);
  });

  it("a lease past its deadline cannot be renewed or used, only expired", () => {
    const d = new Driver();
    const lease = d.grant("a", 1_000);
    d.at(2_010);
    const r = d.client("a", { kind: "LeaseKeepAlive", leaseIds: [lease] });
    assert.ok(r.ok && r.kind === "LeaseKeepAlive");
    assert.deepEqual(r.failed, [{ leaseId: lease, code: "LEASE_EXPIRED" }]);
    const acquire = d.acquire("a", "x", lease);
    assert.ok(!acquire.ok && acquire.code === "LEASE_EXPIRED");
    assert.equal(d.machine.leaseTimeToLive(lease)?.expiring, true);
  });

  it("revoke removes the lease; a second revoke is LEASE_NOT_FOUND", () => {
    const d = new Driver();
    const lease = d.grant("a");
    assert.equal(d.client("a", { kind: "LeaseRevoke", leaseId: lease }).ok, true);
    const again = d.client("a", { kind: "LeaseRevoke", leaseId: lease });
    assert.ok(!again.ok && again.code === "LEASE_NOT_FOUND");
    assert.deepEqual(d.machine.leaseList(), []);
  });

  it("TTL range and per-client lease limits are results, not throws", () => {
    const d = new Driver(stateConfig({ limits: { ttlMsMin: 1_000, ttlMsMax: 60_000, leasesPerClientMax: 2 } }));
    for (const ttlMs of [0, 999, 60_001, Number.MAX_SAFE_INTEGER]) {
      const r = d.client("a", { kind: "LeaseGrant", ttlMs });
      assert.ok(!r.ok && r.code === "INVALID_ARGUMENT", `ttl ${ttlMs}`);
    }
    d.grant("a");
    d.grant("a");
    const third = d.client("a", { kind: "LeaseGrant", ttlMs: 1_000 });
    assert.ok(!third.ok && third.code === "LIMIT_EXCEEDED");
    const many = d.client("a", { kind: "LeaseKeepAlive", leaseIds: new Array<number>(2_000).fill(1) });
    assert.ok(!many.ok && many.code === "LIMIT_EXCEEDED");
  });

  it("timer commands of a term whose timers were not restarted do nothing", () => {
    const d = new Driver();
    const lease = d.grant("a", 1_000);
    d.term += 1; // a new leader that (wrongly) skipped LeaderTimersRestart
    d.at(50_000);
    const r = d.system({ kind: "LeaseExpire", leaseId: lease, renewSeq: 0 });
    assert.ok(r.ok && r.kind === "LeaseExpire" && !r.applied);
    assert.notEqual(d.machine.leaseTimeToLive(lease), null);
  });
});
