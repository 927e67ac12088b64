// Plumbing shared by the service handlers: the grpc-js adapters (call -> AbortSignal, the caller
// authenticated before anything else, errors -> status via status_map.ts, no exception escapes;
// an invariant violation stops the process there), and submit/read helpers that turn node
// outcomes into values or ApiErrors.

import type * as grpc from "@grpc/grpc-js";
import type { Permission } from "../auth/auth_config.ts";
import type { AuditSink } from "../auth/audit.ts";
import type { AuthenticatedCall, Authenticator } from "../auth/authenticator.ts";
import { adminDenied, OPEN_PRINCIPAL, permissionDenied, type Principal } from "../auth/principal.ts";
import type { CallOptions, NodeApi } from "../node/node_api.ts";
import type { ClientCommand } from "../state/commands.ts";
import type { StateConfig } from "../state/limits.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { ApplyResult, OkBody, ValidUntil } from "../state/results.ts";
import { ApiError, errorFromCode, errorFromOutcome, LockHeldError, logError, toStatusObject } from "./status_map.ts";

export interface ServiceDeps {
  readonly node: NodeApi;
  /** The state machine's config: validation limits and rho. */
  readonly config: StateConfig;
  /** Observe: updates a reader may fall behind before its stream is dropped. */
  readonly observeBufferMax: number;
  /** Observe and Watch streams open now on this member, and how many may be. */
  readonly appliedStreams: { open: number; readonly max: number };
  /** KeepAlive: requests received but not yet answered, per stream. */
  readonly keepAlivePendingMax: number;
  /** Who calls and what it may do (server/auth); absent: the open mode (everyone, anonymous). */
  readonly auth?: Authenticator;
  /**
   * Draws the lease id of a Grant (lease_ids.ts: crypto, the arguments unused); the deterministic
   * simulator injects a function of the grant and the attempt instead.
   */
  readonly drawLeaseId?: (grant: { readonly identity: string; readonly clientId: string; readonly seq: number }, attempt: number) => number;
  /** Audit lines (admin acts on other identities' objects, admin-only calls); absent: not written. */
  readonly audit?: AuditSink;
  /**
   * The clock and timer of a blocking call's own timeout (timeout_ms): absent, Date.now and
   * setTimeout; the deterministic simulator injects its simulated ones, so a wait's end is an
   * event of the simulation (a real timer there ordered events by real time: lock seeds 550 and
   * 63 did not replay exactly).
   */
  readonly waitClock?: WaitClock;
}

export interface WaitClock {
  /** Milliseconds, in the domain of the call's deadline (Date.now() in production). */
  nowMs(): number;
  /** Runs fn once, about ms from now; the function returned cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const SYSTEM_WAIT_CLOCK: WaitClock = {
  nowMs: () => Date.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** A handler's view of its call: the CallContext and the authenticated caller. */
export interface HandlerContext extends CallContext {
  readonly principal: Principal;
}

export interface CallContext {
  readonly rpc: string;
  /** Aborts when the client cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** The call's deadline in wall-clock ms (Date.now() domain), null when it has none. */
  readonly deadlineAtMs: number | null;
}

interface ServerCallLike extends AuthenticatedCall {
  on(event: "cancelled", listener: () => void): unknown;
  getDeadline(): grpc.Deadline;
}

/**
 * The context of `call`, and `finish()`, which the handler calls once it has its answer: grpc-js
 * emits "cancelled" on EVERY call once its status is sent (server-interceptors.js
 * notifyOnCancel), so without it each finished call would abort its signal, and the abort
 * listeners of work the call started (a proposal, a read, a queued renewal) would run after the
 * fact, with a cancellation error built (and its stack taken) per call.
 */
export function callContext(rpc: string, call: ServerCallLike): { readonly context: CallContext; finish(): void } {
  const controller = new AbortController();
  let finished = false;
  call.on("cancelled", () => {
    if (!finished) controller.abort(new ApiError("CANCELLED", `${rpc} was cancelled`));
  });
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const context = { rpc, signal: controller.signal, deadlineAtMs: Number.isFinite(deadlineMs) ? deadlineMs : null };
  return {
    context,
    finish: () => {
      finished = true;
    },
  };
}

/** The caller of `call`, or UNAUTHENTICATED (before the request is even parsed). */
export function authenticate(deps: ServiceDeps, call: AuthenticatedCall): Principal {
  if (deps.auth === undefined) return OPEN_PRINCIPAL;
  const result = deps.auth.authenticate(call);
  if (!result.ok) throw new ApiError("UNAUTHENTICATED", result.message);
  return result.principal;
}

/** PERMISSION_DENIED unless the caller has `permission` on `name` (null: not per name). */
export function requirePermission(ctx: Pick<HandlerContext, "principal">, permission: Permission, name: string | null): void {
  const denied = permissionDenied(ctx.principal, permission, name);
  if (denied !== null) throw new ApiError("PERMISSION_DENIED", denied);
}

/** PERMISSION_DENIED unless the caller is admin. */
export function requireAdmin(ctx: HandlerContext): void {
  const denied = adminDenied(ctx.principal, ctx.rpc);
  if (denied !== null) throw new ApiError("PERMISSION_DENIED", denied);
}

/** The caller fields of a client command (server/state/caller.ts): never from the request. */
export function callerFields(principal: Principal): { readonly identity: string; readonly admin: boolean } {
  return { identity: principal.identity, admin: principal.admin };
}

export type UnaryImpl = (request: unknown, ctx: HandlerContext) => Promise<object>;

/**
 * A unary handler whose failures become a status: ApiError its own, any other exception INTERNAL,
 * except an invariant violation (server/fatal.ts isFatal), which stops the process instead.
 */
export function unary(deps: ServiceDeps, rpc: string, impl: UnaryImpl): grpc.handleUnaryCall<unknown, object> {
  return (call, callback) => {
    let ctx: HandlerContext;
    const { context, finish } = callContext(rpc, call);
    try {
      ctx = { ...context, principal: authenticate(deps, call) };
    } catch (error) {
      finish();
      callback(toStatusObject(error, rpc));
      return;
    }
    Promise.resolve()
      .then(() => impl(call.request, ctx))
      .then(
        (response) => {
          finish();
          callback(null, response);
        },
        (error: unknown) => {
          finish();
          callback(toStatusObject(error, rpc));
        },
      )
      .catch((error: unknown) => logError("failed to send a reply", rpc, error));
  };
}

/** Ends a server stream with the status of `error` (guarded: a stream error never throws). */
export function failStream(call: { emit(event: "error", status: grpc.StatusObject): boolean }, rpc: string, error: unknown): void {
  try {
    call.emit("error", toStatusObject(error, rpc));
  } catch (emitError) {
    logError("failed to end a stream", rpc, emitError);
  }
}

export type OkOf<K extends OkBody["kind"]> = Extract<OkBody, { kind: K }>;

export interface Applied<K extends OkBody["kind"]> {
  readonly body: OkOf<K>;
  readonly index: number;
  readonly replayed: boolean;
}

/**
 * Submits a client command; an error result or a non-applied outcome throws its ApiError. An
 * admin's act on another identity's object is audited here, whatever its outcome.
 * `options.signal`: the call's (CallContext.signal), so a call the client cancelled or whose
 * deadline passed stops holding a place among the node's pending requests (pendingMax); its
 * command may still commit, as after any lost reply. A blocking call passes none: it must learn
 * whether it queued, to withdraw the wait (wait_grant.ts).
 */
export async function submitOk<K extends OkBody["kind"]>(
  deps: ServiceDeps,
  command: ClientCommand,
  kind: K,
  options: CallOptions = {},
): Promise<Applied<K>> {
  const outcome = await deps.node.submit(command, options);
  if (outcome.kind !== "applied") throw cancelledOr(options, errorFromOutcome(outcome, deps.node));
  const result = outcome.result;
  auditActs(deps, result);
  if (!result.ok && result.code === "PERMISSION_DENIED") {
    // The stored message names no identity (state/limits.ts ERROR_MESSAGE_BYTES_MAX); this one does.
    const who = JSON.stringify(command.identity ?? "");
    throw new ApiError("PERMISSION_DENIED", `identity ${who} may not ${command.kind}: ${result.message} (only its owner or an admin may)`);
  }
  if (!result.ok && result.code === "LEASE_ID_TAKEN") throw new LeaseIdTakenError(result.message);
  if (!result.ok && result.code === "FROZEN") throw frozenError(deps);
  if (!result.ok && result.code === "LOCK_HELD" && result.currentToken !== undefined) {
    throw new LockHeldError(result.message, result.currentToken);
  }
  if (!result.ok) throw errorFromCode(result.code, result.message);
  if (result.kind !== kind) {
    // The session table answered a retry with the stored result of a different command.
    throw new ApiError(
      "STALE_SEQUENCE",
      `seq ${command.seq} of client ${command.clientId} was already used for a ${result.kind}; use a new seq`,
    );
  }
  // Checked just above: the result's kind is K.
  const body = result as unknown as OkOf<K>;
  return { body, index: result.index, replayed: result.replayed };
}

/**
 * FROZEN with who froze the cluster, when and why: the stored message names none of them
 * (state/limits.ts ERROR_MESSAGE_BYTES_MAX); this member's machine has just applied the refusal.
 */
export function frozenError(deps: Pick<ServiceDeps, "node">): ApiError {
  const machine = deps.node.stateMachine?.();
  const frozen = machine?.frozen() ?? null;
  const served = "renewals, releases and reads are served; tenurectl thaw resumes";
  if (machine === undefined || frozen === null) return new ApiError("FROZEN", `cluster frozen: no new grants; ${served}`);
  const by = frozen.by === "" ? "an admin (open mode)" : `admin ${JSON.stringify(frozen.by)}`;
  const agoS = Math.max(0, Math.round((machine.leaderTimeMs() - frozen.sinceMs) / 1000));
  const at = `leader time ${frozen.sinceMs} ms (about ${agoS} s ago)`;
  return new ApiError("FROZEN", `cluster frozen by ${by} at ${at}: ${JSON.stringify(frozen.reason)}; no new grants; ${served}`);
}

/** A LeaseGrant's drawn id was taken (nothing applied): draw again with the same seq. */
export class LeaseIdTakenError extends ApiError {
  constructor(message: string) {
    super("INTERNAL", message);
  }
}

function auditActs(deps: ServiceDeps, result: ApplyResult): void {
  if (deps.audit === undefined) return;
  for (const event of result.events) {
    if (event.kind !== "actedForOwner") continue;
    const target =
      event.name === null ? `lease ${event.leaseId}` : `${JSON.stringify(event.name)} held or awaited by lease ${event.leaseId}`;
    deps.audit({ identity: event.identity, rpc: event.command, target, owner: event.owner, outcome: result.ok ? "ok" : "failed" });
  }
}

/**
 * A call cancelled (by its client or its deadline) before the node answered is CANCELLED, whatever
 * the node then said of it ("cancelled before proposing", an abandoned proposal): not NO_LEADER or
 * OUTCOME_UNKNOWN, which would count a client that went away as a leader or a commit that failed.
 */
function cancelledOr(options: CallOptions, error: ApiError): ApiError {
  const signal = options.signal;
  if (signal?.aborted !== true) return error;
  return signal.reason instanceof ApiError ? signal.reason : new ApiError("CANCELLED", "the call was cancelled");
}

/**
 * A linearizable read; anything but a value throws its ApiError. `options.signal`: the call's, so
 * a cancelled call's read is dropped from the node's pending requests (it never answers then).
 */
export async function readOk<T>(
  deps: ServiceDeps,
  query: (machine: LockStateMachine) => T,
  options: CallOptions = {},
): Promise<{ readonly value: T; readonly index: number }> {
  const outcome = await deps.node.read(query, options);
  if (outcome.kind !== "read") throw cancelledOr(options, errorFromOutcome(outcome, deps.node));
  return { value: outcome.value, index: outcome.index };
}

export interface ValidUntilMessage {
  readonly ttlMs: number;
  readonly rho: number;
  readonly appliedAtMs: number;
  readonly serverDeadlineMs: number;
}

export function encodeValidUntil(v: ValidUntil): ValidUntilMessage {
  return { ttlMs: v.ttlMs, rho: v.rho, appliedAtMs: v.appliedAtMs, serverDeadlineMs: v.serverDeadlineMs };
}
