// The bench's quorum floor: three processes that do only what any replicated lock service must do
// for each request on this machine: the client's gRPC call in (Tenure's protos, the same grpc-js
// stack and mutual TLS), one frame to each follower over a gRPC stream, an fdatasync on every
// member (a follower acknowledges after its own), the commit once the leader and one follower have
// it, and the reply. quorum_floor_leader.ts says what it leaves out. It is the most a consensus
// server written on this stack could reach here: a target above it is out of reach for Tenure on
// this machine, whatever its code does (quorum_floor_cluster.ts, npm run bench -- --floor).
//
//   node --import tsx tools/bench/quorum_floor_server.ts --role follower --listen HOST:PORT --data DIR [tls]
//   node --import tsx tools/bench/quorum_floor_server.ts --role leader --listen HOST:PORT --peers A,B --data DIR [tls]
//   tls: --insecure | --tls-ca F --tls-cert F --tls-key F (a member's certificate; peers are dialled as b and c)

import { fdatasync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "../../proto/tenure_protos.ts";
import { QUORUM_FLOOR_FOLLOWER_IDS, QUORUM_FLOOR_READY_LINE } from "./quorum_floor_cluster.ts";
import { type FloorCommand, FloorLeader, type FollowerLink, frameSeq, SEQ_BYTES } from "./quorum_floor_leader.ts";

const bytes = (b: Buffer): Buffer => b;
const APPEND: grpc.MethodDefinition<Buffer, Buffer> = {
  path: "/tenure.bench.QuorumFloor/Append",
  requestStream: true,
  responseStream: true,
  requestSerialize: bytes,
  requestDeserialize: bytes,
  responseSerialize: bytes,
  responseDeserialize: bytes,
};
const PEER_SERVICE: grpc.ServiceDefinition = { Append: APPEND };

interface Security {
  readonly server: grpc.ServerCredentials;
  readonly client: grpc.ChannelCredentials;
  readonly tls: boolean;
}

function security(values: Record<string, string | boolean | undefined>): Security {
  if (values["insecure"] === true) {
    return { server: grpc.ServerCredentials.createInsecure(), client: grpc.credentials.createInsecure(), tls: false };
  }
  const [ca, cert, key] = [values["tls-ca"], values["tls-cert"], values["tls-key"]];
  if (typeof ca !== "string" || typeof cert !== "string" || typeof key !== "string")
    throw new Error("--tls-ca, --tls-cert and --tls-key are required without --insecure");
  const [caPem, certPem, keyPem] = [readFileSync(ca), readFileSync(cert), readFileSync(key)];
  return {
    // As Tenure's ports: a client certificate is required and checked against the CA.
    server: grpc.ServerCredentials.createSsl(caPem, [{ cert_chain: certPem, private_key: keyPem }], true),
    client: grpc.credentials.createSsl(caPem, keyPem, certPem),
    tls: true,
  };
}

/** A follower: append each frame, fdatasync, answer with the highest seq the sync covered. */
function follower(server: grpc.Server, dataDir: string): void {
  const fd = openSync(join(dataDir, "log"), "a");
  server.addService(PEER_SERVICE, {
    Append: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (frame: Buffer) => {
        if (frame.length < SEQ_BYTES) {
          call.emit("error", {
            code: grpc.status.INVALID_ARGUMENT,
            details: `frame of ${frame.length} bytes has no ${SEQ_BYTES}-byte seq`,
          });
          return;
        }
        writeSync(fd, frame);
        fdatasync(fd, (error) => {
          if (error) throw error;
          call.write(frame.subarray(0, SEQ_BYTES)); // every seq up to this one is durable here
        });
      });
      call.on("end", () => call.end()); // the leader is done: so is the stream
      call.on("error", () => {});
    },
  });
}

function followerLink(address: string, id: string, sec: Security, onAck: (seq: number) => void): FollowerLink {
  const options = sec.tls ? { "grpc.ssl_target_name_override": id } : {};
  const client = new grpc.Client(address, sec.client, options);
  const call = client.makeBidiStreamRequest(APPEND.path, bytes, bytes);
  call.on("data", (ack: Buffer) => {
    if (ack.length < SEQ_BYTES) {
      process.stderr.write(`quorum floor: ${id} sent an acknowledgement of ${ack.length} bytes\n`);
      process.exit(1);
    }
    onAck(frameSeq(ack));
  });
  call.on("error", (error: Error) => {
    process.stderr.write(`quorum floor: stream to ${id} failed: ${error.message}\n`);
    process.exit(1);
  });
  return { send: (frame) => void call.write(frame) };
}

type Unary = grpc.handleUnaryCall<Record<string, unknown>, unknown>;

function leader(server: grpc.Server, dataDir: string, peers: readonly string[], sec: Security): FloorLeader {
  let node: FloorLeader | null = null;
  const links = peers.map((address, i) =>
    followerLink(address, QUORUM_FLOOR_FOLLOWER_IDS[i] ?? `peer${i}`, sec, (seq) => node?.acked(seq)),
  );
  const floor = new FloorLeader(join(dataDir, "log"), links);
  node = floor;
  const serve =
    (toCommand: (request: Record<string, unknown>) => FloorCommand): Unary =>
    (call, callback) =>
      floor.propose(toCommand(call.request), callback);
  server.addService(serviceDefinition("Lease"), {
    Grant: serve(() => ({ kind: "grant" })),
    Revoke: serve(() => ({ kind: "revoke" })),
  });
  server.addService(serviceDefinition("Lock"), {
    Acquire: serve((r) => ({ kind: "acquire", name: String(r["name"]), wait: r["wait"] === true })),
    Release: serve((r) => ({ kind: "release", name: String(r["name"]), token: String(r["token"]) })),
  });
  return floor;
}

function main(): void {
  const { values } = parseArgs({
    strict: true,
    options: {
      role: { type: "string" },
      listen: { type: "string" },
      peers: { type: "string" },
      data: { type: "string" },
      insecure: { type: "boolean", default: false },
      "tls-ca": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
  });
  const { role, listen, data } = values;
  if (listen === undefined || data === undefined) throw new Error("--listen HOST:PORT and --data DIR are required");
  if (role !== "leader" && role !== "follower") throw new Error("--role leader|follower is required");
  mkdirSync(data, { recursive: true });
  const sec = security(values);
  const server = new grpc.Server();
  // The leader's streams connect lazily: the cluster starts the followers first.
  const floor =
    role === "leader"
      ? leader(
          server,
          data,
          (values.peers ?? "").split(",").filter((p) => p.length > 0),
          sec,
        )
      : null;
  if (role === "follower") follower(server, data);
  server.bindAsync(listen, sec.server, (error) => {
    if (error) {
      process.stderr.write(`quorum floor: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${QUORUM_FLOOR_READY_LINE} as ${role} on ${listen}\n`);
  });
  const stop = (): void => {
    floor?.close();
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main();
