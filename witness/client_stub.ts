// The witness's client port (W2): it serves every method of tenure.v1 Lease, Lock, Election and
// Cluster, and refuses all of them with UNAVAILABLE / IS_WITNESS and a leader hint, so a client
// that dialled the witness (an endpoint list that includes site C, a stale hint) is sent to the
// leader instead of hanging. Cluster.Status is the one exception: it answers truthfully, so
// operators and tests can see the witness's term, role and indexes.
//
// The services come from the same proto loader as server/api (proto/tenure_protos.ts), so a new
// method added to a proto is refused here automatically, never left unimplemented.
//
// A throw while answering (reading the witness's status) is handled as server/api handles one:
// an invariant violation stops the process (server/fatal.ts), anything else is INTERNAL and
// logged. Left to grpc-js it would become UNKNOWN without a word.

import * as grpc from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import {
  ERROR_DETAIL_METADATA_KEY,
  ERROR_REASON_METADATA_KEY,
  encodeErrorDetail,
  serviceDefinition,
  type ServiceName,
} from "../proto/tenure_protos.ts";
import type { GrpcHealth } from "../server/health/grpc_health.ts";
import { fatal, isFatal } from "../server/fatal.ts";
import { CLIENT_MESSAGE_BYTES_MAX_DEFAULT, CLIENT_RESPONSE_FRAME_FACTOR } from "../server/limits.ts";
import type { WitnessStatus } from "./witness_node.ts";

export interface ClientStubOptions {
  /** host:port; port 0 picks a free one. */
  readonly listenAddress: string;
  /** The witness's current view (WitnessNode.status). */
  readonly status: () => WitnessStatus;
  /** Client-API address of every member, for the leader hint. */
  readonly memberAddresses: ReadonlyMap<string, string>;
  /** The receive frame, as server/api's (default CLIENT_MESSAGE_BYTES_MAX_DEFAULT). */
  readonly messageBytesMax?: number;
  /** The port's transport security, as tenured's client port (server/tls/member_tls.ts);
   *  plaintext when left out (in-process tests). Cluster.Status reports which. */
  readonly credentials?: grpc.ServerCredentials;
  /** grpc.health.v1.Health on this port, following the witness's readiness; none when left out. */
  readonly health?: GrpcHealth;
}

export interface ClientStubHandle {
  boundAddress(): string;
  /** Graceful shutdown, forced after graceMs. */
  close(graceMs?: number): Promise<void>;
}

const SERVICES: readonly ServiceName[] = ["Lease", "Lock", "Election", "Cluster"];

/** The refusal every client call except Cluster.Status gets, with the current leader hint. */
export function witnessRefusal(status: WitnessStatus, addresses: ReadonlyMap<string, string>, rpc: string): grpc.StatusObject {
  // While the witness itself leads (briefly, to hand over: W5) it is no use as a hint.
  const leaderId = status.leader === status.id ? "" : status.leader;
  const leaderAddress = leaderId === "" ? "" : (addresses.get(leaderId) ?? "");
  const where =
    leaderId === ""
      ? "no leader is known here; try another member"
      : `the leader is ${leaderId} at ${leaderAddress || "(address unknown)"}`;
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_DETAIL_METADATA_KEY, encodeErrorDetail({ reason: "IS_WITNESS", leaderId, leaderAddress, currentToken: 0 }));
  metadata.set(ERROR_REASON_METADATA_KEY, "IS_WITNESS");
  return {
    code: grpc.status.UNAVAILABLE,
    details: `${status.id} is a witness: it keeps the log but serves no client calls (${rpc}); ${where}; retry there with the same seq`,
    metadata,
  };
}

/** Cluster.Status of a witness, in the shape of tenure.v1.ClusterStatusResponse. */
export function statusResponse(s: WitnessStatus, addresses: ReadonlyMap<string, string>, insecure: boolean): Record<string, unknown> {
  return {
    nodeId: s.id,
    role: s.role,
    term: s.term,
    leaderId: s.leader,
    leaderAddress: s.leader === "" ? "" : (addresses.get(s.leader) ?? ""),
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    lastIndex: s.lastIndex,
    confState: s.confState,
    insecure,
    recovering: s.recovering === true,
  };
}

type AnyHandler = grpc.UntypedHandleCall;

/** The answer to an exception nobody expected; stops the process first if it is fatal. */
function unexpected(rpc: string, error: unknown): grpc.StatusObject {
  if (isFatal(error)) fatal(error, `client call ${rpc}`);
  else {
    const described = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(
      `${JSON.stringify({ timeMs: Date.now(), level: "error", component: "witness_client_stub", rpc, error: described })}\n`,
    );
  }
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_DETAIL_METADATA_KEY, encodeErrorDetail({ reason: "INTERNAL", leaderId: "", leaderAddress: "", currentToken: 0 }));
  metadata.set(ERROR_REASON_METADATA_KEY, "INTERNAL");
  return { code: grpc.status.INTERNAL, details: `internal error in ${rpc} (logged on the witness)`, metadata };
}

/** make(), or the answer to its throw. */
function guarded<T>(rpc: string, make: () => T): { readonly value: T } | { readonly failure: grpc.StatusObject } {
  try {
    return { value: make() };
  } catch (error) {
    return { failure: unexpected(rpc, error) };
  }
}

function refusingHandler(def: MethodDefinition<object, object>, refuse: () => grpc.StatusObject): AnyHandler {
  if (def.responseStream) {
    // Server and bidi streams: end at once with the refusal; nothing was started.
    return (call: { emit(event: "error", status: grpc.StatusObject): boolean }) => {
      call.emit("error", refuse());
    };
  }
  // Unary and client streams answer through the callback.
  return (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(refuse());
}

export function createClientStub(options: ClientStubOptions): grpc.Server {
  const insecure = !(options.credentials?._isSecure() ?? false);
  const messageBytesMax = options.messageBytesMax ?? CLIENT_MESSAGE_BYTES_MAX_DEFAULT;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": messageBytesMax,
    "grpc.max_send_message_length": CLIENT_RESPONSE_FRAME_FACTOR * messageBytesMax,
  });
  const addresses = options.memberAddresses;
  for (const name of SERVICES) {
    const definition = serviceDefinition(name);
    const service: Record<string, MethodDefinition<object, object>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [method, def] of Object.entries(definition)) {
      // Requests are never looked at, so they are never decoded: a malformed one cannot fail
      // differently from a good one.
      service[method] = { ...def, requestDeserialize: () => ({}) };
      const rpc = `${name}.${method}`;
      implementation[method] =
        rpc === "Cluster.Status"
          ? (_call: unknown, callback: grpc.sendUnaryData<object>) => {
              const r = guarded(rpc, () => statusResponse(options.status(), addresses, insecure));
              if ("value" in r) callback(null, r.value);
              else callback(r.failure);
            }
          : refusingHandler(def, () => {
              const r = guarded(rpc, () => witnessRefusal(options.status(), addresses, rpc));
              return "value" in r ? r.value : r.failure;
            });
    }
    server.addService(service as grpc.ServiceDefinition, implementation);
  }
  options.health?.addToServer(server);
  return server;
}

export function startClientStub(options: ClientStubOptions): Promise<ClientStubHandle> {
  const server = createClientStub(options);
  return new Promise((resolve, reject) => {
    server.bindAsync(options.listenAddress, options.credentials ?? grpc.ServerCredentials.createInsecure(), (error, port) => {
      if (error !== null) {
        server.forceShutdown();
        reject(error);
        return;
      }
      const host = options.listenAddress.slice(0, options.listenAddress.lastIndexOf(":"));
      resolve({ boundAddress: () => `${host}:${port}`, close: (graceMs = 1_000) => shutdown(server, graceMs) });
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
