// What each command does to the tables. PURE.
//
// Client commands validate their arguments (INVALID_ARGUMENT), their lease (LEASE_NOT_FOUND,
// LEASE_EXPIRED) and the limits (LIMIT_EXCEEDED) before touching state, so a rejected command
// changes nothing. Ownership (caller.ts): what a lease owns is acted on by its owner or an admin
// (reported as actedForOwner for the audit log); anyone else gets PERMISSION_DENIED.
// System commands are guarded: a timer command that no longer matches the state
// (renewed lease, restarted delay, timers not yet restarted in this term) applies as a no-op.
//
// A LIMIT_EXCEEDED message names the limit and its value ("lease table is full: leasesMax =
// 100000"). No stored message repeats a name, value or client id (ERROR_MESSAGE_BYTES_MAX): the
// session table keeps it for retries, once per client.
//
// Freeze (an admin's read-only switch): while frozen, LeaseGrant, a LockAcquire or
// ElectionCampaign that asks for anything new (the lease neither holds nor waits for the name),
// are FROZEN, recorded in the session like any refusal. Renewals, releases, revokes, resigns,
// proclaims (a value, not who leads), wait cancels and reads are served; a name freed meanwhile
// keeps its waiters queued (LockTable PARKED) and Thaw grants them, with new tokens.

import { assert, assertNever } from "../core/assert.ts";
import type { ApplyContext } from "./apply_context.ts";
import { accessOf, callerOf, sessionKey, type Caller } from "./caller.ts";
import type { ClientCommand, LeaseGrant, LeaseKeepAlive, SystemCommand } from "./commands.ts";
import type { ElectionTable } from "./election_table.ts";
import type { IdAllocator } from "./id_allocator.ts";
import { sessionOf, type LeaseRecord, type LeaseTable } from "./lease_table.ts";
import { FREEZE_REASON_BYTES_MAX, utf8ByteLength, type StateConfig, type StateLimits } from "./limits.ts";
import type { AcquireOutcome, LockTable } from "./lock_table.ts";
import { errorResult, okResult, type CommandError, type CommandResult, type KeepAliveFailure, type ValidUntil } from "./results.ts";
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
  /** Set by Freeze, cleared by Thaw: no new grants meanwhile. */
  frozen: FrozenState | null;
}

/** The cluster's freeze: why, who (the admin identity, "" in the open mode) and since when (leader time). */
export interface FrozenState {
  readonly reason: string;
  readonly by: string;
  readonly sinceMs: number;
}

/** The stored refusal (ERROR_MESSAGE_BYTES_MAX: no reason or identity; the api adds them). */
export const FROZEN_MESSAGE = "the cluster is frozen: no new grants; renewals, releases and reads are served";

export function applyClientCommand(s: MachineTables, ctx: ApplyContext, command: ClientCommand): CommandResult {
  const caller = callerOf(command);
  switch (command.kind) {
    case "LeaseGrant":
      if (s.frozen !== null) return errorResult("FROZEN", FROZEN_MESSAGE);
      return leaseGrant(s, ctx, command, caller);
    case "LeaseKeepAlive":
      return leaseKeepAlive(s, ctx, command, caller);
    case "LeaseRevoke": {
      const lease = s.leases.get(command.leaseId);
      if (lease === undefined) return leaseNotFound(command.leaseId);
      const denied = checkAccess(ctx, { caller, command: command.kind, lease, name: null });
      if (denied !== null) return denied;
      removeLease(s, ctx, command.leaseId, false);
      return okResult({ kind: "LeaseRevoke", leaseId: command.leaseId });
    }
    case "LockAcquire":
    case "ElectionCampaign":
      return acquire(s, ctx, command, caller);
    case "LockRelease": {
      const denied = checkHolder(s, ctx, { caller, command: command.kind, table: s.locks, name: command.name, token: command.token });
      if (denied !== null) return denied;
      return okResult({ kind: "LockRelease", released: s.locks.release(ctx, command.name, command.token) });
    }
    case "ElectionProclaim": {
      const bad = checkValue(s, command.value);
      if (bad !== null) return bad;
      if (s.elections.leader(command.name)?.token !== command.token) {
        return errorResult("NOT_HOLDER", `token ${command.token} is not the current leadership`);
      }
      const table = s.elections.table;
      const denied = checkHolder(s, ctx, { caller, command: command.kind, table, name: command.name, token: command.token });
      if (denied !== null) return denied;
      const growth = table.valueBytesDelta(command.name, command.value);
      if (growth > valueBytesRoom(s)) return valuesFull(s.config.limits, growth);
      const proclaimed = s.elections.proclaim(ctx, command.name, command.token, command.value);
      assert(proclaimed, `proclaim of ${command.name} by its leader failed`);
      return okResult({ kind: "ElectionProclaim", token: command.token });
    }
    case "ElectionResign": {
      const table = s.elections.table;
      const denied = checkHolder(s, ctx, { caller, command: command.kind, table, name: command.name, token: command.token });
      if (denied !== null) return denied;
      const resigned = s.elections.resign(ctx, command.name, command.token);
      return okResult({ kind: "ElectionResign", resigned });
    }
    case "WaitCancel": {
      const table = command.table === "lock" ? s.locks : s.elections.table;
      const lease = s.leases.get(command.leaseId);
      if (lease !== undefined) {
        const denied = checkAccess(ctx, { caller, command: command.kind, lease, name: command.name });
        if (denied !== null) return denied;
      }
      return okResult({ kind: "WaitCancel", cancelled: table.cancelWait(command.name, command.leaseId) });
    }
    case "Freeze": {
      if (!caller.admin) return errorResult("PERMISSION_DENIED", "Freeze needs admin");
      if (utf8ByteLength(command.reason) > FREEZE_REASON_BYTES_MAX) {
        return errorResult("INVALID_ARGUMENT", `reason longer than ${FREEZE_REASON_BYTES_MAX} bytes`);
      }
      // Frozen already: nothing changes (the first reason, identity and time stay).
      if (s.frozen !== null) return okResult({ kind: "Freeze", alreadyFrozen: true });
      s.frozen = { reason: command.reason, by: caller.identity, sinceMs: ctx.nowMs };
      return okResult({ kind: "Freeze", alreadyFrozen: false });
    }
    case "Thaw": {
      if (!caller.admin) return errorResult("PERMISSION_DENIED", "Thaw needs admin");
      if (s.frozen === null) return okResult({ kind: "Thaw", alreadyThawed: true, granted: 0 });
      s.frozen = null;
      // Locks first, then elections: every replica hands on in the same order.
      const granted = s.locks.thaw(ctx) + s.elections.table.thaw(ctx);
      return okResult({ kind: "Thaw", alreadyThawed: false, granted });
    }
    default:
      return assertNever(command, "client command");
  }
}

/**
 * Whether the caller may act on what `lease` owns (caller.ts): its owner may; an admin may, and
 * the act is reported (actedForOwner) for the audit log; anyone else is PERMISSION_DENIED.
 */
function checkAccess(
  ctx: ApplyContext,
  act: { readonly caller: Caller; readonly command: ClientCommand["kind"]; readonly lease: LeaseRecord; readonly name: string | null },
): CommandError | null {
  const access = accessOf(act.caller, act.lease.owner);
  if (access === "denied") {
    const what = act.name === null ? `lease ${act.lease.leaseId}` : "the holder's lease";
    return errorResult("PERMISSION_DENIED", `${what} belongs to another identity`);
  }
  if (access === "admin") {
    const { command, name } = act;
    ctx.events.push({
      kind: "actedForOwner",
      command,
      identity: act.caller.identity,
      owner: act.lease.owner,
      leaseId: act.lease.leaseId,
      name,
    });
  }
  return null;
}

/**
 * A fenced release (or proclaim, resign) of `token`: checked against the owner only when the
 * token is the current grant; any other token is the usual no-op (released = false), which
 * tells a non-owner nothing.
 */
function checkHolder(
  s: MachineTables,
  ctx: ApplyContext,
  act: {
    readonly caller: Caller;
    readonly command: ClientCommand["kind"];
    readonly table: LockTable;
    readonly name: string;
    readonly token: number;
  },
): CommandError | null {
  const holder = act.table.holder(act.name);
  if (holder === null || holder.token !== act.token) return null;
  const lease = s.leases.get(holder.leaseId);
  if (lease === undefined) {
    // Only the grantWithoutLeaseCheck bug switch grants on a missing lease. Its ghost holder has no
    // owner to check, and the chaos teeth need the cluster to keep running after the bad grant
    // (so the checker sees every one), so anyone may release it, as before ownership existed.
    assert(s.config.bugs?.grantWithoutLeaseCheck === true, `holder of ${act.name} has no lease`);
    return null;
  }
  return checkAccess(ctx, { caller: act.caller, command: act.command, lease, name: act.name });
}

export function applySystemCommand(s: MachineTables, ctx: ApplyContext, command: SystemCommand, term: number): CommandResult {
  switch (command.kind) {
    case "LeaseExpire": {
      const lease = s.leases.get(command.leaseId);
      const applies =
        term === s.timersTerm && lease !== undefined && lease.renewSeq === command.renewSeq && !s.leases.isLive(lease, ctx.nowMs);
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

function leaseGrant(s: MachineTables, ctx: ApplyContext, command: LeaseGrant, caller: Caller): CommandResult {
  const limits = s.config.limits;
  const { ttlMs, clientId } = command;
  if (ttlMs < limits.ttlMsMin || ttlMs > limits.ttlMsMax) {
    return errorResult("INVALID_ARGUMENT", `ttlMs ${ttlMs} outside [${limits.ttlMsMin}, ${limits.ttlMsMax}]`);
  }
  if (s.leases.leaseCountOf(sessionKey(caller.identity, clientId)) >= limits.leasesPerClientMax) {
    return limitExceeded("this client holds as many leases as allowed", "leasesPerClientMax", limits.leasesPerClientMax);
  }
  if (s.leases.size >= limits.leasesMax) return limitExceeded("lease table is full", "leasesMax", limits.leasesMax);
  if (command.leaseId !== undefined && s.leases.has(command.leaseId)) {
    return errorResult("LEASE_ID_TAKEN", `lease id ${command.leaseId} is taken; draw another`);
  }
  const leaseId = command.leaseId ?? nextFreeLeaseId(s);
  const lease = s.leases.grant({ leaseId, clientId, owner: caller.identity, ttlMs, nowMs: ctx.nowMs });
  return okResult({ kind: "LeaseGrant", leaseId: lease.leaseId, validUntil: s.leases.validUntil(lease) });
}

/** The sequential id of a grant without a drawn one (v1 entries, tests), past any drawn id that took it. */
function nextFreeLeaseId(s: MachineTables): number {
  // At most leases.size ids are taken, so one of size + 1 tries is free.
  let leaseId = s.ids.nextLeaseId();
  for (let tries = 0; s.leases.has(leaseId) && tries < s.leases.size; tries++) leaseId = s.ids.nextLeaseId();
  assert(!s.leases.has(leaseId), "no free sequential lease id");
  return leaseId;
}

/**
 * One entry renews many leases; each id succeeds or fails on its own. Its answer lists every
 * distinct id and is stored for retries, so room is made for it first (keepAliveLeaseIdsStoredMax):
 * a renewal is never refused for what other sessions store. Another identity's lease fails with
 * PERMISSION_DENIED (an admin renews it).
 */
function leaseKeepAlive(s: MachineTables, ctx: ApplyContext, command: LeaseKeepAlive, caller: Caller): CommandResult {
  const limits = s.config.limits;
  const leaseIds = command.leaseIds;
  if (leaseIds.length === 0) return errorResult("INVALID_ARGUMENT", "no lease ids");
  if (leaseIds.length > limits.keepAliveLeaseIdsMax) {
    return limitExceeded("too many lease ids in one KeepAlive", "keepAliveLeaseIdsMax", limits.keepAliveLeaseIdsMax);
  }
  const distinct = new Set(leaseIds);
  s.sessions.makeRoomForKeepAlive(sessionKey(caller.identity, command.clientId), distinct.size, limits.keepAliveLeaseIdsStoredMax);
  const renewed: { leaseId: number; validUntil: ValidUntil }[] = [];
  const failed: KeepAliveFailure[] = [];
  for (const leaseId of distinct) {
    const lease = s.leases.get(leaseId);
    if (lease === undefined) failed.push({ leaseId, code: "LEASE_NOT_FOUND" });
    else if (checkAccess(ctx, { caller, command: command.kind, lease, name: null }) !== null)
      failed.push({ leaseId, code: "PERMISSION_DENIED" });
    else if (!s.leases.isLive(lease, ctx.nowMs)) failed.push({ leaseId, code: "LEASE_EXPIRED" });
    else renewed.push({ leaseId, validUntil: s.leases.validUntil(s.leases.renew(leaseId, ctx.nowMs)) });
  }
  return okResult({ kind: "LeaseKeepAlive", renewed, failed });
}

function acquire(
  s: MachineTables,
  ctx: ApplyContext,
  command: Extract<ClientCommand, { kind: "LockAcquire" | "ElectionCampaign" }>,
  caller: Caller,
): CommandResult {
  const isLock = command.kind === "LockAcquire";
  const value = isLock ? "" : command.value;
  const bad = checkName(s, command.name) ?? checkValue(s, value);
  if (bad !== null) return bad;
  const existing = s.leases.get(command.leaseId);
  // Waiting or holding with another identity's lease would make its lock ours to release.
  const denied = existing === undefined ? null : checkAccess(ctx, { caller, command: command.kind, lease: existing, name: command.name });
  if (denied !== null) return denied;
  const lease =
    s.config.bugs?.grantWithoutLeaseCheck === true ? leaseIgnoringLiveness(s, ctx, command.leaseId) : liveLease(s, ctx, command.leaseId);
  if ("code" in lease) return lease;
  // A lease that holds or waits already gets that answer (a retry, a blocking call's re-check).
  const table = isLock ? s.locks : s.elections.table;
  if (s.frozen !== null && !table.holdsOrWaits(command.name, command.leaseId)) return errorResult("FROZEN", FROZEN_MESSAGE);
  const limits = s.config.limits;
  const request = {
    name: command.name,
    leaseId: command.leaseId,
    value,
    canCreate: s.locks.size + s.elections.table.size < limits.namesMax,
    waitersMax: limits.waitersPerLockMax,
    canQueue: s.locks.usage().waiters + s.elections.table.usage().waiters < limits.waitersMax,
    valueBytesRoom: valueBytesRoom(s),
  };
  const outcome: AcquireOutcome = isLock ? s.locks.acquire(ctx, { ...request, wait: command.wait }) : s.elections.campaign(ctx, request);
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
      // Only a try-lock answers "held": a campaign always waits.
      // The holder's token goes with the refusal (LockAcquire's current_token), from this apply:
      // the grant that refused it, with no read round after the commit.
      return { ...errorResult("LOCK_HELD", "the lock is held or in lock-delay"), currentToken: outcome.holderToken };
    case "waitersFull":
      return limitExceeded("this name has as many waiters as allowed", "waitersPerLockMax", limits.waitersPerLockMax);
    case "waitersTotalFull":
      return limitExceeded("all locks and elections have as many waiters as allowed", "waitersMax", limits.waitersMax);
    case "valuesFull":
      return valuesFull(limits, outcome.valueBytes);
    case "namesFull":
      return limitExceeded("name table is full", "namesMax", limits.namesMax);
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
  const session = sessionOf(lease);
  if (s.leases.leaseCountOf(session) === 0) s.sessions.onLeasesGone(session, ctx.nowMs);
}

function liveLease(s: MachineTables, ctx: ApplyContext, leaseId: number): LeaseRecord | CommandError {
  const lease = s.leases.get(leaseId);
  if (lease === undefined) return leaseNotFound(leaseId);
  if (!s.leases.isLive(lease, ctx.nowMs)) return errorResult("LEASE_EXPIRED", `lease ${leaseId} has expired`);
  return lease;
}

/** The grantWithoutLeaseCheck bug switch: any lease, even expired or missing, passes. */
function leaseIgnoringLiveness(s: MachineTables, ctx: ApplyContext, leaseId: number): LeaseRecord {
  const ghost = {
    leaseId,
    clientId: "",
    owner: "",
    ttlMs: 0,
    grantedAtMs: ctx.nowMs,
    renewedAtMs: ctx.nowMs,
    deadlineMs: ctx.nowMs,
    renewSeq: 0,
  };
  return s.leases.get(leaseId) ?? ghost;
}

function leaseNotFound(leaseId: number): CommandError {
  return errorResult("LEASE_NOT_FOUND", `lease ${leaseId} not found`);
}

/** A refusal by a limit: what is full, then the limit by name and its value. */
function limitExceeded(what: string, limit: keyof StateLimits, value: number): CommandError {
  return errorResult("LIMIT_EXCEEDED", `${what}: ${limit} = ${value}`);
}

/**
 * What is left of valueBytesTotalMax (locks' values are empty: they count 0). Never negative,
 * even for an image restored under a smaller limit: then only shrinking changes pass.
 */
function valueBytesRoom(s: MachineTables): number {
  const used = s.locks.usage().valueBytes + s.elections.table.usage().valueBytes;
  return Math.max(0, s.config.limits.valueBytesTotalMax - used);
}

function valuesFull(limits: StateLimits, valueBytes: number): CommandError {
  const what = `election values are at their total (this one needs ${valueBytes} stored bytes)`;
  return limitExceeded(what, "valueBytesTotalMax", limits.valueBytesTotalMax);
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
