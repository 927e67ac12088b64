// commit-not-durable (checkers.ts): a leader's commit must be held by a quorum of its
// configuration in their SYNCED disk state. Hand-built views of a leader and the members' durable
// logs, so each case shows exactly what the check accepts and what it reports.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConfState, Index, NodeId, Term } from "../../server/core/types.ts";
import { SafetyChecker, type CheckedNode } from "./checkers.ts";

function conf(voters: NodeId[], votersOutgoing: NodeId[] = []): ConfState {
  return { voters, votersOutgoing, learners: [], learnersNext: [], witnesses: [], autoLeave: false };
}

/** Durable logs: node -> term of each index from 1 (all term 1 here), or a snapshot up to an index. */
interface Disk {
  lastIndex: Index;
  snapshotIndex?: Index;
}

class Harness {
  readonly disks = new Map<NodeId, Disk>();
  readonly checker = new SafetyChecker({
    onSend: () => {},
    onApply: () => {},
    durableTermAt: (node, index) => {
      const d = this.disks.get(node);
      if (!d) return undefined;
      if (d.snapshotIndex !== undefined && index <= d.snapshotIndex) return "snapshot";
      return index <= d.lastIndex ? 1 : undefined;
    },
  });
  private state = { role: "leader", term: 1 as Term, commit: 0 as Index, lastIndex: 10 as Index, confState: conf(["a", "b", "c"]) };

  /** Observes leader a with this commit index (and configuration). */
  observe(commit: Index, confState: ConfState = this.state.confState, role = "leader"): void {
    this.state = { ...this.state, commit, confState, role };
    const view: CheckedNode = {
      id: "a",
      incarnation: 1,
      core: {
        status: () => ({ ...this.state, firstIndex: 1 }),
        termAt: (i: Index) => (i <= 10 ? 1 : undefined),
      },
    };
    this.checker.checkNode(view);
  }

  checks(): string[] {
    return this.checker.violations.map((v) => v.check);
  }
}

describe("commit-not-durable", () => {
  it("accepts a commit a durable majority holds, reports one only the leader holds", () => {
    const h = new Harness();
    h.disks.set("a", { lastIndex: 10 });
    h.disks.set("b", { lastIndex: 5 });
    h.observe(1);
    h.observe(5); // a and b hold 5: a majority of (a b c)
    assert.deepEqual(h.checks(), []);
    assert.equal(h.checker.durableCommitChecks, 1);
    h.observe(6); // only a holds 6 (b's write of it is not synced)
    assert.deepEqual(h.checks(), ["commit-not-durable"]);
  });

  it("counts a durable snapshot covering the index", () => {
    const h = new Harness();
    h.disks.set("a", { lastIndex: 10 });
    h.disks.set("c", { lastIndex: 0, snapshotIndex: 7 });
    h.observe(1);
    h.observe(7);
    assert.deepEqual(h.checks(), []);
    h.observe(8);
    assert.deepEqual(h.checks(), ["commit-not-durable"]);
  });

  it("needs a majority of both halves of a joint configuration", () => {
    const h = new Harness();
    const joint = conf(["a", "b", "c"], ["a", "d", "e"]);
    h.disks.set("a", { lastIndex: 10 });
    h.disks.set("b", { lastIndex: 10 });
    h.disks.set("d", { lastIndex: 4 });
    h.observe(1, joint);
    h.observe(4, joint); // {a,b} of the incoming half, {a,d} of the outgoing one
    assert.deepEqual(h.checks(), []);
    h.observe(5, joint); // the outgoing half (a d e) has only a
    assert.deepEqual(h.checks(), ["commit-not-durable"]);
  });

  it("accepts a quorum of the configuration before a change seen in the same observation", () => {
    const h = new Harness();
    h.disks.set("a", { lastIndex: 10 });
    h.disks.set("b", { lastIndex: 10 });
    h.observe(1, conf(["a", "b", "c"]));
    // The commit of 6 was counted in (a b c); the pass then applied a change to (a b c d e).
    h.observe(6, conf(["a", "b", "c", "d", "e"]));
    assert.deepEqual(h.checks(), []);
  });

  it("checks only commits advanced while seen leading", () => {
    const h = new Harness();
    h.disks.set("a", { lastIndex: 10 });
    h.observe(3, conf(["a", "b", "c"]), "follower");
    h.observe(6); // first seen leading: commit learnt as a follower is not this leader's to prove
    assert.deepEqual(h.checks(), []);
    h.observe(7);
    assert.deepEqual(h.checks(), ["commit-not-durable"]);
  });
});
