// What each command does to the tables. PURE.
//
// Client commands validate their arguments (INVALID_ARGUMENT), their lease (LEASE_NOT_FOUND,
// LEASE_EXPIRED) and the limits (LIMIT_EXCEEDED) before touching state, so a rejected command
// changes nothing. System commands are guarded: a timer command that no longer matches the state
// (renewed lease, restarted delay, timers not yet restarted in this term) applies as a no-op.

import { assertNever } from "../core/assert.ts";
import type { ApplyContext } from "./apply_context.ts";
import type { ClientCommand, SystemCommand } from "./commands.ts";
import type { ElectionTable } from "./election_table.ts";
import type { IdAllocator } from "./id_allocator.ts";
import type { LeaseRecord, LeaseTable } from "./lease_table.ts";
import { utf8ByteLength, type StateConfig } from "./limits.ts";
import type { AcquireOutcome, LockTable } from "./lock_table.ts";
import {
  errorResult,
  okResult,
  type CommandError,
  type CommandResult,
  type KeepAliveFailure,
  type ValidUntil,
} from "./results.ts";
import type { SessionTable } from "./session_table.ts";

/** The replicated state, shared by the machine and these handlers. */
export interface MachineTables {
  readonly config: StateConfig;
  readonly ids: IdAllocator;
  readonly leases: LeaseTable;
  readonly locks: LockTable;
  readonly elections: ElectionTable;
  readonly sessions: SessionTable;
  appliedIndex: number;
  /** Leader time: max over every applied stamp. */
  nowMs: number;
  /** Term of the last LeaderTimersRestart; timer commands of other terms do nothing. */
  timersTerm: number;
}

export function applyClientCommand(s: MachineTables, ctx: ApplyContext, command: ClientCommand): CommandResult {
  switch (command.kind) {
    case "LeaseGrant":
      return leaseGrant(s, ctx, command.clientId, command.ttlMs);
    case "LeaseKeepAlive":
      return leaseKeepAlive(s, ctx, command.leaseIds);
    case "LeaseRevoke": {
      if (s.leases.get(command.leaseId) === undefined) return leaseNotFound(command.leaseId);
      removeLease(s, ctx, command.leaseId, false);
      return okResult({ kind: "LeaseRevoke", leaseId: command.leaseId });
    }
    case "LockAcquire":
    case "ElectionCampaign":
      return acquire(s, ctx, command);
    case "LockRelease":
      return okResult({ kind: "LockRelease", released: s.locks.release(ctx, command.name, command.token) });
    case "ElectionProclaim": {
      const bad = checkValue(s, command.value);
      if (bad !== null) return bad;
      if (!s.elections.proclaim(ctx, command.name, command.token, command.value)) {
        return errorResult("NOT_HOLDER", `token ${command.token} is not the leadership of ${command.name}`);
      }
      return okResult({ kind: "ElectionProclaim", token: command.token });
    }
    case "ElectionResign": {
      const resigned = s.elections.resign(ctx, command.name, command.token);
      return okResult({ kind: "ElectionResign", resigned });
    }
    case "WaitCancel": {
      const table = command.table === "lock" ? s.locks : s.elections.table;
      return okResult({ kind: "WaitCancel", cancelled: table.cancelWait(command.name, command.leaseId) });
    }
    default:
      return assertNever(command, "client command");
  }
}

export function applySystemCommand(
  s: MachineTables,
  ctx: ApplyContext,
  command: SystemCommand,
  term: number,
): CommandResult {
  switch (command.kind) {
    case "LeaseExpire": {
      const lease = s.leases.get(command.leaseId);
      const applies =
        term === s.timersTerm &&
        lease !== undefined &&
        lease.renewSeq === command.renewSeq &&
        !s.leases.isLive(lease, ctx.nowMs);
      if (applies) removeLease(s, ctx, command.leaseId, true);
      return okResult({ kind: "LeaseExpire", applied: applies });
    }
    case "LockDelayEnd": {
      const table = command.table === "lock" ? s.locks : s.elections.table;
      const applies = term === s.timersTerm && table.endDelay(ctx, command.name, command.delayId);
      return okResult({ kind: "LockDelayEnd", applied: applies });
    }
    case "LeaderTimersRestart": {
      // Terms never decrease along the log (a restored backup starts over at 0, see machine.ts).
      s.timersTerm = term;
      const leases = s.leases.restartAll(ctx.nowMs);
      const delayMs = s.config.lockDelayMs;
      const delays = s.locks.restartDelays(ctx, delayMs) + s.elections.table.restartDelays(ctx, delayMs);
      return okResult({ kind: "LeaderTimersRestart", leases, delays });
    }
    case "RestoreEpochBump": {
      if (!s.ids.canBump(command.epochMin)) {
        return errorResult("INVALID_ARGUMENT", "epochMin beyond the epoch space");
      }
      return okResult({ kind: "RestoreEpochBump", epoch: s.ids.bumpEpoch(command.epochMin) });
    }
    case "Noop":
      return okResult({ kind: "Noop" });
    default:
      return assertNever(command, "system command");
  }
}

function leaseGrant(s: MachineTables, ctx: ApplyContext, clientId: string, ttlMs: number): CommandResult {
  const limits = s.config.limits;
  if (ttlMs < limits.ttlMsMin || ttlMs > limits.ttlMsMax) {
    return errorResult("INVALID_ARGUMENT", `ttlMs ${ttlMs} outside [${limits.ttlMsMin}, ${limits.ttlMsMax}]`);
  }
  if (s.leases.leaseCountOf(clientId) >= limits.leasesPerClientMax) {
    return errorResult("LIMIT_EXCEEDED", `client holds ${limits.leasesPerClientMax} leases`);
  }
  if (s.leases.size >= limits.leasesMax) return errorResult("LIMIT_EXCEEDED", "lease table is full");
  const lease = s.leases.grant({ leaseId: s.ids.nextLeaseId(), clientId, ttlMs, nowMs: ctx.nowMs });
  return okResult({ kind: "LeaseGrant", leaseId: lease.leaseId, validUntil: s.leases.validUntil(lease) });
}

/** One entry renews many leases; each id succeeds or fails on its own. */
function leaseKeepAlive(s: MachineTables, ctx: ApplyContext, leaseIds: readonly number[]): CommandResult {
  if (leaseIds.length === 0) return errorResult("INVALID_ARGUMENT", "no lease ids");
  if (leaseIds.length > s.config.limits.keepAliveLeaseIdsMax) {
    return errorResult("LIMIT_EXCEEDED", `more than ${s.config.limits.keepAliveLeaseIdsMax} lease ids`);
  }
  const renewed: { leaseId: number; validUntil: ValidUntil }[] = [];
  const failed: KeepAliveFailure[] = [];
  for (const leaseId of new Set(leaseIds)) {
    const lease = s.leases.get(leaseId);
    if (lease === undefined) failed.push({ leaseId, code: "LEASE_NOT_FOUND" });
    else if (!s.leases.isLive(lease, ctx.nowMs)) failed.push({ leaseId, code: "LEASE_EXPIRED" });
    else renewed.push({ leaseId, validUntil: s.leases.validUntil(s.leases.renew(leaseId, ctx.nowMs)) });
  }
  return okResult({ kind: "LeaseKeepAlive", renewed, failed });
}

function acquire(
  s: MachineTables,
  ctx: ApplyContext,
  command: Extract<ClientCommand, { kind: "LockAcquire" | "ElectionCampaign" }>,
): CommandResult {
  const isLock = command.kind === "LockAcquire";
  const value = isLock ? "" : command.value;
  const bad = checkName(s, command.name) ?? checkValue(s, value);
  if (bad !== null) return bad;
  const lease = s.config.bugs?.grantWithoutLeaseCheck === true ? leaseIgnoringLiveness(s, ctx, command.leaseId) : liveLease(s, ctx, command.leaseId);
  if ("code" in lease) return lease;
  const request = {
    name: command.name,
    leaseId: command.leaseId,
    value,
    canCreate: s.locks.size + s.elections.table.size < s.config.limits.namesMax,
    waitersMax: s.config.limits.waitersPerLockMax,
  };
  const outcome: AcquireOutcome = isLock
    ? s.locks.acquire(ctx, { ...request, wait: command.wait })
    : s.elections.campaign(ctx, request);
  switch (outcome.kind) {
    case "granted": {
      const validUntil = s.leases.validUntil(lease);
      return isLock
        ? okResult({ kind: "LockAcquire", status: "granted", token: outcome.holder.token, validUntil })
        : okResult({ kind: "ElectionCampaign", status: "elected", token: outcome.holder.token, validUntil });
    }
    case "queued":
      return isLock
        ? okResult({ kind: "LockAcquire", status: "queued", position: outcome.position })
        : okResult({ kind: "ElectionCampaign", status: "queued", position: outcome.position });
    case "held":
      return errorResult("LOCK_HELD", `${command.name} is held or in lock-delay`);
    case "waitersFull":
      return errorResult("LIMIT_EXCEEDED", `${command.name} has ${request.waitersMax} waiters`);
    case "namesFull":
      return errorResult("LIMIT_EXCEEDED", "name table is full");
    default:
      return assertNever(outcome, "acquire outcome");
  }
}

/** Revoke (expired = false: hand on at once) or expiry (lock-delay). */
export function removeLease(s: MachineTables, ctx: ApplyContext, leaseId: number, expired: boolean): void {
  const lease = s.leases.remove(leaseId);
  const options = { leaseId, expired, lockDelayMs: s.config.lockDelayMs };
  s.locks.removeLease(ctx, options);
  s.elections.table.removeLease(ctx, options);
  ctx.events.push({ kind: "leaseGone", leaseId, clientId: lease.clientId, expired });
  if (s.leases.leaseCountOf(lease.clientId) === 0) s.sessions.onLeasesGone(lease.clientId, ctx.nowMs);
}

function liveLease(s: MachineTables, ctx: ApplyContext, leaseId: number): LeaseRecord | CommandError {
  const lease = s.leases.get(leaseId);
  if (lease === undefined) return leaseNotFound(leaseId);
  if (!s.leases.isLive(lease, ctx.nowMs)) return errorResult("LEASE_EXPIRED", `lease ${leaseId} has expired`);
  return lease;
}

/** The grantWithoutLeaseCheck bug switch: any lease, even expired or missing, passes. */
function leaseIgnoringLiveness(s: MachineTables, ctx: ApplyContext, leaseId: number): LeaseRecord {
  const ghost = { leaseId, clientId: "", ttlMs: 0, grantedAtMs: ctx.nowMs, renewedAtMs: ctx.nowMs, deadlineMs: ctx.nowMs, renewSeq: 0 };
  return s.leases.get(leaseId) ?? ghost;
}

function leaseNotFound(leaseId: number): CommandError {
  return errorResult("LEASE_NOT_FOUND", `lease ${leaseId} not found`);
}

function checkName(s: MachineTables, name: string): CommandError | null {
  if (name.length === 0) return errorResult("INVALID_ARGUMENT", "name is empty");
  const max = s.config.limits.nameBytesMax;
  if (utf8ByteLength(name) > max) return errorResult("INVALID_ARGUMENT", `name longer than ${max} bytes`);
  return null;
}

function checkValue(s: MachineTables, value: string): CommandError | null {
  const max = s.config.limits.valueBytesMax;
  if (utf8ByteLength(value) > max) return errorResult("INVALID_ARGUMENT", `value longer than ${max} bytes`);
  return null;
}
