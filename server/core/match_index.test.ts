// RaftCore.matchIndexOf: the leader's view of each follower's log, which metrics turn into
// replication lag (server/metrics/raft_metrics.ts). Only a leader answers.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("matchIndexOf", () => {
  it("follows each follower's log on the leader; an isolated follower's match stays behind; null off the leader", () => {
    const c = new TestCluster(["a", "b", "c"]);
    c.node("a").campaign();
    c.stabilize();
    const a = c.node("a");
    const last = a.status().lastIndex;
    assert.equal(a.matchIndexOf("b"), last);
    assert.equal(a.matchIndexOf("c"), last);
    c.isolate("c");
    for (let i = 0; i < 5; i++) assert.ok(a.propose(bytes(`e${i}`)).ok);
    c.stabilize();
    assert.equal(a.matchIndexOf("b"), last + 5);
    assert.equal(a.matchIndexOf("c"), last, "c heard nothing");
    assert.equal(a.matchIndexOf("zz"), null, "not a member");
    assert.equal(c.node("b").matchIndexOf("a"), null, "a follower tracks nobody");
  });
});
