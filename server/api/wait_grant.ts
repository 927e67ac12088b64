// Blocking Acquire and Campaign: submit, and if queued wait for the grant.
//
// Order matters: subscribe to node events BEFORE submitting, so a grant applied right after the
// queued entry cannot be missed (events arrive synchronously, in log order; only those with an
// index above the queued entry's count). On timeout or cancel, the wait is withdrawn with
// WaitCancel(clientId, seq + 1) (the contract in errors.proto), then we check whether the grant
// won the race: if so it is returned, otherwise DEADLINE_EXCEEDED/CANCELLED, and no waiter is
// left behind. If the withdrawal cannot be confirmed the answer is OUTCOME_UNKNOWN. The client's
// retry of a call withdrawn that way meets its session at seq + 1 and is answered from the state
// (afterOwnWithdrawal), not STALE_SEQUENCE.
//
// A member that catches up by InstallSnapshot applies none of the entries the snapshot covers,
// so a grant among them emits no event here: on a restore the wait re-checks the restored state
// (the node's RestoreListener) and ends with the grant, the lease's end, or, when the wait is
// gone without a grant to this lease, WAIT_CANCELLED. Without that a waiter queued on a member
// that fell behind was never answered.

import { isFatal } from "../fatal.ts";
import type { ElectionCampaign, LockAcquire, WaitCancel } from "../state/commands.ts";
import type { LockStateMachine } from "../state/machine.ts";
import { requestDigest } from "../state/request_digest.ts";
import type { StateEvent, ValidUntil } from "../state/results.ts";
import {
  encodeValidUntil,
  readOk,
  submitOk,
  type Applied,
  type CallContext,
  type ServiceDeps,
  SYSTEM_WAIT_CLOCK,
  type ValidUntilMessage,
  type WaitClock,
} from "./handler_kit.ts";
import { ApiError, errorFromOutcome } from "./status_map.ts";

/** Time kept back from the call's deadline to withdraw the wait and still answer in time. */
export const WITHDRAW_MARGIN_MS = 100;
/** setTimeout's largest delay. */
const TIMER_MS_MAX = 2_147_483_647;
/** Matching events kept per wait (grants of one name to one lease, and that lease's end). */
const WATCH_EVENTS_MAX = 64;

export interface Grant {
  readonly leaseId: number;
  readonly token: number;
  readonly value: string;
  readonly validUntil: ValidUntilMessage | null;
  readonly replayed: boolean;
}

export interface BlockingRequest {
  readonly table: "lock" | "election";
  readonly command: LockAcquire | ElectionCampaign;
  /** 0: no timeout of its own (the call's deadline, a cancel or the lease's end stop it). */
  readonly timeoutMs: number;
}

type WatchEnd =
  /** validUntil: the lease's as of the grant (the event's); absent: read it (a restored state). */
  | { readonly kind: "granted"; readonly token: number; readonly value: string; readonly validUntil?: ValidUntil | null }
  /** `expired` null: learnt from a restored snapshot, which does not say how the lease ended. */
  | { readonly kind: "leaseGone"; readonly expired: boolean | null }
  /** A restored snapshot holds neither a grant to this lease nor its wait: it ended without us. */
  | { readonly kind: "waitEnded" }
  | { readonly kind: "timeout" }
  | { readonly kind: "cancelled" };

/** Collects the grant (or the end) of one lease's wait for one name. */
class GrantWatch {
  private readonly seen: { readonly index: number; readonly end: WatchEnd }[] = [];
  private wake: (() => void) | null = null;

  constructor(private readonly request: BlockingRequest) {}

  readonly listener = (events: readonly StateEvent[], index: number): void => {
    for (const event of events) {
      const end = this.match(event);
      if (end !== null && this.seen.length < WATCH_EVENTS_MAX) this.seen.push({ index, end });
    }
    this.wake?.();
  };

  /** The node restored a snapshot up to `index`: whatever its entries did, the state tells. */
  readonly restored = (machine: LockStateMachine, index: number): void => {
    const end = restoredEnd(machine, this.request);
    if (end !== null && this.seen.length < WATCH_EVENTS_MAX) this.seen.push({ index, end });
    this.wake?.();
  };

  private match(event: StateEvent): WatchEnd | null {
    const { name, leaseId } = this.request.command;
    if (event.kind === "leaseGone" && event.leaseId === leaseId) return { kind: "leaseGone", expired: event.expired };
    const ours = event.kind === "granted" && event.table === this.request.table;
    if (!ours || event.name !== name || event.leaseId !== leaseId) return null;
    return { kind: "granted", token: event.token, value: event.value, validUntil: event.validUntil };
  }

  first(afterIndex: number): WatchEnd | null {
    return this.seen.find((s) => s.index > afterIndex)?.end ?? null;
  }

  wait(afterIndex: number, signal: AbortSignal, untilMs: number | null, clock: WaitClock): Promise<WatchEnd> {
    const found = this.first(afterIndex);
    if (found !== null) return Promise.resolve(found);
    if (signal.aborted) return Promise.resolve({ kind: "cancelled" });
    return new Promise((resolve) => {
      let cancelTimer: (() => void) | undefined;
      const done = (end: WatchEnd): void => {
        cancelTimer?.();
        signal.removeEventListener("abort", onAbort);
        this.wake = null;
        resolve(end);
      };
      const onAbort = (): void => done({ kind: "cancelled" });
      signal.addEventListener("abort", onAbort, { once: true });
      if (untilMs !== null) {
        const delayMs = Math.min(TIMER_MS_MAX, Math.max(0, untilMs - clock.nowMs()));
        cancelTimer = clock.after(delayMs, () => done({ kind: "timeout" }));
      }
      this.wake = () => {
        const end = this.first(afterIndex);
        if (end !== null) done(end);
      };
    });
  }
}

/** What a restored state says of one lease's wait for one name: granted, gone, still queued (null). */
function restoredEnd(machine: LockStateMachine, request: BlockingRequest): WatchEnd | null {
  const { name, leaseId } = request.command;
  const status = request.table === "lock" ? machine.lockStatus(name) : machine.electionStatus(name);
  const holder = status.holder;
  if (holder !== null && holder.leaseId === leaseId) return { kind: "granted", token: holder.token, value: holder.value };
  if (machine.leaseTimeToLive(leaseId) === null) return { kind: "leaseGone", expired: null };
  if (status.waiters.some((w) => w.leaseId === leaseId)) return null;
  return { kind: "waitEnded" };
}

function waitUntilMs(ctx: CallContext, timeoutMs: number, startMs: number): number | null {
  const limits: number[] = [];
  if (timeoutMs > 0) limits.push(startMs + timeoutMs);
  if (ctx.deadlineAtMs !== null) limits.push(ctx.deadlineAtMs - WITHDRAW_MARGIN_MS);
  return limits.length === 0 ? null : Math.min(...limits);
}

export async function acquireBlocking(deps: ServiceDeps, ctx: CallContext, request: BlockingRequest): Promise<Grant> {
  const clock = deps.waitClock ?? SYSTEM_WAIT_CLOCK;
  const startMs = clock.nowMs();
  const watch = new GrantWatch(request);
  const unsubscribe = deps.node.subscribe(watch.listener, watch.restored);
  try {
    const { command } = request;
    let applied: Applied<typeof command.kind>;
    try {
      applied = await submitOk(deps, command, command.kind);
    } catch (error) {
      return await afterOwnWithdrawal(deps, request, error);
    }
    const body = applied.body;
    if (body.status !== "queued") {
      const validUntil = encodeValidUntil(body.validUntil);
      const replayed = applied.replayed;
      return { leaseId: command.leaseId, token: body.token, value: campaignValueOf(command), validUntil, replayed };
    }
    let afterIndex = applied.index;
    if (applied.replayed) {
      // A retry of a queued call: the grant may have been applied before we subscribed.
      const state = await waitState(deps, request);
      if (state.holder !== null) return grantOf(deps, request, state.holder, true);
      afterIndex = state.index;
    }
    const end = await watch.wait(afterIndex, ctx.signal, waitUntilMs(ctx, request.timeoutMs, startMs), clock);
    if (end.kind === "granted") return grantOf(deps, request, end, applied.replayed);
    if (end.kind === "leaseGone") throw leaseGoneError(request, end.expired);
    if (end.kind === "waitEnded") throw waitEndedError(request);
    return await withdraw(deps, { request, watch, afterIndex, why: end.kind });
  } finally {
    unsubscribe();
  }
}

/**
 * A retry of a blocking call whose wait this member already withdrew (the call was cancelled, e.g.
 * its connection reset, and WaitCancel took seq + 1): the session stands past seq, so the machine
 * answers STALE_SEQUENCE. The stored answer is gone, but the state tells what happened: the grant
 * if this lease holds the name, the lease's end, or WAIT_CANCELLED (errors.proto's promise), which
 * tells the client nothing was granted under this seq. Only when the session's last request IS
 * that withdrawal; any other STALE_SEQUENCE stands.
 */
async function afterOwnWithdrawal(deps: ServiceDeps, request: BlockingRequest, error: unknown): Promise<Grant> {
  if (!(error instanceof ApiError) || error.detail.reason !== "STALE_SEQUENCE") throw error;
  const { command } = request;
  const { name, leaseId } = command;
  const withdrawalDigest = requestDigest(withdrawalOf(request));
  const { value } = await readOk(deps, (m) => ({
    session: m.sessionLast(command.identity ?? "", command.clientId),
    status: request.table === "lock" ? m.lockStatus(name) : m.electionStatus(name),
    leaseExists: m.leaseTimeToLive(leaseId) !== null,
  }));
  const withdrawn = value.session?.lastSeq === command.seq + 1 && value.session.digest === withdrawalDigest;
  if (!withdrawn) throw error;
  const holder = value.status.holder;
  if (holder !== null && holder.leaseId === leaseId) return grantOf(deps, request, holder, true);
  if (!value.leaseExists) throw leaseGoneSince(request);
  throw waitEndedError(request);
}

/** The WaitCancel that withdraws a blocking request's wait: seq + 1, the same caller. */
function withdrawalOf(request: BlockingRequest): WaitCancel {
  const { table, command } = request;
  return {
    kind: "WaitCancel",
    clientId: command.clientId,
    seq: command.seq + 1,
    table,
    name: command.name,
    leaseId: command.leaseId,
    // The same caller (server/state/caller.ts): its session, and the right to withdraw its lease's wait.
    ...(command.identity === undefined ? {} : { identity: command.identity }),
    ...(command.admin === undefined ? {} : { admin: command.admin }),
  };
}

function campaignValueOf(command: LockAcquire | ElectionCampaign): string {
  return command.kind === "ElectionCampaign" ? command.value : "";
}

/** For a replayed queued call: already granted, still waiting, or the wait is gone. */
async function waitState(
  deps: ServiceDeps,
  request: BlockingRequest,
): Promise<{ holder: { token: number; value: string } | null; index: number }> {
  const { name, leaseId } = request.command;
  const { value, index } = await readOk(deps, (m) => ({
    status: request.table === "lock" ? m.lockStatus(name) : m.electionStatus(name),
    leaseExists: m.leaseTimeToLive(leaseId) !== null,
  }));
  const holder = value.status.holder;
  if (holder !== null && holder.leaseId === leaseId) return { holder, index };
  if (value.status.waiters.some((w) => w.leaseId === leaseId)) return { holder: null, index };
  if (!value.leaseExists) throw leaseGoneSince(request);
  throw waitEndedError(request);
}

/**
 * The lease of a replayed queued call is gone. Unlike a live wait's (whose events say whether a
 * grant came first), this cannot say whether the wait was granted before the lease ended.
 */
function leaseGoneSince(request: BlockingRequest): ApiError {
  const { leaseId, name, seq } = request.command;
  return new ApiError(
    "LEASE_NOT_FOUND",
    `lease ${leaseId} is gone (expired or revoked); its wait for ${name} (seq ${seq}) may have been granted before it ended`,
  );
}

function waitEndedError(request: BlockingRequest): ApiError {
  const { name, leaseId, seq } = request.command;
  return new ApiError(
    "WAIT_CANCELLED",
    `the wait of lease ${leaseId} for ${name} (seq ${seq}) has already ended without a grant; use a new seq`,
  );
}

/**
 * The answer for a grant. A grant event carries the lease's validity as of the grant, so a
 * handoff is answered without a read round (one commit: the release that granted it); a grant
 * learnt otherwise (a replay, a restored state) reads the lease's current validity.
 */
async function grantOf(
  deps: ServiceDeps,
  request: BlockingRequest,
  holder: { readonly token: number; readonly value: string; readonly validUntil?: ValidUntil | null },
  replayed: boolean,
): Promise<Grant> {
  const leaseId = request.command.leaseId;
  const known = holder.validUntil ?? null;
  const validUntil = known !== null ? encodeValidUntil(known) : await leaseValidity(deps, leaseId);
  return { leaseId, token: holder.token, value: holder.value, validUntil, replayed };
}

/** The holding lease's current validity, best effort (null if the read fails). */
async function leaseValidity(deps: ServiceDeps, leaseId: number): Promise<ValidUntilMessage | null> {
  try {
    const { value: info } = await readOk(deps, (m) => m.leaseTimeToLive(leaseId));
    if (info === null) return null;
    const rho = deps.config.rho;
    // serverDeadlineMs = renewedAt + ttl + ceil(ttl * rho) (limits.ts), so this is the renewal time.
    const appliedAtMs = info.serverDeadlineMs - info.ttlMs - Math.ceil(info.ttlMs * rho);
    return { ttlMs: info.ttlMs, rho, appliedAtMs, serverDeadlineMs: info.serverDeadlineMs };
  } catch (error) {
    if (isFatal(error)) throw error; // best effort covers a failed read, not a broken invariant
    return null;
  }
}

function leaseGoneError(request: BlockingRequest, expired: boolean | null): ApiError {
  const { leaseId, name } = request.command;
  if (expired === true) return new ApiError("LEASE_EXPIRED", `lease ${leaseId} expired while waiting for ${name}`);
  const how = expired === false ? "revoked" : "expired or revoked";
  return new ApiError("LEASE_NOT_FOUND", `lease ${leaseId} is gone (${how}) while waiting for ${name}`);
}

async function withdraw(
  deps: ServiceDeps,
  w: { request: BlockingRequest; watch: GrantWatch; afterIndex: number; why: "timeout" | "cancelled" },
): Promise<Grant> {
  const { command } = w.request;
  const cancel = withdrawalOf(w.request);
  const outcome = await deps.node.submit(cancel);
  const unknown = (cause: string, hint?: ApiError): ApiError =>
    new ApiError(
      "OUTCOME_UNKNOWN",
      `could not withdraw the wait of lease ${command.leaseId} for ${command.name} (${cause}); it may still be ` +
        "queued or granted: check Status/Leader for the lease, or revoke it",
      hint === undefined ? {} : { leaderId: hint.detail.leaderId, leaderAddress: hint.detail.leaderAddress },
    );
  if (outcome.kind !== "applied") {
    const error = errorFromOutcome(outcome, deps.node);
    throw unknown(error.message, error);
  }
  const r = outcome.result;
  if (!r.ok) throw unknown(`seq ${cancel.seq}: ${r.code} ${r.message}`);
  if (r.kind !== "WaitCancel") throw unknown(`seq ${cancel.seq} was already used for a ${r.kind}`);
  if (!r.cancelled) {
    // Nothing to withdraw: the wait had ended. Events are in log order, so a grant (or the
    // lease's end) before the WaitCancel is in the watch by now; the read double-checks.
    const end = w.watch.first(w.afterIndex);
    if (end?.kind === "granted") return grantOf(deps, w.request, end, false);
    if (end?.kind === "leaseGone") throw leaseGoneError(w.request, end.expired);
    const state = await waitState(deps, w.request).catch((error: unknown) => {
      if (isFatal(error)) throw error;
      return null;
    });
    if (state?.holder) return grantOf(deps, w.request, state.holder, false);
  }
  if (w.why === "cancelled") {
    throw new ApiError("CANCELLED", `${command.name}: the call was cancelled; the wait was withdrawn`);
  }
  const waited = w.request.timeoutMs > 0 ? `within ${w.request.timeoutMs} ms` : "before the call's deadline";
  throw new ApiError("TIMEOUT", `${command.name} was not granted ${waited}; the wait was withdrawn`);
}
