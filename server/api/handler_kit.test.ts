// submitOk / readOk: a call cancelled before the node answered is CANCELLED, not what the node
// then said of the abandoned work (NO_LEADER for "cancelled before proposing", OUTCOME_UNKNOWN).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeApi } from "../node/node_api.ts";
import { readOk, submitOk, type ServiceDeps } from "./handler_kit.ts";
import { ApiError } from "./status_map.ts";

function depsAnswering(outcome: { kind: "unavailable"; reason: string }): ServiceDeps {
  const node = {
    submit: async () => outcome,
    read: async () => outcome,
    status: () => ({ id: "a", role: "leader", term: 1, leader: "a", commitIndex: 0, appliedIndex: 0, lastIndex: 0 }),
    memberAddresses: () => new Map(),
  } as unknown as NodeApi;
  return { node } as unknown as ServiceDeps;
}

const command = { kind: "LeaseGrant", clientId: "x", seq: 1, ttlMs: 1000 } as const;

describe("handler kit", () => {
  it("an answer that comes after the call was cancelled is CANCELLED; without the cancel it is the node's", async () => {
    const deps = depsAnswering({ kind: "unavailable", reason: "cancelled before proposing" });
    const controller = new AbortController();
    controller.abort(new ApiError("CANCELLED", "Lease.Grant was cancelled"));
    const reasons = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
        return "ok";
      } catch (error) {
        assert.ok(error instanceof ApiError, String(error));
        return error.reason;
      }
    };
    assert.equal(await reasons(submitOk(deps, command, "LeaseGrant", { signal: controller.signal })), "CANCELLED");
    assert.equal(await reasons(readOk(deps, () => 1, { signal: controller.signal })), "CANCELLED");
    assert.equal(await reasons(submitOk(deps, command, "LeaseGrant", { signal: new AbortController().signal })), "NO_LEADER");
    assert.equal(await reasons(readOk(deps, () => 1)), "NO_LEADER");
  });
});
