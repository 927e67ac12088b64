import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stateConfig } from "./limits.ts";
import { decodeImage } from "./machine_snapshot.ts";
import { LockStateMachine } from "./machine.ts";
import { storedKeepAliveIds } from "./session_table.ts";
import { Driver } from "../../testing/kits/state_test_kit.ts";

/** Lease ids in the stored KeepAlive answers, per client, from the snapshot. */
function storedIds(d: Driver): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of decodeImage(d.machine.snapshot()).sessions) {
    const ids = storedKeepAliveIds(s.result);
    if (ids > 0) out[s.clientId] = ids;
  }
  return out;
}

describe("exactly-once sessions", () => {
  it("a retried acquire returns the same token and grants nothing twice", () => {
    const d = new Driver();
    const lease = d.grant("a");
    const first = d.acquire("a", "L", lease); // seq 2
    const lastToken = d.machine.tokens().lastToken;
    d.client("a", { kind: "LockRelease", name: "L", token: Driver.token(first) }); // seq 3
    const retry = d.send("a", 3, { kind: "LockRelease", name: "L", token: Driver.token(first) });
    assert.equal(retry.replayed, true);
    const fresh = d.acquire("a", "L", lease); // seq 4: a new grant, new token
    const again = d.send("a", 4, { kind: "LockAcquire", name: "L", leaseId: lease, wait: true });
    assert.equal(again.replayed, true);
    assert.equal(Driver.token(again), Driver.token(fresh));
    assert.deepEqual(again.events, []);
    assert.equal(d.machine.tokens().lastToken, lastToken + 1);
  });

  it("a retried grant returns the same lease", () => {
    const d = new Driver();
    const r1 = d.client("a", { kind: "LeaseGrant", ttlMs: 5_000 });
    const r2 = d.send("a", 1, { kind: "LeaseGrant", ttlMs: 5_000 });
    assert.ok(r1.ok && r2.ok && r1.kind === "LeaseGrant" && r2.kind === "LeaseGrant");
    assert.equal(r2.leaseId, r1.leaseId);
    assert.equal(d.machine.leaseList().length, 1);
  });

  it("a lower seq is STALE_SEQUENCE; an unknown client past seq 1 is SESSION_EXPIRED", () => {
    const d = new Driver();
    d.grant("a");
    d.grant("a");
    const stale = d.send("a", 1, { kind: "LeaseGrant", ttlMs: 5_000 });
    assert.ok(!stale.ok && stale.code === "STALE_SEQUENCE");
    const gone = d.send("zed", 7, { kind: "LeaseGrant", ttlMs: 5_000 });
    assert.ok(!gone.ok && gone.code === "SESSION_EXPIRED");
    const badId = d.send("", 1, { kind: "LeaseGrant", ttlMs: 5_000 });
    assert.ok(!badId.ok && badId.code === "INVALID_ARGUMENT");
    assert.equal(d.machine.leaseList().length, 2);
  });

  it("a session is dropped once its leases are gone and it stayed idle; not before", () => {
    const d = new Driver(stateConfig({ sessionIdleMs: 60_000 }));
    const lease = d.grant("a", 1_000);
    d.client("b", { kind: "LeaseKeepAlive", leaseIds: [lease] }); // b has no leases: idle clock runs
    d.at(70_000);
    d.system({ kind: "Noop" });
    assert.ok(!d.send("b", 2, { kind: "LeaseRevoke", leaseId: 1 }).ok);
    const stillA = d.send("a", 1, { kind: "LeaseGrant", ttlMs: 1_000 });
    assert.equal(stillA.replayed, true, "a holds a lease: its session stays");
    d.fireTimers(); // the lease expires at 70000: a's idle clock starts
    d.at(129_999);
    d.system({ kind: "Noop" });
    assert.equal(d.send("a", 1, { kind: "LeaseGrant", ttlMs: 1_000 }).replayed, true);
    d.at(130_000);
    d.system({ kind: "Noop" });
    const expired = d.send("a", 2, { kind: "LeaseGrant", ttlMs: 1_000 });
    assert.ok(!expired.ok && expired.code === "SESSION_EXPIRED");
  });

  it("beyond sessionsMax the least recently active session is evicted", () => {
    const d = new Driver(stateConfig({ limits: { sessionsMax: 2 } }));
    d.grant("a");
    d.grant("b");
    d.client("a", { kind: "LeaseKeepAlive", leaseIds: [1] }); // a is now more recent than b
    d.grant("c");
    assert.ok(d.send("a", 2, { kind: "LeaseKeepAlive", leaseIds: [1] }).replayed);
    const b = d.send("b", 2, { kind: "LeaseGrant", ttlMs: 1_000 });
    assert.ok(!b.ok && b.code === "SESSION_EXPIRED");
  });

  it("keepAliveLeaseIdsStoredMax: a KeepAlive evicts the least recently active other answers until its own fits", () => {
    const config = stateConfig({ limits: { keepAliveLeaseIdsMax: 4, keepAliveLeaseIdsStoredMax: 6 } });
    const d = new Driver(config);
    const [l1, l2, l3, l4] = [d.grant("a"), d.grant("a"), d.grant("a"), d.grant("a")];
    d.client("k1", { kind: "LeaseKeepAlive", leaseIds: [l1] });
    d.client("k1", { kind: "LeaseKeepAlive", leaseIds: [l1, l2, l3] }); // seq 2: 3 ids
    d.client("k2", { kind: "LeaseKeepAlive", leaseIds: [l4, 999, l4] }); // 2 distinct ids, one failed
    d.client("g", { kind: "LeaseGrant", ttlMs: 10_000 }); // not a KeepAlive answer: never counted
    assert.deepEqual(storedIds(d), { k1: 3, k2: 2 });
    const r = d.client("k3", { kind: "LeaseKeepAlive", leaseIds: [l1, l2] }); // 5 + 2 > 6: k1 goes
    assert.ok(r.ok && r.kind === "LeaseKeepAlive" && r.renewed.length === 2, "the renewal itself is never refused");
    assert.deepEqual(storedIds(d), { k2: 2, k3: 2 });
    const evicted = d.send("k1", 2, { kind: "LeaseKeepAlive", leaseIds: [l1, l2, l3] });
    assert.ok(!evicted.ok && evicted.code === "SESSION_EXPIRED", "k1's answer is gone, and with it its session");
    assert.equal(d.send("k2", 1, { kind: "LeaseKeepAlive", leaseIds: [l4, 999, l4] }).replayed, true);
    assert.equal(d.send("g", 1, { kind: "LeaseGrant", ttlMs: 10_000 }).replayed, true);
    // A client replacing its own answer makes room with it first: 4 - 2 + 4 = 6 evicts nobody.
    d.client("k2", { kind: "LeaseKeepAlive", leaseIds: [l1, l2, l3, l4] });
    assert.deepEqual(storedIds(d), { k3: 2, k2: 4 });
    // A replica restored from a snapshot evicts the same sessions.
    const twin = new Driver(config, LockStateMachine.restore(d.machine.snapshot(), config));
    for (const driver of [d, twin]) driver.send("k3", 2, { kind: "LeaseKeepAlive", leaseIds: [l1, l2, l3, l4] });
    assert.deepEqual(storedIds(d), { k3: 4 });
    assert.equal(twin.machine.stateHash(), d.machine.stateHash());
    // A later command that is not a KeepAlive releases the client's share.
    d.send("k3", 3, { kind: "LeaseRevoke", leaseId: 12_345 });
    assert.deepEqual(storedIds(d), {});
  });
});
