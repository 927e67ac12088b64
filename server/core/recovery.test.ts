// Recovery (raft.ts file header, RaftConfig.recovery; issue 13): a member restarted with a log
// shorter than what it may have acknowledged grants no vote or pre-vote, never campaigns, is not
// counted towards a commit while it recovers, and recovers once a leader has verified its log up
// to the index it had acknowledged. With the bug switch trustCorruptLog it votes at once, and the
// test shows what that costs: a committed entry is lost.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";
import { bootstrapState } from "./bootstrap.ts";
import { NO_BUGS } from "./config.ts";
import type { AppendResponseMessage, HeartbeatResponseMessage, Message } from "./messages.ts";
import type { RaftCore } from "./raft.ts";
import type { HardState, Index, NodeId, PersistedState } from "./types.ts";

const IDS = ["a", "b", "c"] as const;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A three-member cluster with a leading and `count` entries committed everywhere. */
function clusterWithEntries(count: number): TestCluster {
  const c = new TestCluster(IDS);
  c.node("a").campaign();
  c.stabilize();
  assert.equal(c.node("a").status().role, "leader");
  for (let i = 0; i < count; i++) assert.ok(c.node("a").propose(bytes(`e${i}`)).ok);
  c.stabilize();
  c.tickAll(1); // the heartbeat carries the last commit to the followers
  return c;
}

/** What `core`'s disk holds after losing every entry above `keepUpTo` (a WAL cut there). */
function cutLog(core: RaftCore, keepUpTo: Index): PersistedState {
  const st = core.status();
  const base = bootstrapState(IDS);
  const entries = [];
  for (let i = 1; i <= keepUpTo; i++) {
    const e = core.entryAt(i);
    assert.ok(e, `no entry ${i} on ${core.id}`);
    entries.push(e);
  }
  return { ...base, hardState: { term: st.term, vote: st.vote, commit: Math.min(st.commit, keepUpTo) }, entries };
}

/** Restarts `id` with its log cut at `keepUpTo`, recovering until its old last index. */
function restartRecovering(
  c: TestCluster,
  id: NodeId,
  keepUpTo: Index,
  bugs = NO_BUGS,
): { core: RaftCore; lines: string[]; untilIndex: Index } {
  const old = c.node(id);
  const untilIndex = old.status().lastIndex;
  const lines: string[] = [];
  const core = c.restartNode(id, cutLog(old, keepUpTo), { recovery: { untilIndex }, bugs, logger: (l) => lines.push(l) });
  return { core, lines, untilIndex };
}

describe("recovery: a member that lost log data", () => {
  it("grants no vote or pre-vote: with the leader gone, it and one other member elect nobody", () => {
    const c = clusterWithEntries(5);
    const { core, lines } = restartRecovering(c, "c", 2);
    assert.equal(core.recovering(), true);
    assert.equal(core.status().recovering, true);
    c.isolate("a");
    c.tickAll(200);
    assert.deepEqual(
      ["b", "c"].filter((id) => c.node(id).status().role === "leader"),
      [],
      "b became leader with the votes of a member that lost its log",
    );
    assert.ok(
      lines.some((l) => /^c rejects pre-vote from b at term \d+: recovering untilIndex=6$/.test(l)),
      `c's lines: ${lines.join(" | ")}`,
    );
    assert.ok(!lines.some((l) => / grants /.test(l)), "c granted a vote");
    assert.equal(core.recovering(), true, "nothing verified its log, so it still recovers");
  });

  it("rejects a real vote too, and its term still follows the candidate's (never back)", () => {
    const c = clusterWithEntries(3);
    const { core, lines } = restartRecovering(c, "c", 1);
    const term = core.status().term;
    const vote: Message = {
      kind: "vote",
      from: "b",
      to: "c",
      term: term + 1,
      preVote: false,
      transfer: false,
      lastIndex: 99,
      lastTerm: term,
    };
    c.deliver(vote);
    const sent = c.processOnly("c");
    const answer = sent.find((m) => m.kind === "voteResponse");
    assert.ok(answer && answer.kind === "voteResponse" && answer.reject && !answer.preVote, JSON.stringify(sent));
    assert.equal(core.status().term, term + 1);
    assert.equal(core.status().vote, "", "it recorded a vote while recovering");
    assert.ok(lines.some((l) => l === `c rejects vote from b at term ${term + 1}: recovering untilIndex=4`));
  });

  it("never campaigns: not on election timeout, not on campaign(), not on TimeoutNow", () => {
    const c = clusterWithEntries(3);
    const { core, lines } = restartRecovering(c, "c", 1);
    c.isolate("c");
    c.tickAll(100);
    core.campaign();
    c.stabilize();
    c.deliver({ kind: "timeoutNow", from: "a", to: "c", term: core.status().term });
    c.stabilize();
    assert.equal(core.status().role, "follower");
    assert.ok(!lines.some((l) => /became (pre-)?candidate|starts (pre-election|election|transfer)/.test(l)), lines.join(" | "));
    assert.ok(lines.some((l) => l === "c does not campaign (preElection): recovering untilIndex=4"));
    assert.ok(lines.some((l) => l === "c does not campaign (transfer): recovering untilIndex=4"));
  });

  it("its acknowledgements carry `recovering` and do not advance the leader's commit", () => {
    const c = clusterWithEntries(3);
    const leader = c.node("a");
    // untilIndex far above anything the leader holds: c keeps recovering however far it catches up.
    const lines: string[] = [];
    const core = c.restartNode("c", cutLog(c.node("c"), 1), { recovery: { untilIndex: 1000 }, logger: (l) => lines.push(l) });
    c.cut.add("a-b");
    c.cut.add("b-a");
    const r = leader.propose(bytes("only a and c"));
    assert.ok(r.ok);
    c.tickAll(20);
    assert.equal(core.status().lastIndex, r.index, "replication to the recovering member goes on");
    assert.ok(leader.status().commit < r.index, `a committed ${r.index} with a recovering member's acknowledgement`);
    assert.match(leader.progressOf("c"), / recovering$/);
    // Its answers carry the flag (a heartbeat answer here).
    c.deliver({ kind: "heartbeat", from: "a", to: "c", term: leader.status().term, commit: 0, readContext: 0, witnessFloor: 0 });
    const answer = c.processOnly("c").find((m): m is HeartbeatResponseMessage => m.kind === "heartbeatResponse");
    assert.equal(answer?.recovering, true);
    c.heal();
    c.tickAll(3);
    assert.equal(leader.status().commit, r.index, "b's acknowledgement commits it");
  });

  it("a heartbeat committing beyond its cut log does not commit there (its tail is unverified)", () => {
    const c = clusterWithEntries(5);
    // c's disk kept entries 1..2 but its hard state's commit only 1: entry 2 may be one the
    // cluster overwrote since, until a leader's append has matched it.
    const kept = cutLog(c.node("c"), 2);
    const core = c.restartNode("c", { ...kept, hardState: { ...kept.hardState, commit: 1 } }, { recovery: { untilIndex: 6 } });
    // a recorded c's match at 6 before the loss: its heartbeat says commit 6.
    c.deliver({ kind: "heartbeat", from: "a", to: "c", term: c.node("a").status().term, commit: 6, readContext: 0, witnessFloor: 0 });
    assert.equal(core.status().commit, 1);
  });

  it("ends once a leader verified its log up to untilIndex, logs recovery_done, then counts again", () => {
    const c = clusterWithEntries(5);
    const { core, lines, untilIndex } = restartRecovering(c, "c", 2);
    assert.equal(untilIndex, 6);
    c.tickAll(5);
    assert.equal(core.recovering(), false);
    assert.equal(core.status().lastIndex, 6);
    assert.ok(lines.includes("c recovery_done untilIndex=6 lastIndex=6"), lines.join(" | "));
    assert.doesNotMatch(c.node("a").progressOf("c"), /recovering/);
    // Now c counts: with b cut off, a and c commit a new entry.
    c.isolate("b");
    const r = c.node("a").propose(bytes("a and c"));
    assert.ok(r.ok);
    c.stabilize();
    assert.equal(c.node("a").status().commit, r.index);
    // And it votes again: with a gone, c (up to date) and b elect a leader.
    c.heal();
    c.tickAll(2);
    c.isolate("a");
    c.tickAll(100);
    assert.equal(["b", "c"].filter((id) => c.node(id).status().role === "leader").length, 1);
  });

  it("a stale recovering answer arriving after the recovery ended does not reset the leader's progress (seed 1278)", () => {
    // The network reorders: answers c sent while recovering can reach the leader after the one
    // that ended its recovery. The leader stops counting c until a newer answer, but keeps the
    // match c verified; forgetting it on every such answer restarted the whole in-flight window
    // each time, which under the simulator's reordering grew into a message storm (seed 1278).
    const c = clusterWithEntries(5);
    const leader = c.node("a");
    const { core, untilIndex } = restartRecovering(c, "c", 2);
    const term = leader.status().term;
    const entry3 = leader.entryAt(3);
    assert.ok(entry3);
    const flaggedAnswer = (m: Message): AppendResponseMessage | HeartbeatResponseMessage => {
      c.deliver(m);
      const answer = c.processOnly("c").find((a) => a.kind === "appendResponse" || a.kind === "heartbeatResponse");
      assert.ok(answer && (answer.kind === "appendResponse" || answer.kind === "heartbeatResponse"));
      assert.equal(answer.recovering, true);
      return answer;
    };
    // Three answers c sends while recovering, held back by the network: a heartbeat answer, an
    // acknowledgement of entry 3 (below untilIndex) and a rejection of an append at 5.
    const held = [
      flaggedAnswer({ kind: "heartbeat", from: "a", to: "c", term, commit: 0, readContext: 0, witnessFloor: 0 }),
      flaggedAnswer({
        kind: "append",
        from: "a",
        to: "c",
        term,
        prevIndex: 2,
        prevTerm: leader.entryAt(2)?.term ?? 0,
        entries: [entry3],
        commit: 0,
        witnessFloor: 0,
        witnessFloorAppliedIndex: 0,
      }),
      flaggedAnswer({
        kind: "append",
        from: "a",
        to: "c",
        term,
        prevIndex: 5,
        prevTerm: leader.entryAt(5)?.term ?? 0,
        entries: [],
        commit: 0,
        witnessFloor: 0,
        witnessFloorAppliedIndex: 0,
      }),
    ];
    assert.ok(held.some((m) => m.kind === "appendResponse" && m.reject));
    c.tickAll(5);
    assert.equal(core.recovering(), false);
    assert.equal(leader.matchIndexOf("c"), untilIndex);
    const before = leader.progressOf("c");
    for (const m of held) c.deliver(m);
    assert.equal(leader.matchIndexOf("c"), untilIndex, `the leader forgot c's match: ${before} -> ${leader.progressOf("c")}`);
    assert.match(leader.progressOf("c"), /^replicate /, `c's progress was reset: ${before} -> ${leader.progressOf("c")}`);
    // c's next answer counts it again: with b cut off, a and c commit a new entry.
    c.isolate("b");
    const r = leader.propose(bytes("a and c"));
    assert.ok(r.ok);
    c.tickAll(2);
    assert.equal(leader.status().commit, r.index);
  });

  it("an empty store (main file lost) catches up by snapshot and ends recovery", () => {
    const c = clusterWithEntries(6);
    const leader = c.node("a");
    leader.createSnapshot(bytes("image"));
    const st = c.node("c").status();
    const lines: string[] = [];
    const empty: PersistedState = { hardState: { term: st.term, vote: st.vote, commit: 0 }, snapshot: null, entries: [] };
    const core = c.restartNode("c", empty, { recovery: { untilIndex: st.lastIndex }, logger: (l) => lines.push(l) });
    c.tickAll(5);
    assert.ok(
      lines.some((l) => l.startsWith("c restores snapshot")),
      lines.join(" | "),
    );
    assert.equal(core.recovering(), false);
    assert.equal(core.status().lastIndex, leader.status().lastIndex);
  });

  it("its hard state's term never goes below what it started with", () => {
    const hardStates: HardState[] = [];
    const c = new TestCluster(IDS, 1, NO_BUGS, [], { onSave: (id, w) => void (id === "c" && w.hardState && hardStates.push(w.hardState)) });
    c.node("a").campaign();
    c.stabilize();
    for (let i = 0; i < 3; i++) c.node("a").propose(bytes(`e${i}`));
    c.stabilize();
    const startTerm = c.node("c").status().term;
    hardStates.length = 0;
    restartRecovering(c, "c", 1);
    c.isolate("a");
    c.tickAll(100); // b campaigns over and over: c's term follows it up
    c.heal();
    c.tickAll(100);
    assert.ok(hardStates.length > 0);
    let prev = startTerm;
    for (const hs of hardStates) {
      assert.ok(hs.term >= prev, `term went from ${prev} to ${hs.term}`);
      prev = hs.term;
    }
  });

  it("trustCorruptLog (the bug): it votes at once, and a committed entry is lost", () => {
    for (const bugs of [NO_BUGS, { ...NO_BUGS, trustCorruptLog: true }]) {
      const c = clusterWithEntries(2);
      const leader = c.node("a");
      // Commit one entry with a and c only (b cut off), then c loses it.
      c.isolate("b");
      const r = leader.propose(bytes("committed by a and c"));
      assert.ok(r.ok);
      c.stabilize();
      assert.equal(leader.status().commit, r.index);
      const { core } = restartRecovering(c, "c", r.index - 1, bugs);
      assert.equal(core.recovering(), !bugs.trustCorruptLog);
      c.heal();
      c.isolate("a");
      c.tickAll(200);
      const newLeader = ["b", "c"].find((id) => c.node(id).status().role === "leader");
      if (!bugs.trustCorruptLog) {
        assert.equal(newLeader, undefined, "a leader without the committed entry");
        continue;
      }
      assert.ok(newLeader !== undefined, "with the bug, b and c elect a leader");
      const e = c.node(newLeader).entryAt(r.index);
      assert.ok(e === undefined || new TextDecoder().decode(e.data) !== "committed by a and c", "the bug did not lose the entry");
    }
  });
});
