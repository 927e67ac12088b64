import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeNode } from "../../testing/kits/fake_node.ts";
import { parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import { MeteredNode } from "./proposal_metrics.ts";
import { createRegistry } from "./registry.ts";

const grant = { kind: "LeaseGrant", ttlMs: 5_000, clientId: "c1", seq: 1, identity: "", admin: false } as const;

describe("proposal metrics", () => {
  it("counts each outcome, times applied ones, counts new lease grants but not replays", async () => {
    const registry = createRegistry();
    const fake = new FakeNode();
    let nowMs = 0;
    const node = new MeteredNode(fake, registry, () => nowMs);
    const pending = node.submit(grant);
    assert.equal(node.pendingProposals(), 1, "waiting while the node decides");
    nowMs = 30; // 30 ms from submit to outcome
    assert.equal((await pending).kind, "applied");
    assert.equal(node.pendingProposals(), 0);
    assert.equal((await node.submit(grant)).kind, "applied", "the same seq: a replay");
    fake.mode = { kind: "notLeader", hint: null };
    await node.submit({ ...grant, seq: 2 });
    fake.mode = { kind: "unavailable", reason: "x" };
    await node.submit({ ...grant, seq: 3 });
    fake.mode = { kind: "outcomeUnknown", applies: false };
    await node.submit({ ...grant, seq: 4 });
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_proposals_total", { outcome: "applied" }), 2);
    assert.equal(sampleValue(s, "tenure_proposals_total", { outcome: "not_leader" }), 1);
    assert.equal(sampleValue(s, "tenure_proposals_total", { outcome: "unavailable" }), 1);
    assert.equal(sampleValue(s, "tenure_proposals_total", { outcome: "outcome_unknown" }), 1);
    assert.equal(sampleValue(s, "tenure_proposal_apply_seconds_count"), 2);
    assert.ok(Math.abs(sampleValue(s, "tenure_proposal_apply_seconds_sum") - 0.03) < 1e-9);
    assert.equal(sampleValue(s, "tenure_proposal_apply_seconds_bucket", { le: "0.025" }), 1, "the replay took 0 s");
    assert.equal(sampleValue(s, "tenure_proposal_apply_seconds_bucket", { le: "0.05" }), 2);
    assert.equal(sampleValue(s, "tenure_leases_granted_total"), 1, "the replay is not a second grant");
    assert.equal(sampleValue(s, "tenure_proposals_pending"), 0);
  });

  it("passes every other NodeApi call through", async () => {
    const fake = new FakeNode();
    const node = new MeteredNode(fake, createRegistry());
    assert.deepEqual(node.status(), fake.status());
    assert.equal(node.memberAddresses(), fake.memberAddresses());
    const r = await node.read((m) => m.appliedIndex());
    assert.equal(r.kind, "read");
    let events = 0;
    const off = node.subscribe(() => events++);
    await node.submit(grant);
    off();
    assert.equal(events, 0, "a lease grant emits no state event");
  });
});
