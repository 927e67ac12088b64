// The checks of a member recovering after its disk lied (checkers.ts recovering-voted,
// recovering-counted, and commit-not-durable's view of a damaged member), on hand-built messages
// and leader views, so each case shows what the check accepts and what it reports.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message } from "../../server/core/messages.ts";
import type { ConfState, Index, NodeId, Term } from "../../server/core/types.ts";
import { SafetyChecker, type CheckedNode } from "./checkers.ts";

const conf: ConfState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };

function checker(durable: Map<NodeId, Index> = new Map(), damaged: Map<NodeId, Index> = new Map()): SafetyChecker {
  const held = (last: Index | undefined, index: Index): Term | undefined => (last !== undefined && index <= last ? 1 : undefined);
  const c: SafetyChecker = new SafetyChecker({
    onSend: () => {},
    onApply: () => {},
    durableTermAt: (node, index) => held(durable.get(node), index),
    // As vopr.ts damagedView: the view before the lie only while the member has not caught up.
    damagedTermAt: (node, index) => (c.isRecovering(node) ? held(damaged.get(node), index) : undefined),
    checkCommitAcks: true,
  });
  return c;
}

function ack(from: NodeId, index: Index, extra: { reject?: boolean; recovering?: boolean } = {}): Message {
  return {
    kind: "appendResponse",
    from,
    to: "a",
    term: 1,
    index,
    reject: extra.reject ?? false,
    rejectHintIndex: 0,
    rejectHintTerm: 0,
    ...(extra.recovering ? { recovering: true } : {}),
  };
}

/** Leader a of term 1 seen with this commit index (its log holds 1..10, term 1). */
function observeLeader(c: SafetyChecker, commit: Index): void {
  const view: CheckedNode = {
    id: "a",
    incarnation: 1,
    core: {
      status: () => ({ role: "leader", term: 1, commit, lastIndex: 10, firstIndex: 1, confState: conf }),
      termAt: (i: Index) => (i <= 10 ? 1 : undefined),
    },
  };
  c.checkNode(view);
}

describe("recovering-voted", () => {
  it("reports a vote or pre-vote granted, or a campaign, while recovering; a rejection is what recovering answers", () => {
    const c = checker();
    c.onRecoveryStart("b", 8);
    c.onSend({ kind: "voteResponse", from: "b", to: "c", term: 2, preVote: true, reject: true });
    assert.equal(c.violations.length, 0);
    c.onSend({ kind: "voteResponse", from: "b", to: "c", term: 2, preVote: true, reject: false });
    c.onSend({ kind: "vote", from: "b", to: "c", term: 3, preVote: false, transfer: false, lastIndex: 4, lastTerm: 1 });
    c.onSend({ kind: "voteResponse", from: "c", to: "a", term: 3, preVote: false, reject: false }); // c is not recovering
    assert.deepEqual(
      c.violations.map((v) => v.check),
      ["recovering-voted", "recovering-voted"],
    );
  });
});

describe("recovering-counted", () => {
  it("ends the recovery at the first acknowledgement without the flag at or above the target; earlier answers must carry the flag", () => {
    const c = checker();
    c.onRecoveryStart("b", 8);
    c.onSend(ack("b", 5, { recovering: true }));
    c.onSend({ kind: "heartbeatResponse", from: "b", to: "a", term: 1, readContext: 0, recovering: true });
    assert.ok(c.isRecovering("b"));
    c.onSend(ack("b", 8));
    assert.equal(c.isRecovering("b"), false);
    assert.equal(c.recoveriesCompleted, 1);
    c.onSend({ kind: "voteResponse", from: "b", to: "c", term: 2, preVote: false, reject: false }); // whole again: may vote
    assert.equal(c.violations.length, 0);
  });

  it("reports an answer without the flag below the target (the leader would count it)", () => {
    for (const m of [
      ack("b", 5),
      ack("b", 9, { reject: true }),
      { kind: "heartbeatResponse", from: "b", to: "a", term: 1, readContext: 0 } as const,
    ]) {
      const c = checker();
      c.onRecoveryStart("b", 8);
      c.onSend(m);
      assert.deepEqual(
        c.violations.map((v) => v.check),
        ["recovering-counted"],
        JSON.stringify(m),
      );
    }
  });

  it("reports a leader's commit that needs a recovering member's acknowledgement", () => {
    const durable = new Map([
      ["a", 10],
      ["b", 10],
      ["c", 10],
    ]);
    const ok = checker(durable);
    observeLeader(ok, 0);
    ok.onSend(ack("b", 6));
    observeLeader(ok, 6); // a and b, b whole
    assert.deepEqual(ok.violations, []);
    const bad = checker(durable);
    bad.onRecoveryStart("b", 8);
    observeLeader(bad, 0);
    bad.onSend(ack("b", 6, { recovering: true }));
    observeLeader(bad, 6); // only a's own: b's acknowledgement was sent recovering
    assert.deepEqual(
      bad.violations.map((v) => v.check),
      ["recovering-counted"],
    );
  });
});

describe("commit-not-durable with a damaged member", () => {
  it("counts what the member's disk held before its lie while it recovers (its acknowledgements stood on it), not after", () => {
    const durable = new Map([
      ["a", 10],
      ["b", 3],
    ]);
    const c = checker(durable, new Map([["b", 9]]));
    c.onRecoveryStart("b", 7);
    observeLeader(c, 0);
    c.onSend(ack("c", 8)); // c's acknowledgement backs the commits (recovering-counted); only b's disk is checked here
    observeLeader(c, 7); // b held 7 before the lie: a quorum acknowledged it durably
    assert.equal(c.violations.length, 0);
    c.onSend(ack("b", 7)); // b caught up (no flag, at the target): its current disk alone counts now
    observeLeader(c, 8); // b held 8 before its lie, but not now
    assert.deepEqual(
      c.violations.map((v) => v.check),
      ["commit-not-durable"],
    );
  });
});
