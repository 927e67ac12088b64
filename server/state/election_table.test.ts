import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Driver } from "../../testing/kits/state_test_kit.ts";

const token = Driver.token;

describe("elections", () => {
  it("campaigners queue FIFO; proclaim and resign are fenced by the leadership token", () => {
    const d = new Driver();
    const [la, lb] = [d.grant("a"), d.grant("b")];
    const lockToken = token(d.acquire("a", "some-lock", la));
    const t1 = token(d.client("a", { kind: "ElectionCampaign", name: "E", leaseId: la, value: "a:1" }));
    assert.ok(t1 > lockToken, "one counter for locks and elections");
    const queued = d.client("b", { kind: "ElectionCampaign", name: "E", leaseId: lb, value: "b:1" });
    assert.ok(queued.ok && queued.kind === "ElectionCampaign" && queued.status === "queued");

    assert.equal(d.client("a", { kind: "ElectionProclaim", name: "E", token: t1, value: "a:2" }).ok, true);
    assert.deepEqual(d.machine.electionLeader("E"), { name: "E", leaseId: la, token: t1, value: "a:2" });
    const wrong = d.client("b", { kind: "ElectionProclaim", name: "E", token: t1 + 100, value: "x" });
    assert.ok(!wrong.ok && wrong.code === "NOT_HOLDER");

    const resign = d.client("a", { kind: "ElectionResign", name: "E", token: t1 });
    assert.ok(resign.ok && resign.kind === "ElectionResign" && resign.resigned);
    const leader = d.machine.electionLeader("E");
    assert.equal(leader?.leaseId, lb);
    assert.equal(leader?.value, "b:1");
    assert.ok((leader?.token ?? 0) > t1);
    const late = d.client("a", { kind: "ElectionResign", name: "E", token: t1 });
    assert.ok(late.ok && late.kind === "ElectionResign" && !late.resigned);
    assert.equal(d.machine.validateToken("E", leader?.token ?? 0).current, true);
  });

  it("an oversized value is INVALID_ARGUMENT", () => {
    const d = new Driver();
    const la = d.grant("a");
    const r = d.client("a", { kind: "ElectionCampaign", name: "E", leaseId: la, value: "x".repeat(5_000) });
    assert.ok(!r.ok && r.code === "INVALID_ARGUMENT");
  });
});
