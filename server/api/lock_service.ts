// tenure.v1.Lock: Acquire (optionally blocking), Release (fenced), Status, ValidateToken, Watch
// (server stream, lock_watch.ts).
//
// Permissions: lock on the name for Acquire and Release, read for Status and ValidateToken. A lock
// belongs to the owner of its holder's lease: the machine refuses another identity's Release.
// Status shows every reader the state, the token and the waiter count (a fencing token is not a
// credential), but lease ids only to their owner and admins.

import type * as grpc from "@grpc/grpc-js";
import type { Principal } from "../auth/principal.ts";
import { isFatal } from "../fatal.ts";
import type { MutexStatus } from "../state/lock_table.ts";
import type { LockStateMachine } from "../state/machine.ts";
import { callerFields, readOk, requirePermission, submitOk, unary, type ServiceDeps } from "./handler_kit.ts";
import { lockWatchHandler } from "./lock_watch.ts";
import { ApiError, LockHeldError } from "./status_map.ts";
import { parseFencedRelease, parseLockAcquire, parseName, parseValidateToken } from "./validate.ts";
import { acquireBlocking } from "./wait_grant.ts";

export function lockService(deps: ServiceDeps): grpc.UntypedServiceImplementation {
  const limits = deps.config.limits;
  return {
    Acquire: unary(deps, "Lock.Acquire", async (raw, ctx) => {
      const { timeoutMs, ...req } = parseLockAcquire(raw, limits);
      requirePermission(ctx, "lock", req.name);
      try {
        const grant = await acquireBlocking(deps, ctx, {
          table: "lock",
          command: { kind: "LockAcquire", ...req, ...callerFields(ctx.principal) },
          timeoutMs,
        });
        return { token: grant.token, validUntil: grant.validUntil, replayed: grant.replayed };
      } catch (error) {
        // The refusal carries the token of the grant that refused it (one commit, no read).
        // Only a result stored by older code (a retry of its last request) lacks it: read it.
        if (error instanceof ApiError && error.reason === "LOCK_HELD" && !(error instanceof LockHeldError)) {
          throw error.withCurrentToken(await currentToken(deps, "lock", req.name));
        }
        throw error;
      }
    }),
    Release: unary(deps, "Lock.Release", async (raw, ctx) => {
      const req = parseFencedRelease(raw, limits);
      requirePermission(ctx, "lock", req.name);
      const { body } = await submitOk(deps, { kind: "LockRelease", ...req, ...callerFields(ctx.principal) }, "LockRelease", {
        signal: ctx.signal,
      });
      return { released: body.released };
    }),
    Status: unary(deps, "Lock.Status", async (raw, ctx) => {
      const { name } = parseName(raw, limits);
      requirePermission(ctx, "read", name);
      const { value } = await readOk(deps, (m) => visibleStatus(m, m.lockStatus(name), ctx.principal), { signal: ctx.signal });
      return encodeMutexStatus(value);
    }),
    Watch: lockWatchHandler(deps),
    ValidateToken: unary(deps, "Lock.ValidateToken", async (raw, ctx) => {
      const { name, token } = parseValidateToken(raw, limits);
      requirePermission(ctx, "read", name);
      const { value } = await readOk(deps, (m) => m.validateToken(name, token), { signal: ctx.signal });
      const kind = value.table === null ? "GRANT_KIND_NONE" : value.table === "lock" ? "GRANT_KIND_LOCK" : "GRANT_KIND_ELECTION";
      return { current: value.current, kind, currentToken: value.currentToken ?? 0 };
    }),
  };
}

/** A status as `principal` may see it: lease ids of other identities' leases are 0 or left out. */
export interface VisibleStatus extends Omit<MutexStatus, "waiters"> {
  readonly waiterLeaseIds: readonly number[];
  readonly waiterCount: number;
}

export function visibleStatus(m: LockStateMachine, status: MutexStatus, principal: Principal): VisibleStatus {
  const mine = (leaseId: number): boolean => principal.admin || m.leaseOwner(leaseId) === principal.identity;
  const holder = status.holder === null ? null : { ...status.holder, leaseId: mine(status.holder.leaseId) ? status.holder.leaseId : 0 };
  const waiterLeaseIds = status.waiters.map((w) => w.leaseId).filter(mine);
  return { name: status.name, state: status.state, holder, delay: status.delay, waiterLeaseIds, waiterCount: status.waiters.length };
}

export function encodeMutexStatus(status: VisibleStatus): object {
  const holder = status.holder;
  return {
    name: status.name,
    state: `MUTEX_STATE_${status.state}`,
    holder: holder === null ? null : { leaseId: holder.leaseId, token: holder.token, value: holder.value, grantedAtMs: holder.grantedAtMs },
    waiterLeaseIds: status.waiterLeaseIds,
    delayUntilMs: status.delay?.untilMs ?? 0,
    waiterCount: status.waiterCount,
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
