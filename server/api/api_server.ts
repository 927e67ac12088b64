// The client-API gRPC server: loads the tenure.v1 protos, wires the four services to a NodeApi,
// bounds message sizes, and binds with the credentials it is given (mutual TLS in tenured).
//
//   const api = await startApiServer({ node, stateConfig, listenAddress: "0.0.0.0:7000" });
//   ... api.boundAddress() ... await api.close();

import * as grpc from "@grpc/grpc-js";
import type { ServiceDefinition } from "@grpc/proto-loader";
import type { AuditSink } from "../auth/audit.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import { CLIENT_MESSAGE_BYTES_MAX_DEFAULT, CLIENT_RESPONSE_FRAME_FACTOR } from "../limits.ts";
import type { NodeApi } from "../node/node_api.ts";
import { DEFAULT_STATE_CONFIG, validateStateConfig, type StateConfig } from "../state/limits.ts";
import { backupChunkBytes } from "../backup/backup_rpc.ts";
import { clusterService } from "./cluster_service.ts";
import { electionService } from "./election_service.ts";
import type { ServiceDeps } from "./handler_kit.ts";
import { leaseService } from "./lease_service.ts";
import { lockService } from "./lock_service.ts";
import { addReflection, type GrpcHealth, healthServiceDefinition } from "../health/grpc_health.ts";
import { serviceDefinition, tenurePackage, type ServiceName } from "./protos.ts";
import { tolerantDeserializer } from "./validate.ts";

export const OBSERVE_BUFFER_MAX_DEFAULT = 1_024;
/** Election.Observe and Lock.Watch streams open at once on this member (each is a listener the
 *  apply loop calls on every applied batch); one more is refused with LIMIT_EXCEEDED. */
export const APPLIED_STREAMS_MAX_DEFAULT = 1_024;
/** HTTP/2 streams (calls) open at once on one client connection. */
export const CLIENT_CONCURRENT_STREAMS_MAX = 256;
export const KEEPALIVE_PENDING_MAX_DEFAULT = 64;

export interface ApiServerOptions {
  readonly node: NodeApi;
  /** Must be the config the state machine runs with: limits and rho come from it. */
  readonly stateConfig?: StateConfig;
  /**
   * The receive frame; responses may be CLIENT_RESPONSE_FRAME_FACTOR times larger. Default
   * CLIENT_MESSAGE_BYTES_MAX_DEFAULT, which server/limits.ts asserts is above the largest valid
   * request (a KeepAlive of keepAliveLeaseIdsMax ids, a Campaign with a full name and value).
   */
  readonly messageBytesMax?: number;
  readonly observeBufferMax?: number;
  readonly appliedStreamsMax?: number;
  readonly keepAlivePendingMax?: number;
  /** What Cluster.Status reports as `insecure`; startApiServer sets it from its credentials.
   *  Default true: a server whose binding is not known here is taken to be plaintext. */
  readonly insecure?: boolean;
  /** Authentication and permissions (server/auth/authenticator.ts); default: the open mode. */
  readonly auth?: Authenticator;
  /** Where audit lines go (server/auth/audit.ts); default: not written. */
  readonly audit?: AuditSink;
  /** The cluster's id, written into backups (Cluster.Backup); default "" (in-process tests). */
  readonly clusterId?: string;
  /** Server interceptors, outermost first (the request metrics of server/metrics). */
  readonly interceptors?: readonly grpc.ServerInterceptor[];
  /** Told of every service definition added, before serving (the request metrics' method labels). */
  readonly onService?: (definition: grpc.ServiceDefinition) => void;
  /** grpc.health.v1.Health on this port (server/health/grpc_health.ts); none when left out. */
  readonly health?: GrpcHealth;
  /** gRPC server reflection of tenure.v1 and the health service (--grpc-reflection); default off. */
  readonly reflection?: boolean;
}

export function createApiServer(options: ApiServerOptions): grpc.Server {
  const config = options.stateConfig ?? DEFAULT_STATE_CONFIG;
  validateStateConfig(config);
  const messageBytesMax = options.messageBytesMax ?? CLIENT_MESSAGE_BYTES_MAX_DEFAULT;
  if (!Number.isSafeInteger(messageBytesMax) || messageBytesMax < 1024) {
    throw new Error(`messageBytesMax must be an integer >= 1024, got ${messageBytesMax}`);
  }
  const deps: ServiceDeps = {
    node: options.node,
    config,
    observeBufferMax: positive(options.observeBufferMax ?? OBSERVE_BUFFER_MAX_DEFAULT, "observeBufferMax"),
    appliedStreams: { open: 0, max: positive(options.appliedStreamsMax ?? APPLIED_STREAMS_MAX_DEFAULT, "appliedStreamsMax") },
    keepAlivePendingMax: positive(options.keepAlivePendingMax ?? KEEPALIVE_PENDING_MAX_DEFAULT, "keepAlivePendingMax"),
    ...(options.auth === undefined ? {} : { auth: options.auth }),
    ...(options.audit === undefined ? {} : { audit: options.audit }),
  };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": messageBytesMax,
    "grpc.max_send_message_length": CLIENT_RESPONSE_FRAME_FACTOR * messageBytesMax,
    "grpc.max_concurrent_streams": CLIENT_CONCURRENT_STREAMS_MAX,
    ...(options.interceptors === undefined ? {} : { interceptors: [...options.interceptors] }),
  });
  const services: readonly [ServiceName, grpc.UntypedServiceImplementation][] = [
    ["Lease", leaseService(deps)],
    ["Lock", lockService(deps)],
    ["Election", electionService(deps)],
    [
      "Cluster",
      clusterService(deps, {
        insecure: options.insecure ?? true,
        backup: { clusterId: options.clusterId ?? "", chunkBytes: backupChunkBytes(messageBytesMax) },
      }),
    ],
  ];
  for (const [name, implementation] of services) {
    const definition = tolerant(serviceDefinition(name));
    options.onService?.(definition);
    server.addService(definition, implementation);
  }
  if (options.health !== undefined) {
    options.onService?.(healthServiceDefinition as grpc.ServiceDefinition);
    options.health.addToServer(server);
  }
  if (options.reflection === true) addReflection(server, tenurePackage());
  return server;
}

export interface ApiServerHandle {
  readonly server: grpc.Server;
  readonly port: number;
  /** host:port actually bound (the port resolved when 0 was asked for). */
  boundAddress(): string;
  /** Graceful shutdown, forced after graceMs. */
  close(graceMs?: number): Promise<void>;
}

export interface StartApiServerOptions extends ApiServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly listenAddress: string;
  /** The port's transport security: tenured passes mutual TLS (server/tls/member_tls.ts), or
   *  plaintext under --insecure. Plaintext when left out (in-process tests). */
  readonly credentials?: grpc.ServerCredentials;
}

/** createApiServer, then bind and serve. */
export function startApiServer(options: StartApiServerOptions): Promise<ApiServerHandle> {
  const credentials = options.credentials ?? grpc.ServerCredentials.createInsecure();
  const server = createApiServer({ ...options, insecure: !credentials._isSecure() });
  return new Promise((resolve, reject) => {
    server.bindAsync(options.listenAddress, credentials, (error, port) => {
      if (error !== null) {
        server.forceShutdown();
        reject(error);
        return;
      }
      const host = options.listenAddress.slice(0, options.listenAddress.lastIndexOf(":"));
      resolve({
        server,
        port,
        boundAddress: () => `${host}:${port}`,
        close: (graceMs = 1_000) => shutdown(server, graceMs),
      });
    });
  });
}

function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

/** The same service with request deserializers that never throw (see validate.ts). */
function tolerant(definition: ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, ServiceDefinition[string]> = {};
  for (const [method, def] of Object.entries(definition)) {
    const descriptor: { name?: unknown } = def.requestType.type;
    const typeName = typeof descriptor.name === "string" ? descriptor.name : `${method} request`;
    out[method] = { ...def, requestDeserialize: tolerantDeserializer(typeName, def.requestDeserialize) };
  }
  return out as grpc.ServiceDefinition;
}

function positive(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${what} must be a positive integer, got ${value}`);
  return value;
}
