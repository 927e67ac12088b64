// The retry engine against a scripted transport: same seq on every retry, NOT_LEADER hints
// followed, OUTCOME_UNKNOWN retried, and the error a caller gets when its deadline ends a call.

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { describe, it } from "node:test";
import { encodeErrorDetail, ERROR_DETAIL_METADATA_KEY, type ErrorReason } from "../proto/tenure_protos.ts";
import { scriptedRpc, scriptedTransport, type ScriptedStep } from "../testing/kits/scripted_transport.ts";
import { TenureError } from "./errors.ts";
import type { Message, Transport } from "./transport.ts";

function err(code: grpc.status, reason: ErrorReason | null, leaderAddress = "", retryAfterMs = 0): TenureError {
  const metadata = new grpc.Metadata();
  if (reason)
    metadata.set(ERROR_DETAIL_METADATA_KEY, encodeErrorDetail({ reason, leaderId: "", leaderAddress, currentToken: 0, retryAfterMs }));
  return TenureError.from(Object.assign(new Error("x"), { code, details: "x", metadata }));
}

type Step = ScriptedStep;

const scripted = (steps: Step[]) => scriptedTransport(steps, () => err(grpc.status.UNAVAILABLE, null));
const rpc = (transport: Transport) => scriptedRpc(transport);

describe("Rpc retries", () => {
  it("keeps (client_id, seq) across NOT_LEADER, NO_LEADER, OUTCOME_UNKNOWN and connection failures; follows the hint", async () => {
    const { transport, calls } = scripted([
      err(grpc.status.UNAVAILABLE, "NOT_LEADER", "c"),
      err(grpc.status.UNAVAILABLE, "NO_LEADER"),
      err(grpc.status.UNAVAILABLE, "OUTCOME_UNKNOWN"),
      err(grpc.status.UNAVAILABLE, null),
      { leaseId: "7" },
    ]);
    const res = await rpc(transport).mutate("Lease", "Grant", { ttlMs: 1000 });
    assert.equal(res["leaseId"], "7");
    assert.equal(calls[1]?.endpoint, "c", "went straight to the hinted leader");
    const ids = new Set(calls.map((c) => `${String(c.request["clientId"])}#${String(c.request["seq"])}`));
    assert.deepEqual([...ids], ["t.1#1"]);
  });

  it("OVERLOADED: backs off on the SAME endpoint for at least the server's retry-after, same seq, then succeeds", async () => {
    const overloaded = () => err(grpc.status.RESOURCE_EXHAUSTED, "OVERLOADED", "", 40);
    const { transport, calls } = scripted([overloaded(), overloaded(), { leaseId: "9" }]);
    const started = performance.now();
    const res = await rpc(transport).mutate("Lease", "Grant", { ttlMs: 1000 }, { timeoutMs: 5_000 });
    const tookMs = performance.now() - started;
    assert.equal(res["leaseId"], "9");
    assert.deepEqual(
      calls.map((c) => c.endpoint),
      ["a", "a", "a"],
      "stayed on the busy leader: a follower would only send it back",
    );
    assert.deepEqual([...new Set(calls.map((c) => `${String(c.request["clientId"])}#${String(c.request["seq"])}`))], ["t.1#1"]);
    // 40 ms, then 80 ms, each plus half again of jitter (random 0.5): at least 40 + 80.
    assert.ok(tookMs >= 115, `waited out the hints (${tookMs.toFixed(0)} ms)`);
  });

  it("OVERLOADED until the deadline: the caller gets OVERLOADED (RESOURCE_EXHAUSTED, nothing proposed), not OUTCOME_UNKNOWN", async () => {
    const busy = Array.from({ length: 100 }, () => err(grpc.status.RESOURCE_EXHAUSTED, "OVERLOADED", "", 30));
    const { transport, calls } = scripted(busy);
    await assert.rejects(
      rpc(transport).mutate("Lease", "Grant", {}, { timeoutMs: 200 }),
      (e: unknown) =>
        e instanceof TenureError && e.code === "OVERLOADED" && e.grpcCode === grpc.status.RESOURCE_EXHAUSTED && e.retryAfterMs === 30,
    );
    assert.ok(calls.every((c) => c.endpoint === "a"));
    assert.ok(calls.length >= 2 && calls.length <= 5, `${calls.length} attempts in 200 ms`);
  });

  it("a blocking call given up with its outcome unknown settles its wait under the same seq (1 ms server timeout); a grant found then is given back", async () => {
    for (const answer of ["withdrawn", "granted"] as const) {
      const controller = new AbortController();
      const granted: Message[] = [];
      // A connection failure (the Acquire may have queued), then the caller gives up; the
      // settling attempt is answered: withdrawn (DEADLINE_EXCEEDED TIMEOUT) or a grant.
      const settle = answer === "withdrawn" ? err(grpc.status.DEADLINE_EXCEEDED, "TIMEOUT") : { token: "42" };
      const { transport, calls } = scripted([err(grpc.status.UNAVAILABLE, null), settle]);
      const call = rpc(transport).mutate(
        "Lock",
        "Acquire",
        { name: "n", leaseId: "5", wait: true, timeoutMs: 0 },
        {
          blocking: true,
          signal: controller.signal,
          withdraw: {
            fields: { name: "n", leaseId: "5", wait: true, timeoutMs: 1 },
            timeoutMs: 1_000,
            onGranted: async (res) => {
              granted.push(res);
            },
          },
        },
      );
      // Both scripted answers are consumed only after the abort: the first attempt fails at once
      // and the retry's backoff is where the caller gives up.
      controller.abort();
      await assert.rejects(call, (e: unknown) => e instanceof TenureError && e.code === "OUTCOME_UNKNOWN");
      const settled = calls.at(-1)?.request;
      assert.equal(settled?.["timeoutMs"], 1, `${answer}: the settling attempt asks with a 1 ms server timeout`);
      assert.deepEqual(
        [...new Set(calls.map((c) => `${String(c.request["clientId"])}#${String(c.request["seq"])}`))],
        ["t.1#1"],
        `${answer}: the same (client_id, seq) as the call it settles`,
      );
      assert.deepEqual(granted, answer === "granted" ? [{ token: "42" }] : [], `${answer}: a grant goes back, nothing else`);
    }
  });

  it("a blocking call reserves seq + 1 on its session; the session's next call uses seq + 2", async () => {
    const { transport, calls } = scripted([{ token: "1" }, { released: true }]);
    const r = rpc(transport);
    await r.mutate("Lock", "Acquire", { name: "n" }, { blocking: true });
    await r.mutate("Lock", "Release", { name: "n" });
    assert.deepEqual(
      calls.map((c) => [c.request["clientId"], c.request["seq"]]),
      [
        ["t.1", 1],
        ["t.1", 3],
      ],
    );
  });

  it("a definitive server error is thrown at once, not retried", async () => {
    const { transport, calls } = scripted([err(grpc.status.ABORTED, "LOCK_HELD")]);
    await assert.rejects(
      rpc(transport).mutate("Lock", "Acquire", { name: "n" }),
      (e: unknown) => e instanceof TenureError && e.code === "LOCK_HELD",
    );
    assert.equal(calls.length, 1);
  });

  it("the deadline after a possibly applied attempt is OUTCOME_UNKNOWN; for a read it is DEADLINE_EXCEEDED", async () => {
    const forever = (): Step[] => Array.from({ length: 1000 }, () => err(grpc.status.UNAVAILABLE, "OUTCOME_UNKNOWN"));
    await assert.rejects(
      rpc(scripted(forever()).transport).mutate("Lease", "Grant", {}, { timeoutMs: 50 }),
      (e: unknown) => e instanceof TenureError && e.code === "OUTCOME_UNKNOWN",
    );
    const noLeader = Array.from({ length: 1000 }, () => err(grpc.status.UNAVAILABLE, "NO_LEADER"));
    await assert.rejects(
      rpc(scripted(noLeader).transport).read("Lock", "Status", {}, { timeoutMs: 50 }),
      (e: unknown) => e instanceof TenureError && e.code === "DEADLINE_EXCEEDED",
    );
  });

  it("STALE_SEQUENCE on a retry after an attempt that may have applied is OUTCOME_UNKNOWN; on a first attempt it is definite", async () => {
    const retried = scripted([err(grpc.status.UNAVAILABLE, null), err(grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE")]);
    await assert.rejects(
      rpc(retried.transport).mutate("Lock", "Acquire", { name: "n" }, { blocking: true }),
      (e: unknown) => e instanceof TenureError && e.code === "OUTCOME_UNKNOWN",
    );
    const first = scripted([err(grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE")]);
    await assert.rejects(
      rpc(first.transport).mutate("Lock", "Acquire", { name: "n" }),
      (e: unknown) => e instanceof TenureError && e.code === "STALE_SEQUENCE",
    );
  });

  it("WAIT_CANCELLED on a blocking call (the server withdrew its wait) queues again under a new seq; bounded; not for other calls", async () => {
    const cut = err(grpc.status.UNAVAILABLE, null);
    const withdrawn = () => err(grpc.status.ABORTED, "WAIT_CANCELLED");
    const { transport, calls } = scripted([cut, withdrawn(), { token: "5" }]);
    const res = await rpc(transport).mutate("Lock", "Acquire", { name: "n" }, { blocking: true });
    assert.equal(res["token"], "5");
    assert.deepEqual(
      calls.map((c) => [c.request["clientId"], c.request["seq"]]),
      [
        ["t.1", 1],
        ["t.1", 1],
        ["t.1", 3],
      ],
      "the retry keeps seq 1; the new wait skips the withdrawal's seq 2",
    );
    const always = scripted(Array.from({ length: 50 }, withdrawn));
    await assert.rejects(
      rpc(always.transport).mutate("Lock", "Acquire", { name: "n" }, { blocking: true }),
      (e: unknown) => e instanceof TenureError && e.code === "WAIT_CANCELLED",
    );
    assert.equal(always.calls.length, 9, "the first wait and 8 new ones");
    const plain = scripted([withdrawn(), { token: "1" }]);
    await assert.rejects(
      rpc(plain.transport).mutate("Lock", "Acquire", { name: "n" }),
      (e: unknown) => e instanceof TenureError && e.code === "WAIT_CANCELLED",
    );
    assert.equal(plain.calls.length, 1);
  });

  it("a blocking call's retry that finds the lease gone is OUTCOME_UNKNOWN (it may have been granted first); a first attempt's is definite", async () => {
    for (const reason of ["LEASE_NOT_FOUND", "LEASE_EXPIRED"] as const) {
      const code = reason === "LEASE_NOT_FOUND" ? grpc.status.NOT_FOUND : grpc.status.FAILED_PRECONDITION;
      const retried = scripted([err(grpc.status.UNAVAILABLE, null), err(code, reason)]);
      await assert.rejects(
        rpc(retried.transport).mutate("Election", "Campaign", { name: "e" }, { blocking: true }),
        (e: unknown) => e instanceof TenureError && e.code === "OUTCOME_UNKNOWN" && (e.cause as TenureError).code === reason,
      );
      const first = scripted([err(code, reason)]);
      await assert.rejects(
        rpc(first.transport).mutate("Election", "Campaign", { name: "e" }, { blocking: true }),
        (e: unknown) => e instanceof TenureError && e.code === reason,
      );
      const plain = scripted([err(grpc.status.UNAVAILABLE, null), err(code, reason)]);
      await assert.rejects(
        rpc(plain.transport).mutate("Lease", "Revoke", { leaseId: "1" }),
        (e: unknown) => e instanceof TenureError && e.code === reason,
        "a non-blocking call's lease answer stands",
      );
    }
  });

  it("SESSION_EXPIRED on a first attempt is retried once on a fresh client id starting at seq 1", async () => {
    const { transport, calls } = scripted([err(grpc.status.FAILED_PRECONDITION, "SESSION_EXPIRED"), { leaseId: "1" }]);
    await rpc(transport).mutate("Lease", "Grant", {});
    assert.deepEqual(
      calls.map((c) => [c.request["clientId"], c.request["seq"]]),
      [
        ["t.1", 1],
        ["t.2", 1],
      ],
    );
  });
});
