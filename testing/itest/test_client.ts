// A thin gRPC client for integration tests: the dynamic clients of the tenure.v1 protos, leader
// discovery by following NOT_LEADER hints, and errors decoded from the `tenure-error-bin`
// trailer. The real SDK (client-sdk/) is a separate issue; this one stays deliberately simple.
// It dials with the SDK's transport security (mutual TLS or an explicit insecure), by default the
// test run's dev client certificate when this process issued one (test_certs.ts).

import * as grpc from "@grpc/grpc-js";
import { channelCredentials, type TransportSecurity } from "../../client-sdk/tls.ts";
import {
  decodeErrorDetail,
  ERROR_DETAIL_METADATA_KEY,
  tenurePackage,
  type ErrorReason,
  type ServiceName,
} from "../../server/api/protos.ts";
import { defaultTestSecurity } from "./test_certs.ts";

export type CallResult<T> =
  | { readonly ok: true; readonly value: T; readonly endpoint: string }
  | {
      readonly ok: false;
      readonly code: grpc.status;
      readonly details: string;
      readonly reason: ErrorReason | "";
      readonly leaderAddress: string;
      readonly endpoint: string;
    };

type UnaryFn = (
  req: object,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => void;
type ClientCtor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;

const loaded = grpc.loadPackageDefinition(tenurePackage()) as unknown as { tenure: { v1: Record<ServiceName, ClientCtor> } };

export class TestClient {
  private readonly clients = new Map<string, grpc.Client>();
  private preferred: string;
  private readonly credentials: grpc.ChannelCredentials;

  /** `security` defaults to the run's dev client certificate (plaintext if this process issued
   *  none); a test against an --insecure cluster passes { insecure: true } (cluster.testClient()
   *  picks the right one). */
  constructor(
    private readonly endpoints: readonly string[],
    security: TransportSecurity = defaultTestSecurity(),
  ) {
    this.preferred = endpoints[0] ?? "";
    this.credentials = channelCredentials(security);
  }

  client(service: ServiceName, endpoint: string): grpc.Client {
    const key = `${service}@${endpoint}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new loaded.tenure.v1[service](endpoint, this.credentials);
      this.clients.set(key, c);
    }
    return c;
  }

  /** One call on one endpoint, no redirects. */
  callAt<T>(endpoint: string, service: ServiceName, method: string, request: object, timeoutMs = 5000): Promise<CallResult<T>> {
    const c = this.client(service, endpoint) as unknown as Record<string, UnaryFn>;
    const fn = c[method];
    if (!fn) throw new Error(`no method ${service}.${method}`);
    return new Promise((resolve) => {
      fn.call(c, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolve({ ok: true, value: res as T, endpoint });
        const raw = err.metadata?.get(ERROR_DETAIL_METADATA_KEY)[0];
        const detail = Buffer.isBuffer(raw) ? decodeErrorDetail(raw) : null;
        resolve({
          ok: false,
          code: err.code,
          details: err.details,
          reason: detail?.reason ?? "",
          leaderAddress: detail?.leaderAddress ?? "",
          endpoint,
        });
      });
    });
  }

  /**
   * Calls the leader: follows NOT_LEADER hints and tries the other endpoints while there is no
   * leader, until `budgetMs` runs out. Other errors are returned as they are.
   */
  async call<T>(service: ServiceName, method: string, request: object, budgetMs = 10_000): Promise<CallResult<T>> {
    const deadline = Date.now() + budgetMs;
    let endpoint = this.preferred;
    let last: CallResult<T> | null = null;
    while (Date.now() < deadline) {
      const r = await this.callAt<T>(endpoint, service, method, request, Math.max(100, deadline - Date.now()));
      if (r.ok || r.code !== grpc.status.UNAVAILABLE || r.reason === "OUTCOME_UNKNOWN") {
        if (r.ok) this.preferred = endpoint;
        return r;
      }
      last = r;
      const hinted = r.leaderAddress && r.leaderAddress !== endpoint ? r.leaderAddress : "";
      endpoint = hinted || (this.endpoints[(this.endpoints.indexOf(endpoint) + 1) % this.endpoints.length] ?? endpoint);
      if (!hinted) await new Promise((res) => setTimeout(res, 50));
    }
    return last ?? { ok: false, code: grpc.status.DEADLINE_EXCEEDED, details: "budget spent", reason: "", leaderAddress: "", endpoint };
  }

  /**
   * `call` for a request that carries its (client_id, seq): an OUTCOME_UNKNOWN answer (the
   * leadership changed while the entry was in flight) is retried with the very same request, as
   * the SDK does. The session table makes that safe: a retry of an applied request replays its
   * first result, one never applied is applied once. Tests whose subject is not failover use
   * it, so a leader change on a loaded machine is not a failure.
   */
  async callSameSeq<T>(service: ServiceName, method: string, request: object, budgetMs = 10_000): Promise<CallResult<T>> {
    const deadline = Date.now() + budgetMs;
    for (;;) {
      const r = await this.call<T>(service, method, request, Math.max(100, deadline - Date.now()));
      if (r.ok || r.reason !== "OUTCOME_UNKNOWN" || Date.now() >= deadline) return r;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** The leader's id as Cluster.Status reports it, polled until `budgetMs` runs out (throws). */
  async leaderId(budgetMs = 5000): Promise<string> {
    const deadline = Date.now() + budgetMs;
    while (Date.now() < deadline) {
      const r = await this.call<Record<string, unknown>>("Cluster", "Status", {}, 1000);
      if (r.ok && typeof r.value["leaderId"] === "string" && r.value["leaderId"] !== "") return r.value["leaderId"];
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error("no leader");
  }

  /** One renewal over a short KeepAlive stream on the preferred endpoint. */
  keepAliveOnce(clientId: string, seq: number, leaseIds: readonly string[]): Promise<Record<string, unknown> | null> {
    const c = this.client("Lease", this.preferred) as unknown as Record<
      string,
      (opts?: grpc.CallOptions) => grpc.ClientDuplexStream<object, Record<string, unknown>>
    >;
    const open = c["KeepAlive"];
    if (!open) throw new Error("no KeepAlive method");
    const stream = open.call(c, { deadline: Date.now() + 2000 });
    return new Promise((resolve) => {
      stream.once("data", (msg: Record<string, unknown>) => {
        resolve(msg);
        stream.end();
      });
      stream.once("error", () => {
        // Probably not the leader (or it died): try the next endpoint next time.
        const i = this.endpoints.indexOf(this.preferred);
        this.preferred = this.endpoints[(i + 1) % this.endpoints.length] ?? this.preferred;
        resolve(null);
      });
      stream.write({ clientId, seq, leaseIds });
    });
  }

  /** Observe(name) on `endpoint`: every LeaderResponse is pushed to `onLeader`. */
  observe(endpoint: string, name: string, onLeader: (msg: Record<string, unknown>) => void): () => void {
    const c = this.client("Election", endpoint) as unknown as Record<
      string,
      (req: object) => grpc.ClientReadableStream<Record<string, unknown>>
    >;
    const open = c["Observe"];
    if (!open) throw new Error("no Observe method");
    const stream = open.call(c, { name });
    stream.on("data", onLeader);
    stream.on("error", () => {});
    return () => stream.cancel();
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
