// The guard in front of a gRPC resource server (@grpc/grpc-js). `withFencing` wraps a service
// implementation's unary handlers: the token comes from request metadata; a missing or malformed
// one answers INVALID_ARGUMENT, a stale one FAILED_PRECONDITION with the trailer
// `tenure-error-reason: STALE_FENCING_TOKEN` (the same trailer key Tenure's own errors use), and
// the handler never runs. As over HTTP, that early check is not atomic with the handler's later
// write, so a handler does its protected write with `fencedCall(call).run(write)`.
//
// Streaming calls cannot be fenced per message here, so a wrapped method that turns out to be
// streaming answers UNIMPLEMENTED instead of running unfenced; list the methods to wrap in
// `methods` when a service mixes the two.

import * as grpc from "@grpc/grpc-js";
import { InvalidFencingTokenError } from "./errors.ts";
import type { Fenced } from "./http_middleware.ts";
import { type RunResult, tryParseFencingToken } from "./token_store.ts";
import type { FencingGuard } from "./token_store.ts";

export const DEFAULT_TOKEN_METADATA_KEY = "tenure-fencing-token";
export const ERROR_REASON_METADATA_KEY = "tenure-error-reason";

export interface GrpcFencingOptions<C> {
  readonly guard: FencingGuard<C>;
  /** The resource a call writes to (null/undefined answers INVALID_ARGUMENT). */
  readonly resourceOf: (call: grpc.ServerUnaryCall<unknown, unknown>, method: string) => string | null | undefined;
  /** Metadata key carrying the token (default tenure-fencing-token). */
  readonly metadataKey?: string;
  /** Methods to fence (default: every method of the implementation). */
  readonly methods?: readonly string[];
}

const admitted = new WeakMap<object, Fenced<unknown>>();

/** The admitted call's resource and token, and `run(write)` atomic with a fresh check. */
export function fencedCall<C>(call: grpc.ServerUnaryCall<unknown, unknown>): Fenced<C> {
  const f = admitted.get(call);
  if (f === undefined) throw new Error("fencedCall: this call did not pass through withFencing");
  return f as Fenced<C>;
}

export function withFencing<T extends grpc.UntypedServiceImplementation, C>(implementation: T, options: GrpcFencingOptions<C>): T {
  const key = (options.metadataKey ?? DEFAULT_TOKEN_METADATA_KEY).toLowerCase();
  const wrapped: grpc.UntypedServiceImplementation = { ...implementation };
  for (const [method, handler] of Object.entries(implementation)) {
    if (options.methods !== undefined && !options.methods.includes(method)) continue;
    // Handlers are typed per call kind; this one only ever forwards the same arguments.
    const original = handler as (...args: unknown[]) => void;
    wrapped[method] = function fenced(call: grpc.ServerUnaryCall<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) {
      const isUnary = typeof callback === "function" && "request" in call;
      if (!isUnary) {
        const status = { code: grpc.status.UNIMPLEMENTED, details: `${method} is streaming; withFencing fences unary methods only` };
        if (typeof callback === "function") callback(status, null);
        else (call as unknown as grpc.ServerWritableStream<unknown, unknown>).emit("error", status);
        return;
      }
      const refuse = (code: grpc.status, reason: string, details: string) => {
        const trailer = new grpc.Metadata();
        trailer.set(ERROR_REASON_METADATA_KEY, reason);
        callback({ code, details, metadata: trailer }, null);
      };
      const resource = options.resourceOf(call, method);
      if (resource === null || resource === undefined || resource === "") {
        return refuse(grpc.status.INVALID_ARGUMENT, "INVALID_RESOURCE", `${method}: the request names no fenced resource`);
      }
      const values = call.metadata.get(key);
      const raw = values.length === 1 ? values[0] : undefined;
      const token =
        values.length > 1
          ? new InvalidFencingTokenError(values, `${key} given more than once`)
          : tryParseFencingToken(typeof raw === "string" ? raw.trim() : raw === undefined ? undefined : raw.toString("utf8"));
      if (token instanceof InvalidFencingTokenError) {
        return refuse(grpc.status.INVALID_ARGUMENT, token.code, `${token.message} (metadata ${key})`);
      }
      let check: RunResult<undefined>;
      try {
        check = options.guard.tryRun(resource, token, () => undefined);
      } catch (e) {
        return refuse(grpc.status.INTERNAL, "INTERNAL", `fencing check failed: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (!check.ok) {
        const trailer = new grpc.Metadata();
        trailer.set(ERROR_REASON_METADATA_KEY, check.error.code);
        // The highest accepted token tells the stale holder how far behind it is.
        trailer.set("tenure-fencing-highest", check.error.highestToken.toString());
        callback({ code: grpc.status.FAILED_PRECONDITION, details: check.error.message, metadata: trailer }, null);
        return;
      }
      const guard = options.guard;
      const fenced: Fenced<C> = { resource, token, run: (write) => guard.run(resource, token, write) };
      admitted.set(call, fenced as Fenced<unknown>);
      original.call(implementation, call, callback);
    } as grpc.UntypedHandleCall;
  }
  return wrapped as T;
}
