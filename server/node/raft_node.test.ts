import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import type { ConfChange } from "../core/conf_change.ts";
import type { ConfState } from "../core/types.ts";
import type { ClientCommand } from "../state/commands.ts";
import type { StateEvent } from "../state/results.ts";
import type { SubmitOutcome } from "./node_api.ts";
import { NodeCluster } from "../../testing/kits/node_test_cluster.ts";

function applied(o: SubmitOutcome): Record<string, unknown> {
  assert.equal(o.kind, "applied", JSON.stringify(o));
  if (o.kind !== "applied") throw new Error("unreachable");
  assert.ok(o.result.ok, JSON.stringify(o.result));
  return o.result as unknown as Record<string, unknown>;
}

async function electedCluster(): Promise<NodeCluster> {
  const c = new NodeCluster(["a", "b", "c"]);
  c.advance(600);
  assert.ok(c.leader(), "no leader elected");
  return c;
}

describe("RaftNode", () => {
  it("a membership precondition is asked when the change is proposed, against the configuration it applies to", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const follower = [...c.nodes.values()].find((n) => n !== leader)!.id;
    const remove: ConfChange = { kind: "enterJoint", changes: [{ op: "removeNode", nodeId: follower, witness: false }], autoLeave: true };
    const asked: ConfState[] = [];
    const memberRule = (cs: ConfState): string | null => {
      asked.push(cs);
      return cs.voters.includes(follower) ? null : `${follower} is not a member`;
    };
    const first = leader.changeMembership(remove, memberRule);
    assert.equal(asked.length, 1);
    assert.ok(asked[0]?.voters.includes(follower));
    // While that change is in the log, a second is the core's to refuse; the rule is not asked
    // against a configuration the pending change is about to replace.
    const second = await leader.changeMembership(remove, memberRule);
    assert.equal(second.kind, "refused");
    if (second.kind === "refused") assert.match(second.reason, /not yet applied/);
    assert.equal(asked.length, 1);
    assert.equal((await c.settle(first)).kind, "ok");
    c.advance(500); // the automatic leaveJoint
    assert.deepEqual(leader.status().confState.votersOutgoing, []);
    const third = await leader.changeMembership(remove, memberRule);
    assert.deepEqual(third, { kind: "refused", reason: `${follower} is not a member` });
    assert.equal(asked.length, 2);
    assert.ok(!asked[1]?.voters.includes(follower), "asked against the configuration after the first change");
    const lastIndex = leader.status().lastIndex;
    c.advance(200);
    assert.equal(leader.status().lastIndex, lastIndex, "a refused change proposes nothing");
  });

  it("backgroundWrites: inputs wait while the leader's write is in flight, no pass is asked for meanwhile, and its return finishes it", async () => {
    const c = new NodeCluster(["a", "b", "c"], 1000, { backgroundWrites: true });
    c.advance(600);
    const leader = c.leader();
    assert.ok(leader, "no leader elected with background writes");
    const id = leader.id;
    c.releaseWrites();
    const lastIndex = leader.status().lastIndex;
    const first = leader.submit({ kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 5000 });
    leader.process(); // proposes, sends the append, parks: its write is in flight
    assert.equal(leader.status().lastIndex, lastIndex + 1);
    assert.equal(c.heldWrites.get(id)?.length, 1, "the write runs in the background");
    const asked = c.processRequests.get(id);
    const second = leader.submit({ kind: "LeaseGrant", clientId: "y", seq: 1, ttlMs: 5000 });
    leader.tick();
    leader.process();
    assert.equal(leader.status().lastIndex, lastIndex + 1, "the second proposal waits for the write");
    assert.equal(c.processRequests.get(id), asked, "no pass asked for while the write is in flight (no spin)");
    assert.equal(c.releaseWrites(id), 1);
    assert.equal(c.processRequests.get(id), (asked ?? 0) + 1, "its return asks for the pass");
    leader.process();
    assert.equal(leader.status().lastIndex, lastIndex + 2, "the held proposal went in after the write");
    const outcomes = [await c.settle(first), await c.settle(second)];
    for (const o of outcomes) applied(o);
    assert.equal((await leader.transferLeader("nobody")).kind, "refused");
  });

  it("backgroundWrites: the inputs held meanwhile are bounded, each kind on its own (clients overloaded past pendingMax, peer messages dropped past theirs) and ticks fold into one", async () => {
    const c = new NodeCluster(["a", "b", "c"], 1000, { backgroundWrites: true, pendingMax: 3 });
    c.advance(600);
    const leader = c.leader();
    assert.ok(leader, "no leader elected with background writes");
    c.releaseWrites();
    void leader.submit({ kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 5000 });
    leader.process(); // parked, its write in flight
    assert.equal(c.heldWrites.get(leader.id)?.length, 1);
    for (let i = 0; i < 5; i++) leader.tick();
    assert.equal(leader.heldInputs().held, 1, "five ticks while held are one");
    for (const clientId of ["y", "z", "w"]) void leader.submit({ kind: "LeaseGrant", clientId, seq: 1, ttlMs: 5000 });
    assert.equal(leader.heldInputs().held, 4, "the held tick does not count against pendingMax");
    const refused = await leader.submit({ kind: "LeaseGrant", clientId: "v", seq: 1, ttlMs: 5000 });
    assert.equal(refused.kind, "overloaded", JSON.stringify(refused));
    if (refused.kind === "overloaded") assert.match(refused.reason, /waiting for this member's write/);
    const read = await leader.read((m) => m.appliedIndex());
    assert.equal(read.kind, "overloaded");
    leader.tick();
    assert.equal(leader.heldInputs().held, 4, "a tick is still held (folded) with the clients' bound reached");
    const follower = [...c.nodes.values()].find((n) => n !== leader);
    assert.ok(follower);
    const term = leader.status().term;
    // Requests filling their bound must not crowd out the followers' acknowledgements (a loaded
    // leader would otherwise miss its quorum and step down): peer messages have their own bound.
    for (let i = 0; i < 1024; i++) leader.receive({ kind: "heartbeatResponse", from: follower.id, to: leader.id, term, readContext: 0 });
    assert.deepEqual(leader.heldInputs(), { held: 4 + 1024, heldPeerMessages: 1024, peerMessagesDropped: 0 });
    leader.receive({ kind: "heartbeatResponse", from: follower.id, to: leader.id, term, readContext: 0 });
    assert.deepEqual(
      leader.heldInputs(),
      { held: 4 + 1024, heldPeerMessages: 1024, peerMessagesDropped: 1 },
      "past its bound a peer message is dropped",
    );
    c.releaseWrites(leader.id);
    leader.process();
    assert.deepEqual(leader.heldInputs(), { held: 0, heldPeerMessages: 0, peerMessagesDropped: 1 }, "all held inputs ran after the write");
    assert.equal(leader.status().role, "leader");

    // The byte bound: a stale rival's big appends behind a stalled write are held one at a time.
    void leader.submit({ kind: "LeaseGrant", clientId: "u", seq: 1, ttlMs: 5000 });
    leader.process();
    assert.equal(c.heldWrites.get(leader.id)?.length, 1, "a write in flight again");
    const entry = { term: 1, index: 1, type: "normal" as const, data: new Uint8Array(40 * 1024 * 1024) };
    const stale = {
      kind: "append" as const,
      from: follower.id,
      to: leader.id,
      term: 0,
      prevIndex: 0,
      prevTerm: 0,
      entries: [entry],
      commit: 0,
      witnessFloor: 0,
    };
    const heldBefore = leader.heldInputs().held;
    leader.receive(stale);
    leader.receive(stale);
    assert.deepEqual(
      leader.heldInputs(),
      { held: heldBefore + 1, heldPeerMessages: 1, peerMessagesDropped: 2 },
      "40 MiB + 40 MiB is past the byte bound",
    );
    c.releaseWrites(leader.id);
    leader.process();
    assert.equal(leader.status().role, "leader");
  });

  it("an answered proposal, read or renewal leaves no abort listener on its signal, and an abort after the answer changes nothing", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const controller = new AbortController();
    const signal = controller.signal;
    const lease = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 5000 }, { signal })));
    const read = await c.settle(leader.read((m) => m.appliedIndex(), { signal }));
    assert.equal(read.kind, "read");
    const renewal = await c.settle(
      leader.submit({ kind: "LeaseKeepAlive", clientId: "x", seq: 2, leaseIds: [lease["leaseId"] as number] }, { signal }),
    );
    assert.equal(renewal.kind, "applied", JSON.stringify(renewal));
    assert.equal(getEventListeners(signal, "abort").length, 0, "a listener outlived its answer");
    // The next proposal (another call, no signal) must not be touched by this signal's abort.
    const next = leader.submit({ kind: "LeaseGrant", clientId: "y", seq: 1, ttlMs: 5000 });
    controller.abort();
    applied(await c.settle(next));
  });

  it("grants a lease and a lock with a token, and answers a retry with the same token", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const lease = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 5000 })));
    const leaseId = lease["leaseId"] as number;
    const acquire: ClientCommand = { kind: "LockAcquire", clientId: "x", seq: 2, name: "db", leaseId, wait: false };
    const first = applied(await c.settle(leader.submit(acquire)));
    assert.equal(first["status"], "granted");
    const retry = await c.settle(leader.submit(acquire));
    assert.equal(retry.kind, "applied");
    if (retry.kind === "applied") {
      assert.equal(retry.result.replayed, true);
      assert.equal((retry.result as unknown as Record<string, unknown>)["token"], first["token"]);
    }
  });

  it("a full queue of pending requests answers overloaded with the retry-after hint, proposes nothing, and frees with the commits", async () => {
    const c = new NodeCluster(["a", "b", "c"], 1000, { pendingMax: 2, overloadRetryAfterMs: 75 });
    c.advance(600);
    const leader = c.leader();
    assert.ok(leader, "no leader elected");
    const lastIndexBefore = leader.status().lastIndex;
    const first = leader.submit({ kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 5000 });
    const second = leader.submit({ kind: "LeaseGrant", clientId: "y", seq: 1, ttlMs: 5000 });
    const third = await leader.submit({ kind: "LeaseGrant", clientId: "z", seq: 1, ttlMs: 5000 });
    assert.equal(third.kind, "overloaded");
    assert.ok(
      third.kind === "overloaded" && third.retryAfterMs === 75 && /2 requests are waiting/.test(third.reason),
      JSON.stringify(third),
    );
    const read = await leader.read((m) => m.appliedIndex());
    assert.equal(read.kind, "overloaded", "a read takes a slot too");
    assert.equal(leader.status().lastIndex, lastIndexBefore + 2, "the refused request was never proposed");
    applied(await c.settle(first));
    applied(await c.settle(second));
    applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "z", seq: 1, ttlMs: 5000 })));
  });

  it("a follower answers notLeader with the leader's address", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    const o = await c.settle(follower.submit({ kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 5000 }));
    assert.equal(o.kind, "notLeader");
    if (o.kind === "notLeader") assert.equal(o.hint?.leaderId, leader.id);
  });

  it("passes a lock to the FIFO waiter with a higher token on release; reads are linearizable", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const events: StateEvent[] = [];
    leader.subscribe((evs) => events.push(...evs));
    const l1 = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "p", seq: 1, ttlMs: 5000 })));
    const l2 = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "q", seq: 1, ttlMs: 5000 })));
    const a = applied(
      await c.settle(
        leader.submit({ kind: "LockAcquire", clientId: "p", seq: 2, name: "n", leaseId: l1["leaseId"] as number, wait: true }),
      ),
    );
    const b = applied(
      await c.settle(
        leader.submit({ kind: "LockAcquire", clientId: "q", seq: 2, name: "n", leaseId: l2["leaseId"] as number, wait: true }),
      ),
    );
    assert.equal(b["status"], "queued");
    applied(await c.settle(leader.submit({ kind: "LockRelease", clientId: "p", seq: 3, name: "n", token: a["token"] as number })));
    const grant = events.find((e) => e.kind === "granted" && e.leaseId === l2["leaseId"]);
    assert.ok(grant && grant.kind === "granted" && grant.token > (a["token"] as number));
    const read = await c.settle(leader.read((m) => m.lockStatus("n")));
    assert.equal(read.kind, "read");
    if (read.kind === "read") assert.equal(read.value.holder?.leaseId, l2["leaseId"]);
  });

  it("expires an unrenewed lease, holds the lock through lock-delay, then grants the waiter", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const events: { e: StateEvent; atMs: number }[] = [];
    leader.subscribe((evs) => events.push(...evs.map((e) => ({ e, atMs: c.nowMs }))));
    const l1 = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "p", seq: 1, ttlMs: 1000 })));
    const l2 = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "q", seq: 1, ttlMs: 60000 })));
    applied(
      await c.settle(
        leader.submit({ kind: "LockAcquire", clientId: "p", seq: 2, name: "n", leaseId: l1["leaseId"] as number, wait: true }),
      ),
    );
    const startMs = c.nowMs;
    applied(
      await c.settle(
        leader.submit({ kind: "LockAcquire", clientId: "q", seq: 2, name: "n", leaseId: l2["leaseId"] as number, wait: true }),
      ),
    );
    c.advance(3000);
    const gone = events.find((x) => x.e.kind === "leaseGone");
    const granted = events.find((x) => x.e.kind === "granted" && x.e.leaseId === l2["leaseId"]);
    assert.ok(gone, "lease never expired");
    assert.ok(granted, "waiter never granted");
    // TTL*(1+rho) = 1010 ms, then lock-delay 1000 ms; never earlier, and within a few ticks after.
    assert.ok(gone.atMs - startMs >= 1000, `expired after ${gone.atMs - startMs} ms`);
    assert.ok(granted.atMs - gone.atMs >= 1000, `granted ${granted.atMs - gone.atMs} ms after expiry`);
    assert.ok(granted.atMs - startMs <= 2000 + 200, `granted only after ${granted.atMs - startMs} ms`);
  });

  it("after the leader dies a new leader restarts every lease at full length before expiring it", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const lease = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "p", seq: 1, ttlMs: 2000 })));
    c.advance(1500);
    c.kill(leader.id);
    c.advance(600);
    const next = c.leader();
    assert.ok(next && next.id !== leader.id, "no new leader");
    const leaseId = lease["leaseId"] as number;
    const ttl = await c.settle(next.read((m) => m.leaseTimeToLive(leaseId)));
    assert.equal(ttl.kind, "read");
    if (ttl.kind === "read") assert.ok(ttl.value && ttl.value.remainingMs > 1500, JSON.stringify(ttl.value));
  });

  it("tells restore listeners when a lagging member catches up by InstallSnapshot (its entries emit no events)", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const lease = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "p", seq: 1, ttlMs: 60000 })));
    const leaseId = lease["leaseId"] as number;
    const lagging = [...c.nodes.values()].find((n) => n !== leader)!;
    c.advance(100);
    c.kill(lagging.id);
    // More entries than snapshotEveryEntries (50): the leader compacts past what the lagging member holds.
    const got = applied(await c.settle(leader.submit({ kind: "LockAcquire", clientId: "p", seq: 2, name: "k", leaseId, wait: false })));
    for (let seq = 3; seq < 70; seq++)
      applied(await c.settle(leader.submit({ kind: "LeaseKeepAlive", clientId: "p", seq, leaseIds: [leaseId] })));
    assert.ok((leader.status().appliedIndex ?? 0) > 60);
    const restarted = c.start(lagging.id);
    const restores: { index: number; holder: number | null }[] = [];
    const events: StateEvent[] = [];
    restarted.subscribe(
      (evs) => events.push(...evs),
      (machine, index) => restores.push({ index, holder: machine.lockStatus("k").holder?.token ?? null }),
    );
    c.advance(300);
    assert.equal(restores.length, 1, "no restore notification");
    assert.ok(restores[0]!.index >= 50, JSON.stringify(restores));
    // The grant is in the snapshot: no event for it, the restored machine shows it.
    assert.equal(restores[0]!.holder, got["token"]);
    assert.ok(!events.some((e) => e.kind === "granted"), "the grant was not covered by the snapshot");
    assert.equal(restarted.stateMachine().stateHash(), c.leader()!.stateMachine().stateHash());
  });

  it("a restarted node rebuilds its state machine from its own disk", async () => {
    const c = await electedCluster();
    const leader = c.leader()!;
    const lease = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId: "p", seq: 1, ttlMs: 60000 })));
    applied(
      await c.settle(
        leader.submit({ kind: "LockAcquire", clientId: "p", seq: 2, name: "k", leaseId: lease["leaseId"] as number, wait: false }),
      ),
    );
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    c.advance(100);
    c.kill(follower.id);
    const restarted = c.start(follower.id);
    c.advance(200);
    assert.equal(restarted.stateMachine().stateHash(), c.leader()!.stateMachine().stateHash());
    assert.equal(restarted.stateMachine().lockStatus("k").state, "HELD");
  });
});

describe("RaftNode renewal coalescing (renewal_batch.ts)", () => {
  async function withLeases(coalesceTicks: number | undefined, clients: readonly string[]) {
    const c = new NodeCluster(["a", "b", "c"], 1000, coalesceTicks === undefined ? {} : { renewalCoalesceTicks: coalesceTicks });
    c.advance(600);
    const leader = c.leader();
    assert.ok(leader, "no leader elected");
    const leases = new Map<string, number>();
    for (const clientId of clients) {
      const grant = applied(await c.settle(leader.submit({ kind: "LeaseGrant", clientId, seq: 1, ttlMs: 5000 })));
      leases.set(clientId, grant["leaseId"] as number);
    }
    return { c, leader, leases };
  }

  it("KeepAlives of many clients within a heartbeat interval go into ONE entry; each caller gets its own answer", async () => {
    const clients = ["p", "q", "r", "s"];
    const { c, leader, leases } = await withLeases(3, clients);
    const before = leader.status().lastIndex;
    const pending = clients.map((clientId) =>
      leader.submit({ kind: "LeaseKeepAlive", clientId, seq: 2, leaseIds: [leases.get(clientId)!, 999_999] }),
    );
    c.pump();
    assert.equal(leader.status().lastIndex, before, "a renewal was proposed before its interval ended");
    const outcomes = await Promise.all(pending.map((p) => c.settle(p)));
    assert.equal(leader.status().lastIndex, before + 1, "the four renewals took more than one entry");
    const indexes = new Set<number>();
    outcomes.forEach((o, i) => {
      const r = applied(o);
      indexes.add(r["index"] as number);
      assert.equal(r["kind"], "LeaseKeepAlive");
      assert.equal(r["replayed"], false);
      const renewed = r["renewed"] as { leaseId: number }[];
      assert.deepEqual(
        renewed.map((x) => x.leaseId),
        [leases.get(clients[i]!)],
      );
      assert.deepEqual(r["failed"], [{ leaseId: 999_999, code: "LEASE_NOT_FOUND" }]);
    });
    assert.deepEqual([...indexes], [before + 1]);
    // Each renewal kept its own session: a retry of (client, seq 2) replays the stored answer.
    const retry = applied(
      await c.settle(leader.submit({ kind: "LeaseKeepAlive", clientId: "q", seq: 2, leaseIds: [leases.get("q")!, 999_999] })),
    );
    assert.equal(retry["replayed"], true);
    // Every replica applied the same renewals.
    const hashes = new Set([...c.nodes.values()].map((n) => n.stateMachine().stateHash()));
    assert.equal(hashes.size, 1);
  });

  it("with coalescing off (0 ticks) each KeepAlive is its own entry, proposed at once", async () => {
    const clients = ["p", "q", "r"];
    const { c, leader, leases } = await withLeases(0, clients);
    const before = leader.status().lastIndex;
    const pending = clients.map((clientId) =>
      leader.submit({ kind: "LeaseKeepAlive", clientId, seq: 2, leaseIds: [leases.get(clientId)!] }),
    );
    assert.equal(leader.status().lastIndex, before + 3);
    for (const p of pending) assert.equal((applied(await c.settle(p))["renewed"] as unknown[]).length, 1);
  });

  it("queued renewals count towards pendingMax, and a stopped leader answers them not-leader (never proposed)", async () => {
    const c = new NodeCluster(["a", "b", "c"], 1000, { pendingMax: 2, renewalCoalesceTicks: 50 });
    c.advance(600);
    const leader = c.leader();
    assert.ok(leader, "no leader elected");
    const first = leader.submit({ kind: "LeaseKeepAlive", clientId: "x", seq: 1, leaseIds: [1] });
    const second = leader.submit({ kind: "LeaseKeepAlive", clientId: "y", seq: 1, leaseIds: [2] });
    const third = await leader.submit({ kind: "LeaseKeepAlive", clientId: "z", seq: 1, leaseIds: [3] });
    assert.equal(third.kind, "overloaded");
    const lastIndex = leader.status().lastIndex;
    leader.stop();
    assert.equal((await first).kind, "notLeader");
    assert.equal((await second).kind, "notLeader");
    assert.equal(leader.status().lastIndex, lastIndex, "nothing was proposed");
  });

  it("a cancelled renewal's caller hears outcome-unknown at once; the others of its batch are answered", async () => {
    const { c, leader, leases } = await withLeases(3, ["p", "q"]);
    const abort = new AbortController();
    const cancelled = leader.submit(
      { kind: "LeaseKeepAlive", clientId: "p", seq: 2, leaseIds: [leases.get("p")!] },
      { signal: abort.signal },
    );
    const kept = leader.submit({ kind: "LeaseKeepAlive", clientId: "q", seq: 2, leaseIds: [leases.get("q")!] });
    abort.abort();
    assert.equal((await cancelled).kind, "outcomeUnknown");
    assert.equal((applied(await c.settle(kept))["renewed"] as unknown[]).length, 1);
  });
});
