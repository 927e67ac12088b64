// Raw @grpc/grpc-js stubs for etcd's Lease, Maintenance and v3lock services (the protos beside
// this file), plaintext as etcd runs by default. Unary calls are promises with a deadline; ids
// are int64 as decimal strings (no rounding above 2^53).

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const HERE = dirname(fileURLToPath(import.meta.url));

type Message = Record<string, unknown>;
type Unary = (req: Message, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Message) => void) => void;
type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;

interface Loaded {
  etcdserverpb: { Lease: Ctor; Maintenance: Ctor };
  v3lockpb: { Lock: Ctor };
}

let loaded: Loaded | null = null;
function stubs(): Loaded {
  loaded ??= grpc.loadPackageDefinition(
    protoLoader.loadSync([join(HERE, "etcd_rpc.proto"), join(HERE, "etcd_v3lock.proto")], {
      longs: String,
      defaults: true,
      includeDirs: [HERE],
    }),
  ) as unknown as Loaded;
  return loaded;
}

const CALL_TIMEOUT_MS = 10_000;

/** One connection (channel) to one etcd member. */
export class EtcdConnection {
  private readonly lease: grpc.Client;
  private readonly maintenance: grpc.Client;
  private readonly lock: grpc.Client;

  constructor(readonly address: string) {
    const s = stubs();
    const creds = grpc.credentials.createInsecure();
    // LeaseLeases of 100,000 leases is a few MB.
    const options = { "grpc.max_receive_message_length": 64 * 1024 * 1024 };
    this.lease = new s.etcdserverpb.Lease(address, creds, options);
    // One channel for the three services: the same HTTP/2 connection, as a user's client has.
    const channelOverride = { channelOverride: this.lease.getChannel() };
    this.maintenance = new s.etcdserverpb.Maintenance(address, creds, { ...options, ...channelOverride });
    this.lock = new s.v3lockpb.Lock(address, creds, { ...options, ...channelOverride });
  }

  private unary(client: grpc.Client, method: string, req: Message, timeoutMs = CALL_TIMEOUT_MS): Promise<Message> {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (!fn) throw new Error(`no method ${method}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r)));
    });
  }

  /** LeaseGrant with a TTL in seconds (etcd's unit); the lease id. */
  async grant(ttlS: number): Promise<string> {
    const r = await this.unary(this.lease, "LeaseGrant", { TTL: ttlS });
    if (typeof r["error"] === "string" && r["error"] !== "") throw new Error(`LeaseGrant: ${r["error"]}`);
    return String(r["ID"]);
  }

  async revoke(id: string): Promise<void> {
    await this.unary(this.lease, "LeaseRevoke", { ID: id });
  }

  /** How many leases the cluster holds (LeaseLeases). */
  async leaseCount(): Promise<number> {
    const r = await this.unary(this.lease, "LeaseLeases", {}, 30_000);
    return Array.isArray(r["leases"]) ? r["leases"].length : 0;
  }

  /** v3lock Lock: blocks until `name` is held through `leaseId`; the key that holds it. */
  async lockName(name: string, leaseId: string, timeoutMs = CALL_TIMEOUT_MS): Promise<Buffer> {
    const r = await this.unary(this.lock, "Lock", { name: Buffer.from(name), lease: leaseId }, timeoutMs);
    const key = r["key"];
    if (!Buffer.isBuffer(key)) throw new Error("Lock answered without a key");
    return key;
  }

  async unlock(key: Buffer): Promise<void> {
    await this.unary(this.lock, "Unlock", { key });
  }

  /** This member's id and the leader's id it knows (0 for none), as decimal strings. */
  async status(timeoutMs = 1000): Promise<{ memberId: string; leader: string }> {
    const r = await this.unary(this.maintenance, "Status", {}, timeoutMs);
    const header = (r["header"] ?? {}) as Message;
    return { memberId: String(header["memberId"] ?? "0"), leader: String(r["leader"] ?? "0") };
  }

  /** A LeaseKeepAlive stream: each request renews one lease, each answer carries its new TTL. */
  keepAliveStream(): grpc.ClientDuplexStream<Message, Message> {
    const fn = (this.lease as unknown as Record<string, (meta: grpc.Metadata) => grpc.ClientDuplexStream<Message, Message>>)[
      "LeaseKeepAlive"
    ];
    if (!fn) throw new Error("no method LeaseKeepAlive");
    return fn.call(this.lease, new grpc.Metadata());
  }

  close(): void {
    this.lease.close();
  }
}
