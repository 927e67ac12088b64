import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NO_NODE } from "../core/types.ts";
import type { NodeStatus } from "./node_api.ts";
import { isServing, type ServingStatus, watchReady } from "./ready_watch.ts";

const status = (over: Partial<NodeStatus>): NodeStatus => ({
  id: "a",
  role: "follower",
  term: 3,
  leader: "b",
  commitIndex: 10,
  appliedIndex: 10,
  lastIndex: 10,
  confState: { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], witnesses: [] } as unknown as NodeStatus["confState"],
  ...over,
});

describe("ready: the member serves", () => {
  it("once it knows a leader and has applied what it knows is committed", () => {
    assert.equal(isServing(status({}), { applies: true }), true);
    assert.equal(isServing(status({ role: "leader", leader: "a" }), { applies: true }), true);
    assert.equal(isServing(status({ leader: NO_NODE }), { applies: true }), false);
    assert.equal(isServing(status({ role: "candidate" }), { applies: true }), false);
    assert.equal(isServing(status({ role: "preCandidate" }), { applies: true }), false);
    assert.equal(isServing(status({ appliedIndex: 9 }), { applies: true }), false);
    // A witness never applies: knowing the leader is all it needs.
    assert.equal(isServing(status({ appliedIndex: 0 }), { applies: false }), true);
  });

  it("watchReady reports once, the first time, then stops polling", async () => {
    let current = status({ leader: NO_NODE });
    const seen: ServingStatus[] = [];
    let polls = 0;
    watchReady({
      status: () => {
        polls++;
        return current;
      },
      applies: true,
      intervalMs: 5,
      onReady: (s) => seen.push(s),
    });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(seen.length, 0);
    current = status({ leader: "c", term: 4 });
    await new Promise((r) => setTimeout(r, 30));
    const pollsAtReady = polls;
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(
      seen.map((s) => [s.leader, s.term]),
      [["c", 4]],
    );
    assert.equal(polls, pollsAtReady, "kept polling after ready");
  });
});
