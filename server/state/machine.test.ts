import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeCommand } from "./commands.ts";
import { EPOCH_SPAN } from "./id_allocator.ts";
import { stateConfig } from "./limits.ts";
import { LockStateMachine } from "./machine.ts";
import { Driver } from "../../testing/kits/state_test_kit.ts";

const CONFIG = stateConfig({ lockDelayMs: 2_000 });

/** Leases, a held lock, a queue, a delayed lock, an election and sessions. */
function busyDriver(): Driver {
  const d = new Driver(CONFIG);
  const [la, lb, lc] = [d.grant("a", 1_000), d.grant("b", 30_000), d.grant("c", 30_000)];
  d.acquire("a", "delayed", la);
  d.acquire("b", "delayed", lb);
  d.acquire("b", "L1", lb);
  d.acquire("b", "L2", lb);
  d.acquire("c", "L1", lc);
  d.acquire("c", "L2", lc);
  d.client("c", { kind: "ElectionCampaign", name: "E", leaseId: lc, value: "c" });
  d.at(2_100);
  d.fireTimers(); // lease a expires: "delayed" is DELAYED until 4100
  return d;
}

describe("LockStateMachine", () => {
  it("LeaderTimersRestart restarts every lease and lock-delay at full length", () => {
    const d = busyDriver();
    const before = d.machine.leaseTimeToLive(2);
    d.newLeader(9_000);
    const after = d.machine.leaseTimeToLive(2);
    assert.equal(after?.serverDeadlineMs, 9_000 + 30_300);
    assert.ok((after?.serverDeadlineMs ?? 0) > (before?.serverDeadlineMs ?? 0));
    assert.equal(d.machine.lockStatus("delayed").delay?.untilMs, 11_000);
    // The old leader's timer commands (old renewSeq, old delayId) now do nothing.
    const stale = d.system({ kind: "LeaseExpire", leaseId: 2, renewSeq: 0 });
    assert.ok(stale.ok && stale.kind === "LeaseExpire" && !stale.applied);
    assert.deepEqual(d.machine.timers(10_999), []);
    assert.equal(d.machine.timers(11_000).length, 1);
  });

  it("snapshot/restore round trip keeps the stateHash and the next token", () => {
    const d = busyDriver();
    const copy = LockStateMachine.restore(d.machine.snapshot(), CONFIG);
    assert.equal(copy.stateHash(), d.machine.stateHash());
    assert.deepEqual(copy.snapshot(), d.machine.snapshot());
    // The same entries on both give the same results (revoking b hands L1 and L2 to c).
    const twin = new Driver(CONFIG, copy);
    for (const driver of [d, twin]) driver.at(3_000);
    const r1 = d.send("b", 5, { kind: "LeaseRevoke", leaseId: 2 });
    const r2 = twin.send("b", 5, { kind: "LeaseRevoke", leaseId: 2 });
    assert.ok(r1.ok && !r1.replayed);
    assert.deepEqual(r2, r1);
    assert.equal(r1.events.filter((e) => e.kind === "granted").length, 2, "L1 and L2 go to c");
    assert.equal(copy.stateHash(), d.machine.stateHash());
    assert.equal(copy.tokens().lastToken, d.machine.tokens().lastToken);
  });

  it("a restored replica hands a revoked lease's locks on with the same tokens", () => {
    const d = new Driver(CONFIG);
    const [lb, lc, lx] = [d.grant("b"), d.grant("c"), d.grant("x")];
    const p = Driver.token(d.acquire("c", "P", lc)); // P is created before Q...
    d.acquire("b", "Q", lb);
    d.acquire("b", "P", lb); // ...but b joins P after Q
    d.client("c", { kind: "LockRelease", name: "P", token: p });
    d.acquire("x", "Q", lx);
    d.acquire("x", "P", lx);
    const twin = new Driver(CONFIG, LockStateMachine.restore(d.machine.snapshot(), CONFIG));
    const r1 = d.send("c", 4, { kind: "LeaseRevoke", leaseId: lb });
    const r2 = twin.send("c", 4, { kind: "LeaseRevoke", leaseId: lb });
    assert.ok(!r1.replayed && r1.events.filter((e) => e.kind === "granted").length === 2);
    assert.deepEqual(r2.events, r1.events);
    assert.equal(twin.machine.stateHash(), d.machine.stateHash());
  });

  it("replicas applying the same entries have the same stateHash", () => {
    const a = busyDriver();
    const b = busyDriver();
    assert.equal(a.machine.stateHash(), b.machine.stateHash());
    b.system({ kind: "Noop" });
    assert.notEqual(a.machine.stateHash(), b.machine.stateHash());
  });

  it("restoring a backup bumps the epoch: every later token beats every earlier one", () => {
    const d = busyDriver();
    d.term = 40;
    d.newLeader(2_200); // the old cluster is in term 41
    const backup = d.machine.snapshot();
    // The old cluster keeps granting after the backup was taken.
    const lease = d.grant("z", 30_000);
    for (let i = 0; i < 5; i++) d.acquire("z", `after-${i}`, lease);
    const oldMax = d.machine.tokens().lastToken;

    const restored = LockStateMachine.restoreFromBackup(backup, { epochMin: 0, config: CONFIG });
    assert.equal(restored.tokens().epoch, 1);
    const r = new Driver(CONFIG, restored);
    r.term = 0;
    r.newLeader(3_000); // term 1 of the new cluster
    const t = Driver.token(r.acquire("z2", "fresh", r.grant("z2", 30_000)));
    assert.ok(t > oldMax && t === EPOCH_SPAN + 1);
    assert.ok(r.grant("z3") > lease, "lease ids are bumped too");
    // The new cluster's terms start over, and its timers still work.
    r.at(40_000);
    assert.ok(r.fireTimers().some((x) => x.ok && x.kind === "LeaseExpire" && x.applied));

    const later = LockStateMachine.restoreFromBackup(backup, { epochMin: 500, config: CONFIG });
    assert.equal(later.tokens().epoch, 500);
    assert.throws(() => LockStateMachine.restoreFromBackup(backup, { epochMin: 2 ** 21, config: CONFIG }));
  });

  it("RestoreEpochBump as a replicated command", () => {
    const d = new Driver();
    const l = d.grant("a");
    const before = Driver.token(d.acquire("a", "L", l));
    const r = d.system({ kind: "RestoreEpochBump", epochMin: 7 });
    assert.ok(r.ok && r.kind === "RestoreEpochBump" && r.epoch === 7);
    assert.ok(Driver.token(d.acquire("a", "M", l)) === 7 * EPOCH_SPAN + 1 && before < 7 * EPOCH_SPAN);
    const again = d.system({ kind: "RestoreEpochBump", epochMin: 0 });
    assert.ok(again.ok && again.kind === "RestoreEpochBump" && again.epoch === 8);
    const tooFar = d.system({ kind: "RestoreEpochBump", epochMin: 2 ** 21 });
    assert.ok(!tooFar.ok && tooFar.code === "INVALID_ARGUMENT");
  });

  it("leader time never goes backwards and empty entries are no-ops", () => {
    const m = new LockStateMachine();
    m.apply(1, encodeCommand({ leaderTimeMs: 5_000, term: 1, command: { kind: "LeaderTimersRestart" } }));
    m.apply(2, encodeCommand({ leaderTimeMs: 10, term: 1, command: { kind: "Noop" } }));
    assert.equal(m.leaderTimeMs(), 5_000);
    const r = m.apply(4, new Uint8Array(0));
    assert.ok(r.ok && r.kind === "Noop");
    assert.throws(() => m.apply(4, new Uint8Array(0)), /apply of index/);
  });
});
