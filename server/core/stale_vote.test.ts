// A vote request from an older term is refused in the receiver's term (raft.ts onLowerTerm), a
// real vote as well as a pre-vote, as the Raft paper answers it: the stale candidate takes the
// newer term instead of climbing one term per timeout behind everyone (random seed 8351 with the
// lazy commit lost liveness when that candidate was the only one that could win).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";
import type { Message, VoteResponseMessage } from "./messages.ts";

describe("a vote from an older term", () => {
  it("is refused in the receiver's term, real or pre-vote, and the candidate takes that term", () => {
    for (const preVote of [false, true]) {
      const c = new TestCluster(["a", "b", "c"]);
      c.node("a").campaign();
      c.stabilize();
      const term = c.node("b").status().term;
      assert.ok(term >= 1);
      c.isolate("c");
      // c falls behind in term: leadership goes a -> b -> a while c hears nothing.
      for (const [from, to] of [
        ["a", "b"],
        ["b", "a"],
      ] as const) {
        assert.ok(c.node(from).transferLeadership(to).ok);
        c.stabilize();
        assert.equal(c.node(to).status().role, "leader");
      }
      const newer = c.node("b").status().term;
      assert.ok(newer > term);
      c.heal();
      const stale: Message = { kind: "vote", from: "c", to: "b", term: term + 1, preVote, transfer: false, lastIndex: 1, lastTerm: 1 };
      assert.ok(stale.term < newer);
      c.deliver(stale);
      const r = c.processOnly("b").find((m): m is VoteResponseMessage => m.kind === "voteResponse");
      assert.ok(r, `b answers a stale ${preVote ? "pre-vote" : "vote"}`);
      assert.equal(r.reject, true);
      assert.equal(r.term, newer);
      assert.equal(r.preVote, preVote);
      if (!preVote) {
        c.node("c").campaign(); // c campaigns in its old term + 1, behind b
        c.processOnly("c");
        c.deliver({ ...r, to: "c" });
        assert.equal(c.node("c").status().term, newer, "the refusal carries c to b's term");
      }
    }
  });
});
