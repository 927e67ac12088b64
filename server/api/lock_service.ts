// tenure.v1.Lock: Acquire (optionally blocking), Release (fenced), Status, ValidateToken.

import type * as grpc from "@grpc/grpc-js";
import { isFatal } from "../fatal.ts";
import type { MutexStatus } from "../state/lock_table.ts";
import { readOk, submitOk, unary, type ServiceDeps } from "./handler_kit.ts";
import { ApiError } from "./status_map.ts";
import { parseFencedRelease, parseLockAcquire, parseName, parseValidateToken } from "./validate.ts";
import { acquireBlocking } from "./wait_grant.ts";

export function lockService(deps: ServiceDeps): grpc.UntypedServiceImplementation {
  const limits = deps.config.limits;
  return {
    Acquire: unary("Lock.Acquire", async (raw, ctx) => {
      const { timeoutMs, ...req } = parseLockAcquire(raw, limits);
      try {
        const grant = await acquireBlocking(deps, ctx, {
          table: "lock",
          command: { kind: "LockAcquire", ...req },
          timeoutMs,
        });
        return { token: grant.token, validUntil: grant.validUntil, replayed: grant.replayed };
      } catch (error) {
        if (error instanceof ApiError && error.reason === "LOCK_HELD") {
          throw error.withCurrentToken(await currentToken(deps, "lock", req.name));
        }
        throw error;
      }
    }),
    Release: unary("Lock.Release", async (raw) => {
      const req = parseFencedRelease(raw, limits);
      const { body } = await submitOk(deps, { kind: "LockRelease", ...req }, "LockRelease");
      return { released: body.released };
    }),
    Status: unary("Lock.Status", async (raw) => {
      const { name } = parseName(raw, limits);
      const { value } = await readOk(deps, (m) => m.lockStatus(name));
      return encodeMutexStatus(value);
    }),
    ValidateToken: unary("Lock.ValidateToken", async (raw) => {
      const { name, token } = parseValidateToken(raw, limits);
      const { value } = await readOk(deps, (m) => m.validateToken(name, token));
      const kind = value.table === null ? "GRANT_KIND_NONE" : value.table === "lock" ? "GRANT_KIND_LOCK" : "GRANT_KIND_ELECTION";
      return { current: value.current, kind, currentToken: value.currentToken ?? 0 };
    }),
  };
}

export function encodeMutexStatus(status: MutexStatus): object {
  const holder = status.holder;
  return {
    name: status.name,
    state: `MUTEX_STATE_${status.state}`,
    holder: holder === null ? null : { leaseId: holder.leaseId, token: holder.token, value: holder.value, grantedAtMs: holder.grantedAtMs },
    waiterLeaseIds: status.waiters.map((w) => w.leaseId),
    delayUntilMs: status.delay?.untilMs ?? 0,
  };
}

/** The current grant's token for an error detail; best effort (0 when unknown or free). */
export async function currentToken(deps: ServiceDeps, table: "lock" | "election", name: string): Promise<number> {
  try {
    const { value } = await readOk(deps, (m) => (table === "lock" ? m.lockStatus(name) : m.electionStatus(name)));
    return value.holder?.token ?? 0;
  } catch (error) {
    if (isFatal(error)) throw error; // a broken invariant is not "unknown": it stops the process
    return 0;
  }
}
