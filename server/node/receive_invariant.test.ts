// A peer message that makes the core break an invariant must stop the process: RaftNode.receive
// (and WitnessNode.receive) turn whatever core.step throws into an AssertionError, which the
// peer transport hands to server/fatal.ts. The same-term heartbeat from another "leader" is the
// real case testing/itest/fatal.test.ts sends over the wire; here it is checked in process.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssertionError, asInvariantViolation } from "../core/assert.ts";
import type { Message } from "../core/messages.ts";
import { NodeCluster } from "../../testing/kits/node_test_cluster.ts";

describe("RaftNode.receive and broken invariants", () => {
  it("a same-term heartbeat from another member at the leader throws AssertionError", () => {
    const c = new NodeCluster(["a", "b", "c"]);
    c.advance(600);
    const leader = c.leader();
    assert.ok(leader, "no leader elected");
    const s = leader.status();
    const other = ["a", "b", "c"].find((id) => id !== leader.id) ?? "b";
    const forged: Message = { kind: "heartbeat", from: other, to: leader.id, term: s.term, commit: 0, readContext: 0, witnessFloor: 0 };
    assert.throws(
      () => leader.receive(forged),
      (err: unknown) => err instanceof AssertionError,
    );
  });

  it("anything else the core throws becomes an AssertionError that keeps the cause", () => {
    const cause = new TypeError("x is undefined");
    const wrapped = asInvariantViolation(cause, "core.step(append from b)");
    assert.ok(wrapped instanceof AssertionError);
    assert.match(wrapped.message, /core\.step\(append from b\) threw TypeError: x is undefined/);
    assert.equal(wrapped.cause, cause);
    const original = new AssertionError("commit regressed");
    assert.equal(asInvariantViolation(original, "y"), original);
  });
});
