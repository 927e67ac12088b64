// Table tests of the core's pure parts: quorum arithmetic, per-follower progress, the log.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyConfChange } from "./conf_change.ts";
import { Progress } from "./progress.ts";
import { jointCommittedIndex, jointVoteResult, majorityCommittedIndex, majorityVoteResult } from "./quorum.ts";
import { RaftLog } from "./raft_log.ts";
import type { Entry } from "./types.ts";
import { EMPTY_CONF_STATE } from "./types.ts";

const matchTable =
  (m: Record<string, number>) =>
  (id: string): number =>
    m[id] ?? 0;

describe("quorum", () => {
  it("majority commit index is the highest index held by a majority", () => {
    const rows: [string[], Record<string, number>, number][] = [
      [["a"], { a: 5 }, 5],
      [["a", "b", "c"], { a: 5, b: 3, c: 1 }, 3],
      [["a", "b", "c"], { a: 5, b: 0, c: 0 }, 0],
      [["a", "b", "c", "d"], { a: 9, b: 7, c: 5, d: 1 }, 5],
      [["a", "b", "c", "d", "e"], { a: 9, b: 9, c: 2, d: 2, e: 2 }, 2],
    ];
    for (const [voters, match, want] of rows) assert.equal(majorityCommittedIndex(voters, matchTable(match)), want);
  });

  it("joint commit needs both halves; an empty half imposes nothing", () => {
    const match = matchTable({ a: 9, b: 9, c: 1, d: 1 });
    assert.equal(jointCommittedIndex(["a", "b", "c"], ["b", "c", "d"], match), 1);
    assert.equal(jointCommittedIndex(["a", "b", "c"], [], match), 9);
  });

  it("vote results: won, lost, pending; joint needs both", () => {
    const votes =
      (m: Record<string, boolean>) =>
      (id: string): boolean | undefined =>
        m[id];
    assert.equal(majorityVoteResult(["a", "b", "c"], votes({ a: true, b: true })), "won");
    assert.equal(majorityVoteResult(["a", "b", "c"], votes({ a: true, b: false })), "pending");
    assert.equal(majorityVoteResult(["a", "b", "c"], votes({ a: true, b: false, c: false })), "lost");
    assert.equal(jointVoteResult(["a", "b", "c"], ["c", "d", "e"], votes({ a: true, b: true })), "pending");
    assert.equal(jointVoteResult(["a", "b", "c"], ["c", "d", "e"], votes({ a: true, b: true, c: true, d: true })), "won");
  });
});

describe("progress", () => {
  it("match never decreases; stale acks are no-ops", () => {
    const pr = new Progress(1, 4);
    assert.ok(pr.maybeUpdate(5));
    assert.equal(pr.maybeUpdate(3), false);
    assert.equal(pr.match, 5);
  });

  it("replicate state pipelines up to the in-flight limit, then pauses", () => {
    const pr = new Progress(1, 2);
    pr.becomeReplicate();
    pr.sentEntries(3, 3);
    assert.equal(pr.isPaused(), false);
    pr.sentEntries(6, 3);
    assert.equal(pr.isPaused(), true);
    pr.maybeUpdate(3);
    pr.inflights.freeLE(3);
    assert.equal(pr.isPaused(), false);
  });

  it("a stale rejection in probe state is ignored; a current one backs off to the hint", () => {
    const pr = new Progress(10, 4);
    assert.equal(pr.maybeDecrTo(5, 2), false); // we did not send prev=5
    assert.ok(pr.maybeDecrTo(9, 4));
    assert.equal(pr.next, 5);
  });
});

describe("raft log", () => {
  const e = (term: number, index: number): Entry => ({ term, index, type: "normal", data: new Uint8Array(0) });
  const noBugs = { truncateBelowCommit: false };

  it("appends, detects conflicts and truncates only above commit", () => {
    const log = new RaftLog(
      { hardState: { term: 2, vote: "", commit: 0 }, snapshot: null, entries: [e(1, 1), e(1, 2), e(2, 3)] },
      0,
      noBugs,
    );
    assert.equal(log.maybeAppend(1, 1, 2, [e(1, 2), e(3, 3)]), 3);
    assert.equal(log.term(3), 3);
    assert.equal(log.committed, 2);
    assert.throws(() => log.maybeAppend(0, 0, 2, [e(4, 1)]), /below commit/);
  });

  it("rejects an append whose previous entry does not match", () => {
    const log = new RaftLog({ hardState: { term: 1, vote: "", commit: 0 }, snapshot: null, entries: [e(1, 1)] }, 0, noBugs);
    assert.equal(log.maybeAppend(1, 2, 1, [e(2, 2)]), undefined);
    assert.equal(log.maybeAppend(3, 1, 1, [e(1, 4)]), undefined);
  });

  it("a stale, shorter append never cuts entries it already matches", () => {
    // A bootstrapped log (the index-0 snapshot): an empty one matches nothing (next test).
    const snapshot = { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE }, data: new Uint8Array(0) };
    const log = new RaftLog({ hardState: { term: 1, vote: "", commit: 0 }, snapshot, entries: [] }, 0, noBugs);
    log.maybeAppend(0, 0, 0, [e(1, 1), e(1, 2), e(1, 3)]);
    log.maybeAppend(0, 0, 0, [e(1, 1)]);
    assert.equal(log.lastIndex(), 3);
  });

  it("an empty log (no snapshot, no entries: an empty disk) matches no append, not even at index 0", () => {
    const log = new RaftLog({ hardState: { term: 0, vote: "", commit: 0 }, snapshot: null, entries: [] }, 0, noBugs);
    assert.equal(log.isEmpty(), true);
    assert.equal(log.term(0), undefined);
    assert.equal(log.maybeAppend(0, 0, 0, [e(1, 1)]), undefined);
    assert.equal(log.lastIndex(), 0);
    const snapshot = { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE }, data: new Uint8Array(0) };
    log.restore(snapshot); // even the index-0 snapshot, at its commit index
    assert.equal(log.isEmpty(), false);
    assert.equal(log.maybeAppend(0, 0, 0, [e(1, 1)]), 1);
  });

  it("findConflictByTerm skips a whole term", () => {
    const log = new RaftLog(
      { hardState: { term: 3, vote: "", commit: 0 }, snapshot: null, entries: [e(1, 1), e(2, 2), e(2, 3), e(3, 4)] },
      0,
      noBugs,
    );
    assert.equal(log.findConflictByTerm(4, 1), 1);
    assert.equal(log.findConflictByTerm(4, 2), 3);
  });
});

describe("conf change", () => {
  const base = { ...EMPTY_CONF_STATE, voters: ["a", "b", "c"] };
  it("refuses single-step voter changes and empty or witness-only voter sets", () => {
    assert.equal(applyConfChange(base, { kind: "simple", change: { op: "addVoter", nodeId: "d", witness: false } }).ok, false);
    assert.equal(applyConfChange(base, { kind: "simple", change: { op: "removeNode", nodeId: "a", witness: false } }).ok, false);
    const allWitness = applyConfChange(base, {
      kind: "enterJoint",
      autoLeave: false,
      changes: ["a", "b", "c"].map((id) => ({ op: "addVoter" as const, nodeId: id, witness: true })),
    });
    assert.equal(allWitness.ok, false);
  });

  it("replaces a voter in one joint step and leaves cleanly", () => {
    const joint = applyConfChange(base, {
      kind: "enterJoint",
      autoLeave: true,
      changes: [
        { op: "addVoter", nodeId: "w2", witness: true },
        { op: "removeNode", nodeId: "c", witness: false },
      ],
    });
    assert.ok(joint.ok);
    assert.deepEqual(joint.confState.votersOutgoing, ["a", "b", "c"]);
    assert.deepEqual(joint.confState.voters, ["a", "b", "w2"]);
    const left = applyConfChange(joint.confState, { kind: "leaveJoint" });
    assert.ok(left.ok);
    assert.deepEqual(left.confState.votersOutgoing, []);
    assert.deepEqual(left.confState.witnesses, ["w2"]);
  });
});
