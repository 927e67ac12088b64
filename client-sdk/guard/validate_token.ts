// Chubby's CheckSequencer for resources that cannot keep a guard (no storage of their own for a
// mark): ask the Tenure cluster, by a linearizable read, whether `token` is still the current
// grant of lock or election `name`.
//
// This is a time-of-check/time-of-use race on its own: the answer is already old when it
// arrives, and the lock can pass to a newer holder before the resource acts on it. Use it only
// combined with the max-token rule (the resource still rejects tokens lower than one it has seen)
// or with the lock-delay (DESIGN.md §3) as the bound on in-flight writes. Prefer a guard.

import * as grpc from "@grpc/grpc-js";
import { decodeErrorDetail, ERROR_DETAIL_METADATA_KEY, tenurePackage } from "../../proto/tenure_protos.ts";
import { channelCredentials, type TransportSecurity } from "../tls.ts";
import { parseFencingToken } from "./token_store.ts";
import type { FencingToken } from "./token_store.ts";

export interface ValidateTokenResult {
  /** True iff `token` is the current grant of `name`, held by a live lease. */
  readonly current: boolean;
  /** The current grant's token (0n when nobody holds `name`). */
  readonly currentToken: bigint;
  readonly kind: "GRANT_KIND_NONE" | "GRANT_KIND_LOCK" | "GRANT_KIND_ELECTION";
}

export interface ValidateTokenOptions {
  /** Per attempt (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Total attempts over endpoints and leader hints (default 2 * endpoints + 2). */
  readonly maxAttempts?: number;
  /** How to reach the members, as TenureClient takes it: `{ tls }` or, for a cluster started with
   *  --insecure, `{ insecure: true }`. Required unless `credentials` is given: no plaintext by
   *  default. */
  readonly security?: TransportSecurity;
  /** Ready-made channel credentials instead of `security`. */
  readonly credentials?: grpc.ChannelCredentials;
  readonly signal?: AbortSignal;
}

type LockClient = grpc.Client & {
  ValidateToken(
    req: { name: string; token: string },
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: { current: boolean; kind: string; currentToken: string }) => void,
  ): grpc.ClientUnaryCall;
};

function lockClientConstructor(): new (address: string, credentials: grpc.ChannelCredentials) => LockClient {
  const pkg = grpc.loadPackageDefinition(tenurePackage()) as unknown as {
    tenure: { v1: { Lock: new (a: string, c: grpc.ChannelCredentials) => LockClient } };
  };
  return pkg.tenure.v1.Lock;
}

/** Asks `endpoints` (host:port) in turn, following NOT_LEADER / IS_WITNESS hints to the leader. */
export async function validateToken(
  endpoints: readonly string[],
  name: string,
  token: FencingToken,
  options: ValidateTokenOptions = {},
): Promise<ValidateTokenResult> {
  if (endpoints.length === 0) throw new Error("validateToken: no endpoints");
  const t = parseFencingToken(token);
  const Lock = lockClientConstructor();
  // channelCredentials refuses a security with neither tls nor insecure: true (INVALID_ARGUMENT).
  const credentials = options.credentials ?? channelCredentials(options.security ?? {});
  const maxAttempts = options.maxAttempts ?? 2 * endpoints.length + 2;
  const clients = new Map<string, LockClient>();
  let next = 0;
  let hinted: string | null = null;
  let lastError: unknown = null;
  try {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      options.signal?.throwIfAborted();
      const address: string = hinted ?? endpoints[next++ % endpoints.length] ?? "";
      hinted = null;
      let client = clients.get(address);
      if (client === undefined) clients.set(address, (client = new Lock(address, credentials)));
      try {
        const res = await call(client, name, t, options);
        const currentToken = BigInt(res.currentToken);
        const kind = res.kind as ValidateTokenResult["kind"];
        return { current: res.current === true, currentToken, kind };
      } catch (e) {
        lastError = e;
        const hint = leaderHint(e);
        if (hint !== null && hint !== address) hinted = hint;
        else if (!isRetryable(e)) throw e;
      }
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
  throw new Error(`validateToken: no leader answered after ${maxAttempts} attempts`, { cause: lastError });
}

function call(client: LockClient, name: string, token: bigint, options: ValidateTokenOptions) {
  return new Promise<{ current: boolean; kind: string; currentToken: string }>((resolve, reject) => {
    const c = client.ValidateToken({ name, token: token.toString() }, { deadline: Date.now() + (options.timeoutMs ?? 2000) }, (err, res) =>
      err !== null ? reject(err) : res === undefined ? reject(new Error("empty response")) : resolve(res),
    );
    options.signal?.addEventListener("abort", () => c.cancel(), { once: true });
  });
}

/** The leader address from a NOT_LEADER / IS_WITNESS error's tenure-error-bin trailer. */
function leaderHint(e: unknown): string | null {
  const md = (e as Partial<grpc.ServiceError>).metadata;
  const bin = md?.get(ERROR_DETAIL_METADATA_KEY)[0];
  if (!Buffer.isBuffer(bin)) return null;
  try {
    const d = decodeErrorDetail(bin);
    return (d.reason === "NOT_LEADER" || d.reason === "IS_WITNESS") && d.leaderAddress !== "" ? d.leaderAddress : null;
  } catch {
    return null;
  }
}

// A read changes nothing, so any transport-level failure may go to the next endpoint.
function isRetryable(e: unknown): boolean {
  const code = (e as Partial<grpc.ServiceError>).code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
}
