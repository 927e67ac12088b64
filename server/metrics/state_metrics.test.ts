import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeNode } from "../../testing/kits/fake_node.ts";
import { parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import type { ClientCommand } from "../state/commands.ts";
import { createRegistry } from "./registry.ts";
import { registerStateMetrics } from "./state_metrics.ts";

const session = (clientId: string, seq: number) => ({ clientId, seq, identity: "", admin: false });

async function applied(node: FakeNode, command: ClientCommand): Promise<Record<string, unknown>> {
  const o = await node.submit(command);
  assert.ok(o.kind === "applied" && o.result.ok, JSON.stringify(o));
  return o.result as unknown as Record<string, unknown>;
}

describe("state metrics", () => {
  it("reads the tables at scrape time and counts tokens and expiries from applied events", async () => {
    const registry = createRegistry();
    const node = new FakeNode();
    const off = registerStateMetrics(registry, { machine: () => node.machine, subscribe: (l) => node.subscribe(l) });
    const l1 = (await applied(node, { kind: "LeaseGrant", ttlMs: 1_000, ...session("c1", 1) }))["leaseId"] as number;
    const l2 = (await applied(node, { kind: "LeaseGrant", ttlMs: 60_000, ...session("c2", 1) }))["leaseId"] as number;
    await applied(node, { kind: "LockAcquire", name: "A", leaseId: l1, wait: true, ...session("c1", 2) });
    await applied(node, { kind: "LockAcquire", name: "A", leaseId: l2, wait: true, ...session("c2", 2) });
    await applied(node, { kind: "ElectionCampaign", name: "E", leaseId: l2, value: "v", ...session("c2", 3) });
    let s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_leases_active"), 2);
    assert.equal(sampleValue(s, "tenure_locks_held"), 1);
    assert.equal(sampleValue(s, "tenure_locks_waiting"), 1);
    assert.equal(sampleValue(s, "tenure_elections_led"), 1);
    assert.equal(sampleValue(s, "tenure_sessions"), 2, "clients c1 and c2");
    assert.equal(sampleValue(s, "tenure_frozen"), 0);
    assert.equal(sampleValue(s, "tenure_tokens_issued_total", { table: "lock" }), 1);
    assert.equal(sampleValue(s, "tenure_tokens_issued_total", { table: "election" }), 1);
    const lastToken = sampleValue(s, "tenure_fencing_token_last");
    assert.equal(lastToken, node.machine.tokens().lastToken);
    assert.ok(lastToken >= 2);
    await applied(node, { kind: "Freeze", reason: "drill", ...session("ops", 1), admin: true });
    assert.equal(sampleValue(parseExposition(await registry.metrics()), "tenure_frozen"), 1);
    await applied(node, { kind: "Thaw", ...session("ops", 2), admin: true });
    assert.equal(sampleValue(parseExposition(await registry.metrics()), "tenure_frozen"), 0);
    // l1 expires: A goes into lock-delay (FakeNode: lock delay is the state config's default).
    node.advance(5_000);
    node.fireTimers();
    s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_leases_expired_total"), 1);
    assert.equal(sampleValue(s, "tenure_leases_active"), 1);
    assert.equal(sampleValue(s, "tenure_locks_held"), 0);
    assert.equal(sampleValue(s, "tenure_locks_delayed"), 1);
    off();
    node.advance(120_000);
    node.fireTimers();
    s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_leases_expired_total"), 1, "unsubscribed: l2's expiry not counted");
    assert.equal(sampleValue(s, "tenure_leases_active"), 0, "the gauges still read the tables");
  });
});
