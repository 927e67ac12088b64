// Turns a chaos run's recorded operations into the linearizability checker's history format
// (testing/chaos/checker/history.ts), so every run is also checked against the sequential
// models: the token register per lock (with lease expiry as an internal step) and the guard per
// resource (the guard store of a lock is named after the lock).

import type { History as CheckerHistory, Operation, OpFailure } from "./checker/history.ts";
import type { Op } from "./workload.ts";

export function toCheckerHistory(ops: readonly Op[]): CheckerHistory {
  const out: Operation[] = [];
  ops.forEach((op, id) => {
    const base = { id, client: `c${op.client}`, invokeMs: op.inv, completeMs: op.cmp };
    const failure: OpFailure = { error: op.error ?? "failed", ambiguous: op.outcome === "info" };
    switch (op.type) {
      case "acquire":
        out.push({
          ...base,
          kind: "acquire",
          input: { name: op.name },
          output: op.outcome === "ok" && op.token !== undefined ? { token: op.token } : failure,
        });
        return;
      case "release": {
        if (op.token === undefined) return;
        // released = false (no error) is an answer: the token was no longer current.
        const output = op.outcome === "ok" ? { released: true } : op.error === undefined ? { released: false } : failure;
        out.push({ ...base, kind: "release", input: { name: op.name, token: op.token }, output });
        return;
      }
      case "write": {
        if (op.token === undefined) return;
        const output =
          op.outcome === "ok"
            ? { result: "accepted" as const }
            : op.error === "STALE_FENCING_TOKEN"
              ? { result: "stale" as const }
              : failure;
        out.push({ ...base, kind: "guard-write", input: { resource: op.name, token: op.token }, output });
        return;
      }
      case "read":
        // A read changes nothing: one that failed or timed out constrains nothing either.
        if (op.outcome === "ok") out.push({ ...base, kind: "read-holder", input: { name: op.name }, output: { token: op.holder ?? null } });
        return;
      case "validate":
        if (op.outcome === "ok" && op.token !== undefined)
          out.push({ ...base, kind: "validate", input: { name: op.name, token: op.token }, output: { current: op.current === true } });
        return;
      case "abandon": // not an operation on the service: the lease simply lapses (an expiry step)
      case "lease-acquire": // on its own lock name, checked by checkRevokedLeaseGrants
        return;
    }
  });
  return out;
}
