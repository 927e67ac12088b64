// Ownership (caller.ts): leases, and the locks and elections they hold, belong to the identity
// that granted them; per-identity sessions; drawn lease ids; the owner in snapshots.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Driver } from "../../testing/kits/state_test_kit.ts";
import { LockStateMachine } from "./machine.ts";
import type { ApplyResult } from "./results.ts";

const alice = { identity: "alice", admin: false };
const bob = { identity: "bob", admin: false };
const root = { identity: "ops", admin: true };

function leaseOf(r: ApplyResult): number {
  if (!r.ok || r.kind !== "LeaseGrant") throw new Error(`grant failed: ${JSON.stringify(r)}`);
  return r.leaseId;
}

function code(r: ApplyResult): string {
  return r.ok ? "ok" : r.code;
}

describe("state: ownership", () => {
  it("another identity cannot revoke, renew, borrow or release what a lease owns; an admin can, reported", () => {
    const d = new Driver();
    const lease = leaseOf(d.client("a1", { kind: "LeaseGrant", ttlMs: 10_000, ...alice }));
    assert.equal(d.machine.leaseOwner(lease), "alice");
    const lock = d.client("a1", { kind: "LockAcquire", name: "db", leaseId: lease, wait: false, ...alice });
    const token = Driver.token(lock);
    const before = d.machine.stateHash();

    const revoke = d.client("b1", { kind: "LeaseRevoke", leaseId: lease, ...bob });
    assert.equal(code(revoke), "PERMISSION_DENIED");
    if (!revoke.ok) assert.equal(revoke.message, `lease ${lease} belongs to another identity`);
    const renew = d.client("b1", { kind: "LeaseKeepAlive", leaseIds: [lease], ...bob });
    assert.ok(renew.ok && renew.kind === "LeaseKeepAlive");
    assert.deepEqual(renew.failed, [{ leaseId: lease, code: "PERMISSION_DENIED" }]);
    assert.equal(code(d.client("b1", { kind: "LockAcquire", name: "other", leaseId: lease, wait: false, ...bob })), "PERMISSION_DENIED");
    assert.equal(code(d.client("b1", { kind: "LockRelease", name: "db", token, ...bob })), "PERMISSION_DENIED");
    assert.equal(code(d.client("b1", { kind: "WaitCancel", table: "lock", name: "db", leaseId: lease, ...bob })), "PERMISSION_DENIED");
    // A token that is not the current grant is the usual no-op: nothing to tell a non-owner.
    const stale = d.client("b1", { kind: "LockRelease", name: "db", token: token + 1, ...bob });
    assert.ok(stale.ok && stale.kind === "LockRelease" && !stale.released);
    // The anonymous identity of the open mode is just another identity here.
    assert.equal(code(d.client("anon", { kind: "LeaseRevoke", leaseId: lease })), "PERMISSION_DENIED");
    // Refusals changed nothing but the refused callers' sessions.
    assert.equal(d.machine.lockStatus("db").holder?.token, token);
    assert.notEqual(before, d.machine.stateHash());

    const released = d.client("o1", { kind: "LockRelease", name: "db", token, ...root });
    assert.ok(released.ok && released.kind === "LockRelease" && released.released);
    assert.deepEqual(
      released.events.find((e) => e.kind === "actedForOwner"),
      {
        kind: "actedForOwner",
        command: "LockRelease",
        identity: "ops",
        owner: "alice",
        leaseId: lease,
        name: "db",
      },
    );
    const revoked = d.client("o1", { kind: "LeaseRevoke", leaseId: lease, ...root });
    assert.equal(code(revoked), "ok");
    assert.ok(revoked.events.some((e) => e.kind === "actedForOwner" && e.owner === "alice" && e.name === null));
    assert.equal(d.machine.leaseOwner(lease), null);
  });

  it("the owner acts without an audit event; elections: proclaim and resign are the owner's", () => {
    const d = new Driver();
    const lease = leaseOf(d.client("a1", { kind: "LeaseGrant", ttlMs: 10_000, ...alice }));
    const elected = d.client("a1", { kind: "ElectionCampaign", name: "e", leaseId: lease, value: "a:1", ...alice });
    const token = Driver.token(elected);
    assert.equal(code(d.client("b1", { kind: "ElectionProclaim", name: "e", token, value: "b:1", ...bob })), "PERMISSION_DENIED");
    assert.equal(code(d.client("b1", { kind: "ElectionResign", name: "e", token, ...bob })), "PERMISSION_DENIED");
    assert.equal(d.machine.electionLeader("e")?.value, "a:1");
    const proclaimed = d.client("a1", { kind: "ElectionProclaim", name: "e", token, value: "a:2", ...alice });
    assert.equal(code(proclaimed), "ok");
    assert.ok(proclaimed.events.every((e) => e.kind !== "actedForOwner"));
    assert.equal(code(d.client("o1", { kind: "ElectionProclaim", name: "e", token, value: "ops", ...root })), "ok");
    const resigned = d.client("a1", { kind: "ElectionResign", name: "e", token, ...alice });
    assert.ok(resigned.ok && resigned.kind === "ElectionResign" && resigned.resigned);
  });

  it("sessions are per identity: the same client id and seq of another identity is not a replay", () => {
    const d = new Driver();
    const a = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 10_000, ...alice });
    const b = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 10_000, ...bob });
    assert.equal(b.replayed, false);
    assert.notEqual(leaseOf(a), leaseOf(b));
    assert.equal(d.machine.leaseOwner(leaseOf(b)), "bob");
    // Alice's retry still gets her stored grant; bob's seq 2 does not move alice's session.
    assert.equal(d.send("c", 2, { kind: "LeaseRevoke", leaseId: leaseOf(b), ...bob }).ok, true);
    const retry = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 10_000, ...alice });
    assert.equal(retry.replayed, true);
    assert.equal(leaseOf(retry), leaseOf(a));
  });

  it("a drawn lease id that is taken is refused, unrecorded; the same seq with another id is granted", () => {
    const d = new Driver();
    const first = d.send("a1", 1, { kind: "LeaseGrant", ttlMs: 10_000, leaseId: 4242, ...alice });
    assert.equal(leaseOf(first), 4242);
    const image = (): unknown => ({ ...JSON.parse(new TextDecoder().decode(d.machine.snapshot())), appliedIndex: 0 });
    const before = image();
    const taken = d.send("b1", 1, { kind: "LeaseGrant", ttlMs: 10_000, leaseId: 4242, ...bob });
    assert.equal(code(taken), "LEASE_ID_TAKEN");
    assert.deepEqual(image(), before, "no session recorded, nothing changed");
    const redrawn = d.send("b1", 1, { kind: "LeaseGrant", ttlMs: 10_000, leaseId: 77, ...bob });
    assert.equal(leaseOf(redrawn), 77);
    assert.equal(redrawn.replayed, false);
    // Without a drawn id (v1 entries) the sequential id skips a drawn one that took it.
    d.send("c1", 1, { kind: "LeaseGrant", ttlMs: 10_000, leaseId: 1, ...alice });
    assert.equal(leaseOf(d.send("c2", 1, { kind: "LeaseGrant", ttlMs: 10_000 })), 2);
  });

  it("the owner survives a snapshot; a version 1 image restores with anonymous owners", () => {
    const d = new Driver();
    const lease = leaseOf(d.client("a1", { kind: "LeaseGrant", ttlMs: 10_000, ...alice }));
    const restored = LockStateMachine.restore(d.machine.snapshot());
    assert.equal(restored.leaseOwner(lease), "alice");
    assert.equal(restored.stateHash(), d.machine.stateHash());

    const v1 = JSON.parse(new TextDecoder().decode(d.machine.snapshot())) as Record<string, unknown>;
    v1["v"] = 1;
    v1["leases"] = (v1["leases"] as Record<string, unknown>[]).map(({ owner: _owner, ...rest }) => rest);
    v1["sessions"] = [];
    v1["idle"] = [];
    const old = LockStateMachine.restore(new TextEncoder().encode(JSON.stringify(v1)));
    assert.equal(old.leaseOwner(lease), "");
    // A v2 image without owners is corrupt, not old.
    const broken = { ...v1, v: 2 };
    assert.throws(() => LockStateMachine.restore(new TextEncoder().encode(JSON.stringify(broken))), /owner must be a string/);
  });

  it("a malformed identity in an entry is INVALID_ARGUMENT", () => {
    const d = new Driver();
    assert.equal(code(d.client("a1", { kind: "LeaseGrant", ttlMs: 10_000, identity: "has space", admin: false })), "INVALID_ARGUMENT");
    assert.equal(code(d.client("a b", { kind: "LeaseGrant", ttlMs: 10_000 })), "INVALID_ARGUMENT");
  });
});
