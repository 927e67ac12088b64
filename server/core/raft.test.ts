import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";
import type { Message } from "./messages.ts";
import type { ProposeResult, RaftCore } from "./raft.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("RaftCore basics", () => {
  it("elects exactly one leader and replicates a proposal to all", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    assert.deepEqual(c.leaders(), ["a"]);
    const r = c.node("a").propose(bytes("x"));
    assert.ok(r.ok);
    c.stabilize();
    for (const id of ["a", "b", "c"]) {
      const data = (c.applied.get(id) ?? []).filter((e) => e.data.length > 0).map((e) => new TextDecoder().decode(e.data));
      assert.deepEqual(data, ["x"], `node ${id}`);
    }
  });

  it("elects a leader by ticks alone", () => {
    const c = new TestCluster(["a", "b", "c"], 7);
    c.tickAll(40);
    assert.equal(c.leaders().length, 1);
  });

  it("a follower refuses proposals with the leader hint", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    const r = c.node("b").propose(bytes("x"));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.reason, "notLeader");
      assert.equal(r.leader, "a");
    }
  });

  it("CheckQuorum: an isolated leader steps down within an election timeout", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    c.isolate("a");
    c.tickAll(25);
    assert.notEqual(c.node("a").status().role, "leader");
  });

  it("PreVote: a rejoining isolated follower does not disturb the leader's term", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    const term = c.node("a").status().term;
    c.isolate("c");
    c.tickAll(100);
    c.heal();
    c.tickAll(5);
    assert.equal(c.node("a").status().role, "leader");
    assert.equal(c.node("a").status().term, term);
    assert.equal(c.node("c").status().term, term);
  });

  it("leadership transfer hands over to a caught-up follower", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    assert.ok(c.node("a").transferLeadership("b").ok);
    c.stabilize();
    assert.deepEqual(c.leaders(), ["b"]);
  });

  it("ReadIndex confirms with a quorum and returns the commit index", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    c.node("a").propose(bytes("x"));
    c.stabilize();
    assert.ok(c.node("a").readIndex(42).ok);
    c.stabilize();
    const seen = c.readStates.get("a")?.[0];
    assert.ok(seen);
    assert.equal(seen.context, 42);
    assert.equal(seen.index, c.node("a").status().commit);
  });

  it("joint consensus adds a learner then promotes it to voter", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    const r = c.node("a").proposeConfChange({ kind: "simple", change: { op: "addLearner", nodeId: "d", witness: false } });
    assert.ok(r.ok, JSON.stringify(r));
    c.stabilize();
    assert.deepEqual(c.node("a").status().confState.learners, ["d"]);
    const j = c.node("a").proposeConfChange({
      kind: "enterJoint",
      autoLeave: true,
      changes: [
        { op: "addVoter", nodeId: "d", witness: false },
        { op: "removeNode", nodeId: "c", witness: false },
      ],
    });
    assert.ok(j.ok, JSON.stringify(j));
    c.stabilize();
    const cs = c.node("a").status().confState;
    assert.deepEqual(cs.voters, ["a", "b", "d"]);
    assert.deepEqual(cs.votersOutgoing, []);
  });
});

describe("the commit index to followers (RaftConfig.sendCommitAtOnce)", () => {
  /** Leader a, x proposed and acked by b and c; returns what a sends once it has the acks. */
  function committedByAcks(
    sendCommitAtOnce: boolean,
    propose: (leader: RaftCore) => ProposeResult = (leader) => leader.propose(bytes("x")),
    witnesses: readonly string[] = [],
  ): { c: TestCluster; index: number; sent: readonly Message[] } {
    const c = new TestCluster(["a", "b", "c"], 1, undefined, witnesses, { raftConfig: { sendCommitAtOnce } });
    c.node("a").campaign();
    c.stabilize();
    const r = propose(c.node("a"));
    assert.ok(r.ok);
    for (const m of c.processOnly("a")) c.deliver(m);
    for (const id of ["b", "c"]) for (const m of c.processOnly(id)) c.deliver(m);
    const sent = c.processOnly("a");
    assert.equal(c.node("a").status().commit, r.index, "the acks commit x");
    for (const id of ["b", "c"]) assert.ok(c.node(id).status().commit < r.index, `${id} does not know yet`);
    return { c, index: r.index, sent };
  }

  it("true (etcd-io/raft's way): the leader sends each follower the new commit index at once", () => {
    const { index, sent } = committedByAcks(true);
    assert.deepEqual(
      sent.map((m) => [m.kind, m.to, m.kind === "append" ? m.commit : -1]),
      [
        ["append", "b", index],
        ["append", "c", index],
      ],
    );
  });

  it("false (tenured's): nothing is sent for the commit; the next heartbeat carries it and the followers apply", () => {
    const { c, index, sent } = committedByAcks(false);
    assert.deepEqual(sent, []);
    c.node("a").tick(); // heartbeatIntervalTicks 1
    const beats = c.processOnly("a");
    assert.deepEqual(
      beats.map((m) => [m.kind, m.to, m.kind === "heartbeat" ? m.commit : -1]),
      [
        ["heartbeat", "b", index],
        ["heartbeat", "c", index],
      ],
    );
    for (const m of beats) c.deliver(m);
    c.stabilize();
    for (const id of ["b", "c"]) {
      assert.equal(c.node(id).status().commit, index);
      assert.ok(
        (c.applied.get(id) ?? []).some((e) => e.index === index),
        `${id} applied x`,
      );
    }
  });

  it("false, but sent at once all the same: the commit of a membership change, and every commit with a witness", () => {
    const addLearner = (leader: RaftCore): ProposeResult =>
      leader.proposeConfChange({ kind: "simple", change: { op: "addLearner", nodeId: "d", witness: false } });
    for (const [what, run] of [
      ["a membership change", () => committedByAcks(false, addLearner)],
      ["a witness in the configuration", () => committedByAcks(false, undefined, ["c"])],
    ] as const) {
      const { index, sent } = run();
      const toFollowers = sent.filter((m) => m.kind === "append" && (m.to === "b" || m.to === "c"));
      assert.deepEqual(
        toFollowers.map((m) => [m.to, m.kind === "append" ? m.commit : -1]),
        [
          ["b", index],
          ["c", index],
        ],
        what,
      );
    }
  });

  it("false: the next proposal's append carries it too", () => {
    const { c, index } = committedByAcks(false);
    assert.ok(c.node("a").propose(bytes("y")).ok);
    const appends = c.processOnly("a").filter((m) => m.kind === "append");
    assert.deepEqual(
      appends.map((m) => [m.to, m.kind === "append" ? m.commit : -1]),
      [
        ["b", index],
        ["c", index],
      ],
    );
  });
});
