import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { helpOf, parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import type { ConfState } from "../core/types.ts";
import { LeadershipMetrics } from "./leadership_metrics.ts";
import type { RaftStatusView } from "./raft_metrics.ts";
import { createRegistry } from "./registry.ts";

const CS: ConfState = { voters: ["a", "b", "w"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: ["w"], autoLeave: false };
const base: RaftStatusView = {
  id: "a",
  role: "follower",
  term: 3,
  leader: "b",
  commitIndex: 10,
  appliedIndex: 10,
  lastIndex: 10,
  confState: CS,
};

function setup(): {
  metrics: LeadershipMetrics;
  set: (s: Partial<RaftStatusView>) => void;
  pending: { n: number };
  read: () => Promise<ReturnType<typeof parseExposition>>;
  text: () => Promise<string>;
} {
  let status = base;
  const pending = { n: 0 };
  const registry = createRegistry();
  const metrics = new LeadershipMetrics(registry, { status: () => status, pendingProposals: () => pending.n, electionTimeoutMs: 200 });
  return {
    metrics,
    set: (s) => (status = { ...status, ...s }),
    pending,
    read: async () => parseExposition(await registry.metrics()),
    text: () => registry.metrics(),
  };
}

describe("leadership metrics", () => {
  it("counts leader changes and elections (term rises, even when sampling missed terms)", async () => {
    const t = setup();
    t.metrics.sample(0); // first sight of b in term 3 is a leadership begun
    t.metrics.sample(10);
    t.set({ term: 4, leader: "" });
    t.metrics.sample(20);
    t.set({ term: 4, leader: "c" });
    t.metrics.sample(30);
    t.set({ term: 7, leader: "c" }); // c re-elected, two terms unseen in between
    t.metrics.sample(40);
    const s = await t.read();
    assert.equal(sampleValue(s, "tenure_leader_changes_total"), 3);
    assert.equal(sampleValue(s, "tenure_elections_total"), 4);
  });

  it("witness leading: the gauge and its seconds", async () => {
    const t = setup();
    t.metrics.sample(0);
    t.set({ term: 4, leader: "w" });
    t.metrics.sample(100);
    t.metrics.sample(600);
    t.metrics.sample(1100);
    let s = await t.read();
    assert.equal(sampleValue(s, "tenure_witness_leading"), 1);
    assert.ok(Math.abs(sampleValue(s, "tenure_witness_leading_seconds_total") - 1.0) < 1e-9, "from 100 ms to 1100 ms");
    t.set({ term: 5, leader: "b" });
    t.metrics.sample(1200);
    s = await t.read();
    assert.equal(sampleValue(s, "tenure_witness_leading"), 0);
    assert.ok(Math.abs(sampleValue(s, "tenure_witness_leading_seconds_total") - 1.1) < 1e-9, "it led until it was seen not to");
    t.metrics.sample(2_000);
    assert.ok(Math.abs(sampleValue(await t.read(), "tenure_witness_leading_seconds_total") - 1.1) < 1e-9);
    assert.match(helpOf(await t.text(), "tenure_witness_leading") ?? "", /SAFETY/);
  });

  it("commit stalled: entries wait and commit stands still for more than an election timeout", async () => {
    const t = setup();
    t.metrics.sample(0);
    t.set({ lastIndex: 12 }); // two entries wait from 100 ms on
    t.metrics.sample(100);
    t.metrics.sample(300);
    assert.equal(sampleValue(await t.read(), "tenure_commit_stalled"), 0, "200 ms: not more than the timeout");
    t.metrics.sample(301);
    assert.equal(sampleValue(await t.read(), "tenure_commit_stalled"), 1);
    t.set({ commitIndex: 11 }); // progress resets the wait
    t.metrics.sample(400);
    assert.equal(sampleValue(await t.read(), "tenure_commit_stalled"), 0);
    t.set({ commitIndex: 12 });
    t.pending.n = 1; // nothing in the log ahead, but a client proposal waits
    t.metrics.sample(500);
    t.metrics.sample(800);
    let s = await t.read();
    assert.equal(sampleValue(s, "tenure_commit_stalled"), 1);
    t.pending.n = 0;
    t.metrics.sample(900);
    s = await t.read();
    assert.equal(sampleValue(s, "tenure_commit_stalled"), 0, "nothing waits: not stalled, however long commit stands");
    t.metrics.sample(5_000);
    s = await t.read();
    assert.equal(sampleValue(s, "tenure_commit_stalled"), 0);
    assert.equal(sampleValue(s, "tenure_commit_stalls_total"), 2);
  });
});
