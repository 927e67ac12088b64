// clusterView folds the members' Status answers into `tenurectl status`'s rows: the leader they
// agree on, each member's lag to the leader's commit index, and whether it is recovering.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TenureError } from "../client-sdk/errors.ts";
import { clusterView, frozenLine } from "./cmd_cluster.ts";

const status = (nodeId: string, role: string, fields: Record<string, unknown> = {}) => ({
  nodeId,
  role,
  term: 4,
  leaderId: "a",
  commitIndex: 100,
  appliedIndex: 100,
  lastIndex: 100,
  confState: { voters: ["a", "b", "c"], witnesses: [] },
  ...fields,
});

describe("tenurectl status view", () => {
  it("names the agreed leader, each member's lag, a recovering member and an unreachable one", () => {
    const view = clusterView([
      { endpoint: "h:1", status: status("a", "leader") },
      { endpoint: "h:2", status: status("b", "follower", { appliedIndex: 60, recovering: true }) },
      { endpoint: "h:3", error: new TenureError("UNAVAILABLE", "refused") },
    ]);
    assert.equal(view.leader, "a");
    assert.equal(view.agreed, true);
    assert.deepEqual(
      view.members.map((m) => [m.id, m.lag, m.recovering]),
      [
        ["a", 0, false],
        ["b", 40, true],
      ],
    );
    assert.deepEqual(view.unreachable, [{ endpoint: "h:3", error: "refused", code: "UNAVAILABLE" }]);
  });

  it("no leader answered: lag unknown, not agreed", () => {
    const view = clusterView([{ endpoint: "h:2", status: status("b", "follower", { leaderId: "" }) }]);
    assert.equal(view.leader, null);
    assert.equal(view.agreed, false);
    assert.equal(view.members[0]?.lag, null);
  });

  it("while frozen: the leader's freeze, and the FROZEN line status prints first", () => {
    const frozen = { frozen: true, frozenReason: "drill", frozenBy: "ops", frozenSinceMs: "1234" };
    const view = clusterView([
      { endpoint: "h:2", status: status("b", "follower") },
      { endpoint: "h:1", status: status("a", "leader", frozen) },
    ]);
    assert.deepEqual(view.frozen, { frozen: true, reason: "drill", by: "ops", sinceMs: 1234, reportedBy: "a" });
    assert.equal(
      frozenLine(view.frozen ?? assert.fail()),
      'FROZEN by ops at leader time 1234 ms: "drill" (no new grants; renewals, releases and reads are served; tenurectl thaw resumes)',
    );
    // No leader: any member that says frozen.
    const noLeader = clusterView([
      { endpoint: "h:2", status: status("b", "follower", { leaderId: "" }) },
      { endpoint: "h:3", status: status("c", "follower", { leaderId: "", ...frozen }) },
    ]);
    assert.equal(noLeader.frozen?.frozen, true);
    assert.equal(noLeader.frozen?.reportedBy, "c");
    assert.equal(clusterView([{ endpoint: "h:1", status: status("a", "leader") }]).frozen?.frozen, false);
  });
});
