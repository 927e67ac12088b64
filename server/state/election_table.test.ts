import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stateConfig } from "./limits.ts";
import { decodeImage } from "./machine_snapshot.ts";
import { Driver } from "../../testing/kits/state_test_kit.ts";

/** The replicated tables without what every applied entry changes (index, time, sessions). */
function tables(d: Driver): unknown {
  const { leases, locks, elections, ids } = decodeImage(d.machine.snapshot());
  return { leases, locks, elections, ids };
}

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

  it("valueBytesTotalMax bounds the stored bytes of every held and waiting value; a refusal changes nothing", () => {
    // valueBytesMax 4: a value costs at most 4 x 6 stored bytes (control characters), so 24 is
    // the smallest total that still takes any one valid value.
    const d = new Driver(stateConfig({ limits: { valueBytesMax: 4, valueBytesTotalMax: 24 } }));
    const [la, lb, lc] = [d.grant("a"), d.grant("b"), d.grant("c")];
    const e1 = token(d.client("a", { kind: "ElectionCampaign", name: "E1", leaseId: la, value: "abcd" })); // 4
    const queued = d.client("b", { kind: "ElectionCampaign", name: "E1", leaseId: lb, value: 'x"\\' }); // stored as x\"\\: 5
    assert.ok(queued.ok && queued.kind === "ElectionCampaign" && queued.status === "queued");
    token(d.client("c", { kind: "ElectionCampaign", name: "E2", leaseId: lc, value: "\u0001\u0002" })); // 12: 21 in all
    const before = tables(d);
    const refusals = [
      d.client("a", { kind: "ElectionCampaign", name: "E3", leaseId: la, value: "wxyz" }), // a new name: 4 more
      d.client("a", { kind: "ElectionCampaign", name: "E2", leaseId: la, value: "wxyz" }), // a waiter: 4 more
      d.client("a", { kind: "ElectionProclaim", name: "E1", token: e1, value: "\u0001abc" }), // 4 -> 9: 5 more
    ];
    for (const [r, more] of refusals.map((r, i) => [r, [4, 4, 5][i]] as const)) {
      assert.ok(!r.ok && r.code === "LIMIT_EXCEEDED", JSON.stringify(r));
      assert.equal(r.message, `election values are at their total (this one needs ${more} stored bytes): valueBytesTotalMax = 24`);
    }
    assert.deepEqual(tables(d), before, "state unchanged");
    // What fits still passes: 3 bytes left.
    assert.ok(d.client("a", { kind: "ElectionCampaign", name: "E3", leaseId: la, value: "xyz" }).ok);
    assert.ok(d.client("a", { kind: "ElectionProclaim", name: "E1", token: e1, value: "ab" }).ok, "shrinking always passes");
    assert.ok(d.client("a", { kind: "ElectionProclaim", name: "E1", token: e1, value: "abcd" }).ok, "back to 4: fits again");
    // Wrong token first: NOT_HOLDER, whatever the value would cost.
    const wrong = d.client("b", { kind: "ElectionProclaim", name: "E1", token: e1 + 100, value: "\u0001\u0001\u0001\u0001" });
    assert.ok(!wrong.ok && wrong.code === "NOT_HOLDER");
    // Resigning hands E1 to b (its value moves with it); revoking c frees E2's 12 bytes.
    d.client("a", { kind: "ElectionResign", name: "E1", token: e1 });
    assert.equal(d.machine.electionLeader("E1")?.value, 'x"\\');
    d.client("c", { kind: "LeaseRevoke", leaseId: lc });
    const big = d.client("a", { kind: "ElectionCampaign", name: "E4", leaseId: la, value: "\u0001\u0001" });
    assert.ok(big.ok, JSON.stringify(big));
  });
});
