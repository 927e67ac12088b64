// The client's transport: the endpoint it currently believes leads (Transport), over a Wire that
// does the I/O. The production wire is grpc-js (GrpcWire): one channel per endpoint (all four
// services share it), unary calls bound to an AbortSignal and a deadline, stream openers. The
// deterministic lock simulation substitutes a wire over its simulated network
// (testing/sim/sdk_client.ts), so everything above the wire (leader discovery, retries, sessions,
// keepalive, leases) is the SDK's own code there too. No retry logic here (rpc.ts owns it); every
// failure comes back as a TenureError.

import * as grpc from "@grpc/grpc-js";
import { tenurePackage, type ServiceName } from "../proto/tenure_protos.ts";
import { TenureError } from "./errors.ts";
import { abortError } from "./signals.ts";
import { channelCredentials, type TransportSecurity } from "./tls.ts";

export type { TlsOptions, TransportSecurity } from "./tls.ts";

export type Message = Record<string, unknown>;

type Callback = (err: grpc.ServiceError | null, res: Message) => void;
type UnaryFn = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;
type ClientCtor = new (address: string, creds: grpc.ChannelCredentials, options: grpc.ClientOptions) => grpc.Client;

let services: Record<ServiceName, ClientCtor> | null = null;
function serviceCtors(): Record<ServiceName, ClientCtor> {
  services ??= (grpc.loadPackageDefinition(tenurePackage()) as unknown as { tenure: { v1: Record<ServiceName, ClientCtor> } }).tenure.v1;
  return services;
}

/** The client side of Lease.KeepAlive as the SDK uses it (a grpc-js ClientDuplexStream is one). */
export interface DuplexStream {
  write(message: object): unknown;
  on(event: "data", listener: (message: Message) => void): unknown;
  on(event: "error", listener: (error: unknown) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  removeAllListeners(event: "data"): unknown;
  cancel(): void;
}

/** The client side of a server stream (Election.Observe); a grpc-js ClientReadableStream is one. */
export interface ServerStream extends AsyncIterable<Message> {
  cancel(): void;
}

/**
 * The I/O under the SDK: one attempt of one call at one endpoint, and the stream openers. A
 * failure is a TenureError (unary rejects with one; a stream emits "error" with anything
 * TenureError.from understands).
 */
export interface Wire {
  /** One unary call at one endpoint, cancelled with `signal`, bounded by `timeoutMs` (on the client's clock). */
  unary(endpoint: string, service: ServiceName, method: string, request: object, timeoutMs: number, signal: AbortSignal): Promise<Message>;
  duplex(endpoint: string, service: ServiceName, method: string): DuplexStream;
  serverStream(endpoint: string, service: ServiceName, method: string, request: object): ServerStream;
  close(): void;
}

/** Which endpoint to try next: the one believed to lead, NOT_LEADER hints, rotation on failure. */
export class Transport {
  private preferred: string;

  constructor(
    readonly endpoints: readonly string[],
    private readonly wire: Wire,
    private readonly leaderHints: "follow" | "listed" = "follow",
  ) {
    if (endpoints.length === 0) throw new TenureError("INVALID_ARGUMENT", "at least one endpoint is required");
    this.preferred = endpoints[0] ?? "";
  }

  /** The endpoint believed to lead (or the next one to try). */
  get leader(): string {
    return this.preferred;
  }

  /**
   * Follow a NOT_LEADER hint from `from`; the hint may name an endpoint the caller did not list
   * (with leaderHints "listed" such a hint only moves on to the next listed endpoint).
   */
  setLeader(address: string, from = this.preferred): void {
    if (!address) return;
    if (this.leaderHints === "listed" && !this.endpoints.includes(address)) {
      this.rotate(from);
      return;
    }
    this.preferred = address;
  }

  /** After a failure at `from` without a hint: move on to the next listed endpoint. */
  rotate(from: string): void {
    if (this.preferred !== from) return; // someone already moved on
    const i = this.endpoints.indexOf(from);
    this.preferred = this.endpoints[(i + 1) % this.endpoints.length] ?? from;
  }

  unary(endpoint: string, service: ServiceName, method: string, request: object, timeoutMs: number, signal: AbortSignal): Promise<Message> {
    return this.wire.unary(endpoint, service, method, request, timeoutMs, signal);
  }

  duplex(endpoint: string, service: ServiceName, method: string): DuplexStream {
    return this.wire.duplex(endpoint, service, method);
  }

  serverStream(endpoint: string, service: ServiceName, method: string, request: object): ServerStream {
    return this.wire.serverStream(endpoint, service, method, request);
  }

  close(): void {
    this.wire.close();
  }
}

/** The production wire: grpc-js channels, one per endpoint and service, all over one set of
 *  credentials (so the four services at one endpoint share its connection). */
export class GrpcWire implements Wire {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly credentials: grpc.ChannelCredentials;
  private readonly interceptors: grpc.Interceptor[];

  /** Mutual TLS (tls.ts), or plaintext only when asked for by name: a client that forgot its
   *  TLS options must not quietly talk plaintext. `interceptors` run on every call and stream
   *  (a bearer token's, bearer_token.ts). */
  constructor(security: TransportSecurity, options: { readonly interceptors?: readonly grpc.Interceptor[] } = {}) {
    this.credentials = channelCredentials(security);
    this.interceptors = [...(options.interceptors ?? [])];
  }

  client(service: ServiceName, endpoint: string): grpc.Client {
    const key = `${service}@${endpoint}`;
    let c = this.clients.get(key);
    if (!c) {
      const Ctor = serviceCtors()[service];
      // Keepalive pings find a dead peer on an idle channel; a short reconnect backoff matters
      // more than the default 20 s when the member comes back after a failover.
      c = new Ctor(endpoint, this.credentials, {
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 2_000,
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 1_000,
        ...(this.interceptors.length > 0 ? { interceptors: this.interceptors } : {}),
      });
      this.clients.set(key, c);
    }
    return c;
  }

  /** One unary call at one endpoint, cancelled with `signal`, bounded by `timeoutMs`. */
  unary(endpoint: string, service: ServiceName, method: string, request: object, timeoutMs: number, signal: AbortSignal): Promise<Message> {
    const c = this.client(service, endpoint) as unknown as Record<string, UnaryFn>;
    const fn = c[method];
    if (!fn) return Promise.reject(new TenureError("UNIMPLEMENTED", `no method ${service}.${method}`));
    if (signal.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      // grpc-js takes a wall-clock deadline; it is only used for this one short attempt.
      const call = fn.call(c, request, new grpc.Metadata(), { deadline: Date.now() + Math.max(1, timeoutMs) }, (err, res) => {
        signal.removeEventListener("abort", onAbort);
        if (err) reject(TenureError.from(err));
        else resolve(res);
      });
      const onAbort = (): void => call.cancel();
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  duplex(endpoint: string, service: ServiceName, method: string): grpc.ClientDuplexStream<object, Message> {
    const c = this.client(service, endpoint) as unknown as Record<
      string,
      (opts?: grpc.CallOptions) => grpc.ClientDuplexStream<object, Message>
    >;
    const open = c[method];
    if (!open) throw new TenureError("UNIMPLEMENTED", `no method ${service}.${method}`);
    return open.call(c, {});
  }

  serverStream(endpoint: string, service: ServiceName, method: string, request: object): grpc.ClientReadableStream<Message> {
    const c = this.client(service, endpoint) as unknown as Record<
      string,
      (req: object, opts?: grpc.CallOptions) => grpc.ClientReadableStream<Message>
    >;
    const open = c[method];
    if (!open) throw new TenureError("UNIMPLEMENTED", `no method ${service}.${method}`);
    return open.call(c, request, {});
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
