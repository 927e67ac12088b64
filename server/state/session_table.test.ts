import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_STATE_CONFIG, stateConfig } from "./limits.ts";
import { decodeImage } from "./machine_snapshot.ts";
import { LockStateMachine } from "./machine.ts";
import { storedKeepAliveIds } from "./session_table.ts";
import type { ApplyResult } from "./results.ts";
import { Driver, type ClientBody } from "../../testing/kits/state_test_kit.ts";

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

describe("a reused seq with other arguments is refused, never answered with another request's result", () => {
  /** The snapshot image but the applied index (which every entry advances). */
  function tables(d: Driver): object {
    const { appliedIndex: _index, ...rest } = decodeImage(d.machine.snapshot());
    return rest;
  }

  /** A client "u" with a lease, a held lock, a queued waiter and an election it leads; returns the ids. */
  function world(d: Driver) {
    const lease = d.grant("u"); // seq 1
    const other = d.grant("u"); // seq 2
    const lock = d.acquire("u", "X", lease); // seq 3
    d.acquire("u", "Q", other); // seq 4
    const elected = d.client("u", { kind: "ElectionCampaign", name: "E", leaseId: lease, value: "v1" }); // seq 5
    return { lease, other, token: Driver.token(lock), electionToken: Driver.token(elected) };
  }

  /** Every mutating command, each with variants that change one argument (or the kind). */
  function cases(w: ReturnType<typeof world>): { body: ClientBody; variants: ClientBody[] }[] {
    const { lease, other, token, electionToken } = w;
    return [
      { body: { kind: "LeaseGrant", ttlMs: 5_000 }, variants: [{ kind: "LeaseGrant", ttlMs: 6_000 }] },
      {
        body: { kind: "LeaseKeepAlive", leaseIds: [lease] },
        variants: [
          { kind: "LeaseKeepAlive", leaseIds: [other] },
          { kind: "LeaseKeepAlive", leaseIds: [lease, other] },
        ],
      },
      { body: { kind: "LeaseRevoke", leaseId: 999_999 }, variants: [{ kind: "LeaseRevoke", leaseId: other }] },
      {
        body: { kind: "LockAcquire", name: "Y", leaseId: lease, wait: false },
        variants: [
          { kind: "LockAcquire", name: "Z", leaseId: lease, wait: false },
          { kind: "LockAcquire", name: "Y", leaseId: other, wait: false },
          { kind: "LockAcquire", name: "Y", leaseId: lease, wait: true },
        ],
      },
      {
        body: { kind: "LockRelease", name: "never-held", token: 77 },
        variants: [
          { kind: "LockRelease", name: "X", token: 77 },
          { kind: "LockRelease", name: "never-held", token },
        ],
      },
      {
        body: { kind: "ElectionCampaign", name: "F", leaseId: lease, value: "a" },
        variants: [
          { kind: "ElectionCampaign", name: "G", leaseId: lease, value: "a" },
          { kind: "ElectionCampaign", name: "F", leaseId: other, value: "a" },
          { kind: "ElectionCampaign", name: "F", leaseId: lease, value: "b" },
        ],
      },
      {
        body: { kind: "ElectionProclaim", name: "E", token: electionToken, value: "v2" },
        variants: [
          { kind: "ElectionProclaim", name: "E", token: electionToken, value: "v3" },
          { kind: "ElectionProclaim", name: "E", token: electionToken + 1, value: "v2" },
          { kind: "ElectionProclaim", name: "E2", token: electionToken, value: "v2" },
        ],
      },
      {
        body: { kind: "ElectionResign", name: "nobody", token: 5 },
        variants: [
          { kind: "ElectionResign", name: "E", token: 5 },
          { kind: "ElectionResign", name: "nobody", token: electionToken },
        ],
      },
      {
        body: { kind: "WaitCancel", table: "lock", name: "Q", leaseId: 999 },
        variants: [
          { kind: "WaitCancel", table: "election", name: "Q", leaseId: 999 },
          { kind: "WaitCancel", table: "lock", name: "Q", leaseId: other },
          { kind: "WaitCancel", table: "lock", name: "R", leaseId: 999 },
        ],
      },
    ];
  }

  it("for every mutating command: same arguments replay, any other argument (or kind) is STALE_SEQUENCE and changes nothing", () => {
    const probe = new Driver();
    const all = cases(world(probe));
    for (const [i, { body, variants }] of all.entries()) {
      const d = new Driver();
      cases(world(d)); // the same world: ids and tokens are deterministic
      const first = d.send("u", 6, body);
      assert.equal(first.replayed, false);
      const replay = d.send("u", 6, body);
      assert.equal(replay.replayed, true, `${body.kind}: the same request replays`);
      const strip = ({ index: _i, events: _e, replayed: _r, ...rest }: ApplyResult) => rest;
      assert.deepEqual(strip(replay), strip(first), `${body.kind}: the stored result`);
      // Other commands' bodies under this seq are mismatches too (a reused seq for another kind).
      const others = all.filter((_, j) => j !== i).map((c) => c.body);
      for (const variant of [...variants, ...others]) {
        const before = tables(d);
        const r = d.send("u", 6, variant);
        const what = `${body.kind} then ${JSON.stringify(variant)}`;
        assert.ok(!r.ok, what);
        assert.equal(r.code, "STALE_SEQUENCE", what);
        assert.match(r.message, /^seq 6 was first applied to a request with other arguments; this one differs/, what);
        assert.equal(r.replayed, false, what);
        assert.deepEqual(r.events, [], what);
        assert.deepEqual(tables(d), before, `${what}: nothing changed`);
      }
      assert.equal(d.send("u", 6, body).replayed, true, `${body.kind}: the first request still replays after the refusals`);
      assert.equal(d.send("u", 7, variants[0] as ClientBody).replayed, false, "the next seq is a new request");
    }
  });

  it("the issue's cases: Acquire of Y under X's seq, Release of a never-held lock under a used seq", () => {
    const d = new Driver();
    const lease = d.grant("c");
    const x = d.acquire("c", "X", lease); // seq 2
    const y = d.send("c", 2, { kind: "LockAcquire", name: "Y", leaseId: lease, wait: true });
    assert.ok(!y.ok && y.code === "STALE_SEQUENCE", JSON.stringify(y));
    assert.equal(d.machine.lockStatus("Y").state, "FREE", "Y is free, and the caller was not told otherwise");
    assert.equal(d.machine.lockStatus("X").holder?.token, Driver.token(x));
    d.client("c", { kind: "LockRelease", name: "X", token: Driver.token(x) }); // seq 3
    const never = d.send("c", 3, { kind: "LockRelease", name: "never-held", token: Driver.token(x) });
    assert.ok(!never.ok && never.code === "STALE_SEQUENCE", "not released: true for a lock it never held");
  });

  it("the server's fields do not make another request: a redrawn lease id or a changed admin bit still replays", () => {
    const d = new Driver();
    const first = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 5_000, leaseId: 41, identity: "alice" });
    const redrawn = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 5_000, leaseId: 42, identity: "alice", admin: true });
    assert.equal(redrawn.replayed, true);
    assert.ok(first.ok && redrawn.ok && redrawn.kind === "LeaseGrant" && redrawn.leaseId === 41);
  });

  it("another identity under the same client id has its own session: it never sees alice's result", () => {
    const d = new Driver();
    const alice = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 5_000, leaseId: 41, identity: "alice" });
    const bob = d.send("c", 1, { kind: "LeaseGrant", ttlMs: 5_000, leaseId: 42, identity: "bob" });
    assert.equal(bob.replayed, false);
    assert.ok(alice.ok && bob.ok && bob.kind === "LeaseGrant" && bob.leaseId === 42, "bob got a lease of his own");
    const bobLater = d.send("c", 2, { kind: "LeaseRevoke", leaseId: 41, identity: "bob" });
    assert.ok(!bobLater.ok && bobLater.code === "PERMISSION_DENIED", "applied as bob's request, not replayed as alice's");
  });

  it("a restored replica refuses the same mismatches (the digest is in the snapshot)", () => {
    const d = new Driver();
    const lease = d.grant("c");
    d.acquire("c", "X", lease);
    const twin = new Driver(DEFAULT_STATE_CONFIG, LockStateMachine.restore(d.machine.snapshot()));
    assert.equal(twin.machine.stateHash(), d.machine.stateHash());
    for (const driver of [d, twin]) {
      const r = driver.send("c", 2, { kind: "LockAcquire", name: "Y", leaseId: lease, wait: true });
      assert.ok(!r.ok && r.code === "STALE_SEQUENCE");
      assert.equal(driver.send("c", 2, { kind: "LockAcquire", name: "X", leaseId: lease, wait: true }).replayed, true);
    }
  });

  it("a version 2 image (no digests) restores: its sessions replay their last seq as before, until the next command", () => {
    const d = new Driver();
    const lease = d.grant("c");
    const x = d.acquire("c", "X", lease); // seq 2
    const image = JSON.parse(new TextDecoder().decode(d.machine.snapshot())) as { v: number; sessions: Record<string, unknown>[] };
    assert.equal(image.v, 4);
    image.v = 2;
    for (const s of image.sessions) delete s["digest"];
    const old = new Driver(DEFAULT_STATE_CONFIG, LockStateMachine.restore(new TextEncoder().encode(JSON.stringify(image))));
    assert.deepEqual(
      decodeImage(old.machine.snapshot()).sessions.map((s) => s.digest),
      [null],
    );
    const legacy = old.send("c", 2, { kind: "LockAcquire", name: "Y", leaseId: lease, wait: true });
    assert.equal(legacy.replayed, true, "documented: a session from before digests cannot tell");
    assert.equal(Driver.token(legacy), Driver.token(x));
    old.send("c", 3, { kind: "LockRelease", name: "X", token: Driver.token(x) });
    const now = old.send("c", 3, { kind: "LockRelease", name: "Y", token: Driver.token(x) });
    assert.ok(!now.ok && now.code === "STALE_SEQUENCE", "from its next command on, the session has a digest");
    const reread = LockStateMachine.restore(old.machine.snapshot());
    assert.match(decodeImage(reread.snapshot()).sessions[0]?.digest ?? "", /^[0-9a-f]{32}$/);
  });

  it("a snapshot with a malformed digest is refused as corruption", () => {
    const d = new Driver();
    d.grant("c");
    const image = JSON.parse(new TextDecoder().decode(d.machine.snapshot())) as { sessions: Record<string, unknown>[] };
    for (const bad of ["xyz", 5, "F".repeat(32), undefined]) {
      const copy = structuredClone(image);
      for (const s of copy.sessions) s["digest"] = bad;
      assert.throws(() => LockStateMachine.restore(new TextEncoder().encode(JSON.stringify(copy))), /digest/);
    }
  });
});
