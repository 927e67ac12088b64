// Self-durability (ready.ts): a leader counts itself towards the commit of its own new entry only
// once the Ready that carried the entry is durable, i.e. acknowledged by advance(). The property
// is checked by looking at the leader's commit index WHILE the loop's save of the entry is in
// progress (the write not yet durable), after a follower already acknowledged the entry: the
// order a loop that sends in parallel with its own fsync would produce, arranged here by hand.
// The core's assertion (raft.ts assertSelfDurable) and the test-only bug switch
// commitBeforeSelfDurable are checked too.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";
import { AssertionError } from "./assert.ts";
import { NO_BUGS } from "./config.ts";
import type { Message } from "./messages.ts";
import type { Index, NodeId } from "./types.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A cluster that records the leader's commit index while a save holding entry `watch` runs. */
function watchedCluster(ids: readonly NodeId[], bugs = NO_BUGS): { c: TestCluster; commitsDuringSave: Index[]; watch: { index: Index } } {
  const watch = { index: 0 };
  const commitsDuringSave: Index[] = [];
  const c: TestCluster = new TestCluster(ids, 1, bugs, [], {
    onSave: (id, write) => {
      if (id === "a" && write.entries.some((e) => e.index === watch.index)) commitsDuringSave.push(c.node("a").status().commit);
    },
  });
  return { c, commitsDuringSave, watch };
}

function electA(c: TestCluster): void {
  c.node("a").campaign();
  c.stabilize();
  assert.equal(c.node("a").status().role, "leader");
}

describe("self-durability: the leader's own entry counts only once it is durable", () => {
  it("a follower's early acknowledgement does not commit the entry while the leader's write is in flight", () => {
    const { c, commitsDuringSave, watch } = watchedCluster(["a", "b", "c"]);
    electA(c);
    const leader = c.node("a");
    const r = leader.propose(bytes("x"));
    assert.ok(r.ok);
    watch.index = r.index;
    const e = leader.entryAt(r.index);
    assert.ok(e);
    // b gets the entry before a has written it (as if a had sent in parallel with its fsync),
    // makes it durable and acknowledges it.
    const prevTerm = leader.termAt(r.index - 1) ?? 0;
    const append: Message = {
      ...{ kind: "append", from: "a", to: "b", term: r.term, prevIndex: r.index - 1, prevTerm },
      ...{ entries: [e], commit: leader.status().commit, witnessFloor: 0 },
    };
    c.deliver(append);
    const ack = c.processOnly("b").find((m) => m.kind === "appendResponse" && m.to === "a");
    assert.ok(ack && ack.kind === "appendResponse" && !ack.reject && ack.index === r.index, `b's ack: ${JSON.stringify(ack)}`);
    c.deliver(ack);
    // Quorum {a, b} holds the entry, but a's copy is not durable: no commit yet.
    assert.ok(leader.status().commit < r.index, `committed ${leader.status().commit} before the leader's own write`);
    c.stabilize();
    assert.equal(commitsDuringSave.length, 1, "the leader saved the entry once");
    assert.ok((commitsDuringSave[0] ?? Infinity) < r.index, `commit ${commitsDuringSave[0]} while the entry was being written`);
    assert.ok(leader.status().commit >= r.index, "committed once the Ready was acknowledged");
  });

  it("a single voter commits its entry only after the Ready that carried it is acknowledged", () => {
    const { c, commitsDuringSave, watch } = watchedCluster(["a"]);
    electA(c);
    const r = c.node("a").propose(bytes("x"));
    assert.ok(r.ok);
    watch.index = r.index;
    assert.ok(c.node("a").status().commit < r.index);
    c.stabilize();
    assert.deepEqual(commitsDuringSave, [r.index - 1]);
    assert.equal(c.node("a").status().commit, r.index);
    assert.equal(c.applied.get("a")?.at(-1)?.index, r.index, "applied after the commit");
  });

  it("the commitBeforeSelfDurable bug (self counted at append) is stopped by the core's assertion", () => {
    const c = new TestCluster(["a", "b", "c"], 1, { ...NO_BUGS, commitBeforeSelfDurable: true });
    c.node("a").campaign();
    // Winning the election appends the no-op, which the bug counts at once.
    assert.throws(
      () => c.stabilize(),
      (err: unknown) =>
        err instanceof AssertionError && /counts itself at \d+ towards the commit but is durable only up to/.test(err.message),
    );
  });
});
