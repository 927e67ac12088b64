// The core bugs the simulator's membership churn found (testing/sim/README.md, "Core issues found
// by churn"), each replayed by hand on a tiny synchronous cluster whose message delivery the test
// controls: which messages are dropped, held back and delivered late. Each test fails on the core
// before its fix.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bootstrapState } from "./bootstrap.ts";
import type { ConfChange } from "./conf_change.ts";
import { makeRaftConfig } from "./config.ts";
import type { Message } from "./messages.ts";
import { SeededRandom } from "./random.ts";
import { RaftCore } from "./raft.ts";
import { EMPTY_PERSISTED_STATE, type NodeId, type PersistedState } from "./types.ts";
import { ReadyLoop, type ReadyStorage } from "../node/ready_loop.ts";
import { MemoryDisk, MemoryStorage } from "../storage/memory_storage.ts";

/**
 * Synchronous cores with nothing on disk, each driven by the production Ready loop
 * (server/node/ready_loop.ts): a Ready is "persisted" by a save that keeps nothing, its messages
 * go to the outbox, and `deliver` hands them over unless `drop` says otherwise. A node that is
 * down receives nothing and does not tick. Compactions are the tests' own calls.
 */
class Net {
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly down = new Set<NodeId>();
  /** Return true to lose a message. */
  drop: (m: Message) => boolean = () => false;
  readonly sent: Message[] = [];
  private outbox: Message[] = [];
  private readonly loops = new Map<NodeId, ReadyLoop>();
  private readonly random = new SeededRandom(7);

  /** A node; with `storage`, its Readies are persisted there (a restart is an add() from its load()). */
  add(id: NodeId, state: PersistedState, storage: ReadyStorage = { save: () => {}, saveSnapshotAndCompact: () => {} }): RaftCore {
    const core = new RaftCore(makeRaftConfig({ id, random: this.random.fork(), appliedIndex: 0 }), state);
    this.nodes.set(id, core);
    const loop = new ReadyLoop({
      core,
      storage,
      transport: {
        send: (messages) => {
          this.outbox.push(...messages);
          this.sent.push(...messages);
        },
      },
      applier: { restoreSnapshot: () => {}, applyEntry: () => {}, afterAdvance: () => {} },
      readiesPerPassMax: 1000,
    });
    this.loops.set(id, loop);
    return core;
  }

  node(id: NodeId): RaftCore {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Runs every live node's Ready loop until it is quiet (its messages go to the outbox). */
  flush(): void {
    for (const [id, loop] of this.loops) {
      if (this.down.has(id)) continue;
      while (loop.process() > 0);
    }
  }

  /** Takes the outbox (after a flush) without delivering it. */
  take(): Message[] {
    this.flush();
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  deliver(m: Message): void {
    if (this.down.has(m.to) || this.drop(m)) return;
    this.nodes.get(m.to)?.step(m);
  }

  stabilize(roundsMax = 200): void {
    for (let i = 0; i < roundsMax; i++) {
      const out = this.take();
      if (out.length === 0) return;
      for (const m of out) this.deliver(m);
    }
  }

  tick(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const [id, core] of this.nodes) if (!this.down.has(id)) core.tick();
      this.stabilize();
    }
  }

  leader(): RaftCore | undefined {
    return [...this.nodes.entries()].find(([id, n]) => !this.down.has(id) && n.status().role === "leader")?.[1];
  }

  propose(leader: NodeId, cc: ConfChange): number {
    const r = this.node(leader).proposeConfChange(cc);
    assert.ok(r.ok, JSON.stringify(r));
    return r.index;
  }
}

const single = (op: "addVoter" | "addLearner" | "removeNode", nodeId: NodeId, witness = false) => ({ op, nodeId, witness });

describe("core issues found by membership churn", () => {
  it("issue 1: a member started with an empty disk learns the bootstrap configuration from the index-0 snapshot", () => {
    // {a,b,c} bootstrapped; the leader has never compacted (its snapshot is the bootstrap one at
    // index 0). d starts with an EMPTY disk, joins as a learner and is promoted.
    const net = new Net();
    for (const id of ["a", "b", "c"]) net.add(id, bootstrapState(["a", "b", "c"]));
    const d = net.add("d", EMPTY_PERSISTED_STATE);
    net.node("a").campaign();
    net.stabilize();
    for (let i = 0; i < 3; i++) assert.ok(net.node("a").propose(new Uint8Array([i])).ok);
    net.stabilize();
    net.propose("a", { kind: "simple", change: single("addLearner", "d") });
    net.stabilize();
    const restored = net.sent.filter((m) => m.kind === "snapshot" && m.to === "d");
    assert.ok(
      restored.length > 0 && restored.every((m) => m.kind === "snapshot" && m.snapshot.metadata.index === 0),
      "d got no index-0 snapshot",
    );
    assert.deepEqual(d.status().confState, net.node("a").status().confState, "d does not know the configuration");
    net.propose("a", { kind: "enterJoint", changes: [single("addVoter", "d")], autoLeave: true });
    net.stabilize();
    assert.deepEqual(d.status().confState.voters, ["a", "b", "c", "d"]);
    assert.equal(d.status().commit, net.node("a").status().commit);
    // Cut off, d campaigns in the configuration the others have: it cannot win alone.
    net.drop = (m) => m.from === "d" || m.to === "d";
    net.tick(60);
    assert.notEqual(d.status().role, "leader", "d elected itself alone");
    assert.equal(net.leader()?.id, "a");
  });

  it("issue 2: a witness ignores a floor computed before a membership change it has applied", () => {
    // Site A = a (leader), B = b, C = w (the witness). A heartbeat's floor, computed while every
    // full member held the whole log, is delayed past the addition of learner x, which holds
    // nothing; the witness must not truncate past x's match on it.
    const net = new Net();
    const boot = bootstrapState(["a", "b", "w"], ["w"]);
    for (const id of ["a", "b", "w"]) net.add(id, boot);
    net.add("x", EMPTY_PERSISTED_STATE);
    net.drop = (m) => m.to === "x" || m.from === "x"; // x is cut off: it holds nothing
    const a = net.node("a");
    const w = net.node("w");
    a.campaign();
    net.stabilize();
    for (let i = 0; i < 5; i++) assert.ok(a.propose(new Uint8Array([i])).ok);
    net.stabilize();
    a.tick();
    const beat = net.take();
    const stale = beat.filter((m) => m.kind === "heartbeat" && m.to === "w");
    assert.ok(stale.length === 1 && stale[0]?.kind === "heartbeat" && stale[0].witnessFloor >= 6, "no floor to hold back");
    for (const m of beat) if (!stale.includes(m)) net.deliver(m);
    net.stabilize();
    const join = net.propose("a", { kind: "simple", change: single("addLearner", "x") });
    net.stabilize();
    assert.ok(w.status().applied >= join && w.status().confState.learners.includes("x"), "w did not apply the change");
    for (const m of stale) net.deliver(m); // the old floor arrives late
    net.stabilize();
    const marker = w.compactWitnessLog();
    assert.equal(marker, null, `w truncated up to ${marker?.metadata.index} while learner x holds nothing`);
    assert.equal(w.status().firstIndex, 1);
    // Once x holds the log, the leader's current floors let w truncate again.
    net.drop = () => false;
    net.tick(3);
    assert.ok((w.compactWitnessLog()?.metadata.index ?? 0) >= join, "w never truncated again");
  });

  it("issue 4: a witness that joins after the leader compacted can still bring a lagging full voter up when site A is lost", () => {
    // Site A = a (leader), B = b, C = w. b is cut off and lags; a commits with w and compacts.
    // Then w is replaced by w2 (empty disk, caught up while b is still cut off), w is retired and
    // site A is lost. b and w2 must make progress: w2 has to hold what b lacks.
    const net = new Net();
    const boot = bootstrapState(["a", "b", "w"], ["w"]);
    for (const id of ["a", "b", "w"]) net.add(id, boot);
    net.add("w2", EMPTY_PERSISTED_STATE);
    const a = net.node("a");
    const b = net.node("b");
    a.campaign();
    net.stabilize();
    net.drop = (m) => m.to === "b" || m.from === "b";
    for (let i = 0; i < 20; i++) assert.ok(a.propose(new Uint8Array([i])).ok);
    net.stabilize();
    const bLast = b.status().lastIndex;
    assert.ok(a.status().commit >= bLast + 20, "a did not commit with w while b lagged");
    net.flush();
    const snap = a.createSnapshot(new Uint8Array([7]));
    assert.equal(snap.metadata.index, a.status().applied);
    net.propose("a", { kind: "simple", change: single("addLearner", "w2", true) });
    net.stabilize();
    net.propose("a", { kind: "enterJoint", changes: [single("addVoter", "w2", true), single("removeNode", "w")], autoLeave: true });
    net.stabilize();
    assert.deepEqual(a.status().confState.voters, ["a", "b", "w2"]);
    assert.deepEqual(a.status().confState.witnesses, ["w2"]);
    const w2 = net.node("w2");
    assert.ok(w2.status().firstIndex <= bLast + 1, `w2's log starts at ${w2.status().firstIndex}, above b's last entry ${bLast}`);
    const committed = a.status().commit;
    net.down.add("w"); // retired
    net.down.add("a"); // site A lost for good
    net.drop = () => false;
    net.tick(200);
    assert.equal(net.leader()?.id, "b", "b never leads: nobody alive holds the entries it lacks");
    assert.ok(b.status().commit > committed, "b did not commit past what a had committed");
  });

  it("issue 4: a follower keeps its log from the floor when it compacts, so as a later leader it can bring a new witness in below a lagging voter", () => {
    // Voters a, b, c and the witness w. c is cut off and lags; a leads and commits with b and w;
    // b, a FOLLOWER, compacts; leadership moves to b; then w is replaced by an empty w2.
    const net = new Net();
    const boot = bootstrapState(["a", "b", "c", "w"], ["w"]);
    for (const id of ["a", "b", "c", "w"]) net.add(id, boot);
    net.add("w2", EMPTY_PERSISTED_STATE);
    const a = net.node("a");
    const b = net.node("b");
    a.campaign();
    net.stabilize();
    net.drop = (m) => m.to === "c" || m.from === "c";
    for (let i = 0; i < 20; i++) assert.ok(a.propose(new Uint8Array([i])).ok);
    net.stabilize();
    net.tick(1); // a heartbeat carries the floor (c's match) to b
    const cLast = net.node("c").status().lastIndex;
    net.flush();
    b.createSnapshot(new Uint8Array([7]));
    assert.ok(b.status().firstIndex <= cLast + 1, `b compacted to ${b.status().firstIndex - 1}, above c's last entry ${cLast}`);
    assert.ok(a.transferLeadership("b").ok);
    net.stabilize();
    assert.equal(net.leader()?.id, "b");
    net.propose("b", { kind: "simple", change: single("addLearner", "w2", true) });
    net.stabilize();
    const w2 = net.node("w2");
    assert.ok(w2.status().firstIndex <= cLast + 1, `w2's log starts at ${w2.status().firstIndex}, above c's last entry ${cLast}`);
    assert.ok(w2.status().lastIndex >= b.status().commit, "w2 did not catch up");
  });

  it("issue 4: a member keeps its log from the floor on disk too, so after a restart it still brings a new witness in below a lagging voter", () => {
    // As above, but b persists to a MemoryStorage, a membership change (learner d, never up)
    // lies between the floor and b's snapshot, and b restarts from its disk after compacting:
    // its log must still start at or below c's last entry (storage keeps it, with the log
    // start's membership), and the w2 it brings in must get the right membership.
    const net = new Net();
    const boot = bootstrapState(["a", "b", "c", "w"], ["w"]);
    const disk = new MemoryDisk();
    MemoryStorage.open(disk).save({ hardState: boot.hardState, snapshot: boot.snapshot, entries: boot.entries });
    for (const id of ["a", "c", "w"]) net.add(id, boot);
    net.add("b", MemoryStorage.open(disk).load(), MemoryStorage.open(disk));
    net.add("w2", EMPTY_PERSISTED_STATE);
    const a = net.node("a");
    a.campaign();
    net.stabilize();
    net.drop = (m) => m.to === "c" || m.from === "c";
    for (let i = 0; i < 10; i++) assert.ok(a.propose(new Uint8Array([i])).ok);
    net.stabilize();
    net.tick(1); // a heartbeat carries the floor (c's match) to b
    const cLast = net.node("c").status().lastIndex;
    net.propose("a", { kind: "simple", change: single("addLearner", "d") });
    for (let i = 0; i < 10; i++) assert.ok(a.propose(new Uint8Array([i])).ok);
    net.stabilize();
    net.flush();
    const before = net.node("b");
    const snap = before.createSnapshot(new Uint8Array([7]));
    MemoryStorage.open(disk).saveSnapshotAndCompact(snap, before.storageLogStart());
    assert.ok(snap.metadata.index > cLast + 2, "b's snapshot does not cover the membership change");
    assert.ok(before.status().firstIndex <= cLast + 1, `b compacted to ${before.status().firstIndex - 1}`);
    const b = net.add("b", MemoryStorage.open(disk).load(), MemoryStorage.open(disk)); // restart
    assert.ok(
      b.status().firstIndex <= cLast + 1,
      `b restarted with its log from ${b.status().firstIndex - 1}, above c's last entry ${cLast}`,
    );
    assert.deepEqual(b.status().confState, before.status().confState);
    assert.ok(a.transferLeadership("b").ok);
    net.stabilize();
    net.tick(3);
    assert.equal(net.leader()?.id, "b");
    net.propose("b", { kind: "simple", change: single("addLearner", "w2", true) });
    net.stabilize();
    const w2 = net.node("w2");
    assert.ok(w2.status().firstIndex <= cLast + 1, `w2's log starts at ${w2.status().firstIndex}, above c's last entry ${cLast}`);
    assert.ok(w2.status().lastIndex >= b.status().commit, "w2 did not catch up");
    assert.deepEqual(w2.status().confState, b.status().confState);
  });

  it("issue 3: a leader that commits its own removal keeps replicating the commit and hands over", () => {
    // {a,b,c}; a leads; d joins as a learner and replaces a in one joint step. The commit of
    // the leave-joint reaches nobody (a's broadcast is lost), then c is lost and a is shut down.
    const net = new Net();
    for (const id of ["a", "b", "c"]) net.add(id, bootstrapState(["a", "b", "c"]));
    net.add("d", bootstrapState(["a", "b", "c"]));
    net.node("a").campaign();
    net.stabilize();
    assert.equal(net.leader()?.id, "a");
    net.propose("a", { kind: "simple", change: single("addLearner", "d") });
    net.stabilize();
    const join = net.propose("a", { kind: "enterJoint", changes: [single("addVoter", "d"), single("removeNode", "a")], autoLeave: true });
    // Everything up to the leave-joint is replicated and acknowledged, but the append that tells
    // b and d the new commit index (the one broadcast the old core sent) is lost.
    net.drop = (m) => m.from === "a" && (m.kind === "timeoutNow" || ((m.kind === "append" || m.kind === "heartbeat") && m.commit > join));
    net.stabilize();
    const a = net.node("a");
    const leaveIndex = a.status().applied;
    assert.ok(leaveIndex > join, "the leave-joint did not commit");
    for (const id of ["b", "d"]) assert.ok(net.node(id).status().lastIndex >= leaveIndex, `${id} lacks the leave-joint`);
    for (const id of ["b", "d"]) assert.ok(net.node(id).status().commit < leaveIndex, `${id} learned the commit`);
    assert.deepEqual(a.status().confState.voters, ["b", "c", "d"]);
    // The fix: a still leads (it counts no more) and keeps sending the commit.
    assert.equal(a.status().role, "leader", "a removed leader stepped down after one broadcast");
    assert.equal(a.propose(new Uint8Array([1])).ok, false, "a removed leader takes no proposal");
    net.drop = () => false;
    net.tick(2); // one heartbeat interval
    for (const id of ["b", "d"])
      assert.ok(net.node(id).status().commit >= leaveIndex, `${id} never learned that the leave-joint committed`);
    // It hands over to a remaining full voter holding its log; the old leader is then shut down.
    net.tick(3);
    const next = net.leader();
    assert.ok(next && next.id !== "a", `no remaining voter leads: ${next?.id}`);
    net.down.add("a");
    net.down.add("c"); // and another member lost: {b, d} must still make progress alone
    net.tick(30);
    const lead = net.leader();
    assert.ok(lead && (lead.id === "b" || lead.id === "d"), "b and d cannot elect a leader");
    const r = lead.propose(new Uint8Array([2]));
    assert.ok(r.ok);
    net.tick(2);
    for (const id of ["b", "d"]) assert.ok(net.node(id).status().commit >= r.index, `${id} did not commit without a and c`);
  });
});
