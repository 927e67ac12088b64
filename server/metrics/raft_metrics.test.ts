import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExposition, samplesOf, sampleValue } from "../../testing/kits/prom_text.ts";
import type { ConfState } from "../core/types.ts";
import { registerRaftMetrics, type RaftStatusView } from "./raft_metrics.ts";
import { createRegistry } from "./registry.ts";

const CS: ConfState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };

describe("raft metrics", () => {
  it("reads status at scrape time; per-peer lag only on the leader", async () => {
    let status: RaftStatusView = {
      id: "a",
      role: "leader",
      term: 7,
      leader: "a",
      commitIndex: 40,
      appliedIndex: 39,
      lastIndex: 42,
      confState: CS,
    };
    const match = new Map([
      ["b", 42],
      ["c", 30],
    ]);
    const registry = createRegistry();
    registerRaftMetrics(registry, {
      status: () => status,
      matchIndexOf: (id) => (status.role === "leader" ? (match.get(id) ?? null) : null),
    });
    let s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_term"), 7);
    assert.equal(sampleValue(s, "tenure_is_leader"), 1);
    assert.equal(sampleValue(s, "tenure_has_leader"), 1);
    assert.equal(sampleValue(s, "tenure_commit_index"), 40);
    assert.equal(sampleValue(s, "tenure_applied_index"), 39);
    assert.equal(sampleValue(s, "tenure_last_index"), 42);
    assert.equal(sampleValue(s, "tenure_role", { role: "leader" }), 1);
    assert.equal(sampleValue(s, "tenure_role", { role: "follower" }), 0);
    assert.equal(sampleValue(s, "tenure_leader", { leader_id: "a" }), 1);
    assert.equal(sampleValue(s, "tenure_peer_replication_lag_entries", { peer: "b" }), 0);
    assert.equal(sampleValue(s, "tenure_peer_replication_lag_entries", { peer: "c" }), 12);
    assert.equal(sampleValue(s, "tenure_peer_match_index", { peer: "c" }), 30);
    assert.equal(samplesOf(s, "tenure_peer_match_index", { peer: "a" }).length, 0, "not itself");
    // The same registry after the member stepped down: no peer samples, no leader known.
    status = { ...status, role: "preCandidate", leader: "", term: 8, recovering: true };
    s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_is_leader"), 0);
    assert.equal(sampleValue(s, "tenure_has_leader"), 0);
    assert.equal(sampleValue(s, "tenure_role", { role: "pre_candidate" }), 1);
    assert.equal(sampleValue(s, "tenure_recovering"), 1);
    assert.equal(samplesOf(s, "tenure_leader").length, 0);
    assert.equal(samplesOf(s, "tenure_peer_replication_lag_entries").length, 0);
  });

  it("two registries in one process do not share metrics", async () => {
    const st = (id: string): RaftStatusView => ({
      id,
      role: "follower",
      term: id === "a" ? 1 : 2,
      leader: "",
      commitIndex: 0,
      appliedIndex: 0,
      lastIndex: 0,
      confState: CS,
    });
    const r1 = createRegistry();
    const r2 = createRegistry();
    registerRaftMetrics(r1, { status: () => st("a") });
    registerRaftMetrics(r2, { status: () => st("b") });
    assert.equal(sampleValue(parseExposition(await r1.metrics()), "tenure_term"), 1);
    assert.equal(sampleValue(parseExposition(await r2.metrics()), "tenure_term"), 2);
  });
});
