import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { READY_APPLY_LAG_MAX, type ReadinessStatus, readinessOf } from "./readiness.ts";

const follower: ReadinessStatus = { role: "follower", leader: "a", term: 3, commitIndex: 50, appliedIndex: 50 };

describe("readiness", () => {
  it("a follower or leader that knows its term's leader and has applied what it knows committed is ready", () => {
    assert.deepEqual(readinessOf(follower, { applies: true }), { ready: true });
    assert.deepEqual(readinessOf({ ...follower, role: "leader", leader: "b" }, { applies: true }), { ready: true });
    assert.deepEqual(readinessOf({ ...follower, appliedIndex: 50 - READY_APPLY_LAG_MAX }, { applies: true }), { ready: true });
  });

  it("no leader, campaigning, recovering or applied far behind commit: not ready, with the reason", () => {
    const cases: [ReadinessStatus, RegExp][] = [
      [{ ...follower, leader: "" }, /no leader known in term 3/],
      [{ ...follower, role: "preCandidate", leader: "" }, /campaigning/],
      [{ ...follower, role: "candidate" }, /campaigning/],
      [{ ...follower, recovering: true }, /recovering/],
      [{ ...follower, appliedIndex: 49 - READY_APPLY_LAG_MAX }, /catching up: applied/],
    ];
    for (const [status, reason] of cases) {
      const r = readinessOf(status, { applies: true });
      assert.equal(r.ready, false, JSON.stringify(status));
      assert.match(r.ready ? "" : r.reason, reason);
    }
  });

  it("a witness (applies nothing) is ready with applied index 0 once it knows the leader", () => {
    assert.deepEqual(readinessOf({ ...follower, appliedIndex: 0, commitIndex: 5000 }, { applies: false }), { ready: true });
    assert.equal(readinessOf({ ...follower, appliedIndex: 0, leader: "" }, { applies: false }).ready, false);
  });
});
