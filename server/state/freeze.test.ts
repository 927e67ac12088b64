import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Driver, type ClientBody } from "../../testing/kits/state_test_kit.ts";
import { FROZEN_MESSAGE } from "./command_handlers.ts";
import { stateConfig } from "./limits.ts";
import { LockStateMachine } from "./machine.ts";
import { SNAPSHOT_VERSION } from "./machine_snapshot.ts";
import type { ApplyResult } from "./results.ts";

const CONFIG = stateConfig({ lockDelayMs: 2_000 });
const ADMIN = { identity: "ops", admin: true };

function freeze(d: Driver, reason = "drill"): ApplyResult {
  return d.client("admin", { kind: "Freeze", reason, ...ADMIN });
}
function thaw(d: Driver): ApplyResult {
  return d.client("admin", { kind: "Thaw", ...ADMIN });
}
function frozenRefusal(r: ApplyResult): void {
  assert.ok(!r.ok, JSON.stringify(r));
  assert.equal(r.code, "FROZEN");
  assert.equal(r.message, FROZEN_MESSAGE);
}
function tokenOf(d: Driver, table: "lock" | "election", name: string): number | undefined {
  const status = table === "lock" ? d.machine.lockStatus(name) : d.machine.electionStatus(name);
  return status.holder?.token;
}

describe("Freeze / Thaw", () => {
  it("refuses new grants, acquires and campaigns with FROZEN, and records the refusal", () => {
    const d = new Driver(CONFIG);
    const la = d.grant("a");
    d.at(1_100);
    const f = freeze(d);
    assert.ok(f.ok && f.kind === "Freeze" && !f.alreadyFrozen);
    assert.deepEqual(d.machine.frozen(), { reason: "drill", by: "ops", sinceMs: 1_100 });
    assert.equal(d.machine.usage().frozen, true);
    frozenRefusal(d.client("b", { kind: "LeaseGrant", ttlMs: 10_000 }));
    frozenRefusal(d.acquire("a", "L", la, false));
    frozenRefusal(d.acquire("a", "L", la, true));
    frozenRefusal(d.client("a", { kind: "ElectionCampaign", name: "E", leaseId: la, value: "v" }));
    // A retry of the refused seq is the same definitive answer (the session table recorded it).
    const retry = d.send("b", 1, { kind: "LeaseGrant", ttlMs: 10_000 });
    assert.ok(retry.replayed);
    frozenRefusal(retry);
    assert.equal(d.machine.leaseList().length, 1);
  });

  it("serves renewals, releases, revokes, resigns and proclaims while frozen", () => {
    const d = new Driver(CONFIG);
    const [la, lb] = [d.grant("a"), d.grant("b")];
    const lock = Driver.token(d.acquire("a", "L", la));
    const lead = Driver.token(d.client("b", { kind: "ElectionCampaign", name: "E", leaseId: lb, value: "1" }));
    freeze(d);
    // The holder's own acquire again gets its grant back: it asks for nothing new.
    assert.equal(Driver.token(d.acquire("a", "L", la)), lock);
    const renew = d.client("a", { kind: "LeaseKeepAlive", leaseIds: [la, lb] });
    assert.ok(renew.ok && renew.kind === "LeaseKeepAlive");
    assert.equal(renew.renewed.length, 2);
    const proclaim = d.client("b", { kind: "ElectionProclaim", name: "E", token: lead, value: "2" });
    assert.ok(proclaim.ok, JSON.stringify(proclaim));
    assert.equal(d.machine.electionLeader("E")?.value, "2");
    const release = d.client("a", { kind: "LockRelease", name: "L", token: lock });
    assert.ok(release.ok && release.kind === "LockRelease" && release.released);
    const resign = d.client("b", { kind: "ElectionResign", name: "E", token: lead });
    assert.ok(resign.ok && resign.kind === "ElectionResign" && resign.resigned);
    const revoke = d.client("a", { kind: "LeaseRevoke", leaseId: la });
    assert.ok(revoke.ok, JSON.stringify(revoke));
    assert.equal(d.machine.lockStatus("L").state, "FREE");
  });

  it("a release while frozen leaves the waiters queued; thaw grants the first with a higher token", () => {
    const d = new Driver(CONFIG);
    const [la, lb, lc] = [d.grant("a"), d.grant("b"), d.grant("c")];
    const first = Driver.token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    d.acquire("c", "L", lc);
    freeze(d);
    // A queued waiter asking again is answered with its place, not FROZEN.
    const again = d.acquire("b", "L", lb);
    assert.ok(again.ok && again.kind === "LockAcquire" && again.status === "queued" && again.position === 1);
    const release = d.client("a", { kind: "LockRelease", name: "L", token: first });
    assert.ok(release.ok && release.kind === "LockRelease" && release.released);
    assert.ok(!release.events.some((e) => e.kind === "granted"), "nobody is granted while frozen");
    const status = d.machine.lockStatus("L");
    assert.equal(status.holder, null);
    assert.deepEqual(
      status.waiters.map((w) => w.leaseId),
      [lb, lc],
    );
    assert.equal(d.machine.usage().locksHeld, 0);
    assert.equal(d.machine.usage().lockWaiters, 2);
    frozenRefusal(d.acquire("a2", "L", d.machine.leaseList()[0]?.leaseId ?? 0));
    // The snapshot keeps the parked lock; a restored replica thaws it the same way.
    const twin = new Driver(CONFIG, LockStateMachine.restore(d.machine.snapshot(), CONFIG));
    assert.equal(twin.machine.stateHash(), d.machine.stateHash());
    const t = thaw(d);
    const t2 = twin.send("admin", 2, { kind: "Thaw", ...ADMIN });
    assert.ok(t.ok && t.kind === "Thaw" && !t.alreadyThawed && t.granted === 1, JSON.stringify(t));
    assert.deepEqual(t2.events, t.events);
    assert.equal(d.machine.lockStatus("L").holder?.leaseId, lb);
    assert.ok((tokenOf(d, "lock", "L") ?? 0) > first);
    assert.equal(twin.machine.stateHash(), d.machine.stateHash());
    assert.equal(d.machine.frozen(), null);
  });

  it("a lease expiry while frozen: the lock-delay ends, the waiters stay queued until thaw", () => {
    const d = new Driver(CONFIG);
    const [la, lb] = [d.grant("a", 1_000), d.grant("b", 60_000)];
    const first = Driver.token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    freeze(d);
    d.at(2_100);
    d.fireTimers(); // a expires: L is DELAYED until 4100
    assert.equal(d.machine.lockStatus("L").state, "DELAYED");
    d.at(4_200);
    const ended = d.fireTimers();
    assert.equal(ended.length, 1);
    assert.ok(!ended.some((r) => r.events.some((e) => e.kind === "granted")));
    assert.equal(d.machine.lockStatus("L").holder, null);
    assert.equal(d.machine.lockStatus("L").waiters.length, 1);
    // A new leader's timer restart leaves the parked lock alone.
    d.newLeader(5_000);
    assert.equal(d.machine.lockStatus("L").waiters.length, 1);
    thaw(d);
    assert.equal(d.machine.lockStatus("L").holder?.leaseId, lb);
    assert.ok((tokenOf(d, "lock", "L") ?? 0) > first);
  });

  it("queued campaigns wait for thaw after a resign; a parked name whose waiters leave is FREE", () => {
    const d = new Driver(CONFIG);
    const [la, lb, lc] = [d.grant("a"), d.grant("b"), d.grant("c")];
    const lead = Driver.token(d.client("a", { kind: "ElectionCampaign", name: "E", leaseId: la, value: "a" }));
    d.client("b", { kind: "ElectionCampaign", name: "E", leaseId: lb, value: "b" });
    const lock = Driver.token(d.acquire("a", "L", la));
    d.acquire("c", "L", lc);
    freeze(d);
    d.client("a", { kind: "ElectionResign", name: "E", token: lead });
    assert.equal(d.machine.electionLeader("E"), null);
    assert.equal(d.machine.electionStatus("E").waiters.length, 1);
    d.client("a", { kind: "LockRelease", name: "L", token: lock });
    // c's lease is revoked: its wait goes, and L (parked, no waiters left) is FREE.
    d.client("c", { kind: "LeaseRevoke", leaseId: lc });
    assert.equal(d.machine.lockStatus("L").state, "FREE");
    assert.equal(d.machine.lockStatus("L").waiters.length, 0);
    const t = thaw(d);
    assert.ok(t.ok && t.kind === "Thaw" && t.granted === 1);
    assert.equal(d.machine.electionLeader("E")?.leaseId, lb);
    assert.ok((d.machine.electionLeader("E")?.token ?? 0) > lock);
  });

  it("freeze when frozen and thaw when thawed change nothing; both need admin", () => {
    const d = new Driver(CONFIG);
    const t0 = thaw(d);
    assert.ok(t0.ok && t0.kind === "Thaw" && t0.alreadyThawed);
    freeze(d, "first");
    const hash = d.machine.stateHash();
    d.at(5_000);
    const again = freeze(d, "second");
    assert.ok(again.ok && again.kind === "Freeze" && again.alreadyFrozen);
    assert.equal(d.machine.frozen()?.reason, "first");
    assert.equal(d.machine.frozen()?.sinceMs, 1_000);
    assert.notEqual(hash, ""); // the session's seq moved; the freeze did not
    const notAdmin: ClientBody = { kind: "Thaw", identity: "bob", admin: false };
    const denied = d.client("bob", notAdmin);
    assert.ok(!denied.ok && denied.code === "PERMISSION_DENIED");
    const tooLong = d.client("admin2", { kind: "Freeze", reason: "x".repeat(257), ...ADMIN });
    assert.ok(!tooLong.ok && tooLong.code === "INVALID_ARGUMENT");
    assert.ok(d.machine.frozen() !== null);
  });

  it("the snapshot keeps the freeze; a version 3 image restores not frozen", () => {
    const d = new Driver(CONFIG);
    d.grant("a");
    d.at(1_500);
    freeze(d, 'incident 42 "quoted"');
    const bytes = d.machine.snapshot();
    const image = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    assert.equal(image["v"], SNAPSHOT_VERSION);
    assert.equal(SNAPSHOT_VERSION, 4);
    assert.deepEqual(image["frozen"], { reason: 'incident 42 "quoted"', by: "ops", sinceMs: 1_500 });
    const copy = LockStateMachine.restore(bytes, CONFIG);
    assert.deepEqual(copy.frozen(), d.machine.frozen());
    assert.equal(copy.stateHash(), d.machine.stateHash());
    frozenRefusal(new Driver(CONFIG, copy).client("z", { kind: "LeaseGrant", ttlMs: 10_000 }));
    // A version 3 image (taken before freeze existed) has no frozen field: not frozen.
    const v3: Record<string, unknown> = { ...image, v: 3 };
    delete v3["frozen"];
    const old = LockStateMachine.restore(new TextEncoder().encode(JSON.stringify(v3)), CONFIG);
    assert.equal(old.frozen(), null);
    assert.equal(old.leaseList().length, 1);
    const granted = new Driver(CONFIG, old).client("z", { kind: "LeaseGrant", ttlMs: 10_000 });
    assert.ok(granted.ok);
  });

  it("a parked name whose waiter's lease expires is FREE; thaw then grants nothing", () => {
    const d = new Driver(stateConfig({ lockDelayMs: 0 }));
    const [la, lb] = [d.grant("a", 60_000), d.grant("b", 1_000)];
    const lock = Driver.token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    freeze(d);
    d.client("a", { kind: "LockRelease", name: "L", token: lock });
    assert.equal(d.machine.lockStatus("L").waiters.length, 1);
    d.at(2_200);
    d.fireTimers(); // b's lease expires: its wait goes, and L with it
    assert.equal(d.machine.lockStatus("L").state, "FREE");
    assert.equal(d.machine.usage().lockWaiters, 0);
    const t = thaw(d);
    assert.ok(t.ok && t.kind === "Thaw" && t.granted === 0);
    assert.equal(d.machine.lockStatus("L").state, "FREE");
  });

  it("an image with a parked name but not frozen is refused as corrupt", () => {
    const d = new Driver(CONFIG);
    const [la, lb] = [d.grant("a"), d.grant("b")];
    const lock = Driver.token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    freeze(d);
    d.client("a", { kind: "LockRelease", name: "L", token: lock });
    const image = JSON.parse(new TextDecoder().decode(d.machine.snapshot())) as Record<string, unknown>;
    assert.throws(
      () => LockStateMachine.restore(new TextEncoder().encode(JSON.stringify({ ...image, frozen: null })), CONFIG),
      /parked \(free with waiters\) while not frozen/,
    );
  });
});
