// Plumbing shared by the service handlers: the grpc-js adapters (call -> AbortSignal, errors ->
// status via status_map.ts, no exception escapes; an invariant violation stops the process
// there), and submit/read helpers that turn node outcomes into values or ApiErrors.

import type * as grpc from "@grpc/grpc-js";
import type { NodeApi } from "../node/node_api.ts";
import type { ClientCommand } from "../state/commands.ts";
import type { StateConfig } from "../state/limits.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { OkBody, ValidUntil } from "../state/results.ts";
import { ApiError, errorFromCode, errorFromOutcome, logError, toStatusObject } from "./status_map.ts";

export interface ServiceDeps {
  readonly node: NodeApi;
  /** The state machine's config: validation limits and rho. */
  readonly config: StateConfig;
  /** Observe: updates a reader may fall behind before its stream is dropped. */
  readonly observeBufferMax: number;
  /** KeepAlive: requests received but not yet answered, per stream. */
  readonly keepAlivePendingMax: number;
}

export interface CallContext {
  readonly rpc: string;
  /** Aborts when the client cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** The call's deadline in wall-clock ms (Date.now() domain), null when it has none. */
  readonly deadlineAtMs: number | null;
}

interface ServerCallLike {
  on(event: "cancelled", listener: () => void): unknown;
  getDeadline(): grpc.Deadline;
}

export function callContext(rpc: string, call: ServerCallLike): CallContext {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort(new ApiError("CANCELLED", `${rpc} was cancelled`)));
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  return { rpc, signal: controller.signal, deadlineAtMs: Number.isFinite(deadlineMs) ? deadlineMs : null };
}

export type UnaryImpl = (request: unknown, ctx: CallContext) => Promise<object>;

/**
 * A unary handler whose failures become a status: ApiError its own, any other exception INTERNAL,
 * except an invariant violation (server/fatal.ts isFatal), which stops the process instead.
 */
export function unary(rpc: string, impl: UnaryImpl): grpc.handleUnaryCall<unknown, object> {
  return (call, callback) => {
    let ctx: CallContext;
    try {
      ctx = callContext(rpc, call);
    } catch (error) {
      callback(toStatusObject(error, rpc));
      return;
    }
    Promise.resolve()
      .then(() => impl(call.request, ctx))
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toStatusObject(error, rpc)),
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

/** Submits a client command; an error result or a non-applied outcome throws its ApiError. */
export async function submitOk<K extends OkBody["kind"]>(deps: ServiceDeps, command: ClientCommand, kind: K): Promise<Applied<K>> {
  const outcome = await deps.node.submit(command);
  if (outcome.kind !== "applied") throw errorFromOutcome(outcome, deps.node);
  const result = outcome.result;
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

/** A linearizable read; anything but a value throws its ApiError. */
export async function readOk<T>(
  deps: ServiceDeps,
  query: (machine: LockStateMachine) => T,
): Promise<{ readonly value: T; readonly index: number }> {
  const outcome = await deps.node.read(query);
  if (outcome.kind !== "read") throw errorFromOutcome(outcome, deps.node);
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
