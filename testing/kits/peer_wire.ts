// A hand-written peer: opens RaftPeer streams (Send, InstallSnapshot) to a member's peer port and
// writes frames the way an outsider or a broken member would, encoded with the project's own
// codec or as raw bytes. For the peer-security and fatal tests: what a member does with frames
// it did not expect. Credentials: plaintext, TLS without a client certificate, or any
// certificate and key (a member's, a client's, another CA's).

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { Message, SnapshotMessage } from "../../server/core/messages.ts";
import { PEER_PROTO_LOADER_OPTIONS, encodeBatch } from "../../server/transport/peer_codec.ts";
import { snapshotChunks } from "../../server/transport/snapshot_chunks.ts";

const PEER_PROTO = new URL("../../proto/tenure/v1/peer.proto", import.meta.url).pathname;
const methods = protoLoader.loadSync(PEER_PROTO, { ...PEER_PROTO_LOADER_OPTIONS })["tenure.v1.RaftPeer"] as Record<
  string,
  protoLoader.MethodDefinition<object, object>
>;

export type PeerCredentials =
  | { readonly kind: "insecure" }
  /** TLS trusting `caFile`; with certFile and keyFile it presents that certificate. */
  | { readonly kind: "tls"; readonly caFile: string; readonly certFile?: string; readonly keyFile?: string };

export interface StreamOutcome {
  readonly code: grpc.status;
  readonly details: string;
}

function channelOf(c: PeerCredentials): grpc.ChannelCredentials {
  if (c.kind === "insecure") return grpc.credentials.createInsecure();
  const ca = readFileSync(c.caFile);
  if (c.certFile === undefined || c.keyFile === undefined) return grpc.credentials.createSsl(ca);
  return grpc.credentials.createSsl(ca, readFileSync(c.keyFile), readFileSync(c.certFile));
}

export interface PeerStreamOptions {
  /** host:port of the member's peer port. */
  readonly address: string;
  readonly credentials: PeerCredentials;
  /** The member id the member's certificate is for (grpc.ssl_target_name_override), under TLS. */
  readonly targetMemberId: string;
  readonly deadlineMs?: number;
}

/** One stream on `method`: writes every frame (objects through the proto, Buffers as raw bytes), ends, and resolves with the status. */
export function peerStream(o: PeerStreamOptions, method: "Send" | "InstallSnapshot", frames: readonly unknown[]): Promise<StreamOutcome> {
  const m = methods[method];
  if (!m) throw new Error(`no RaftPeer.${method}`);
  const options: grpc.ChannelOptions = o.credentials.kind === "tls" ? { "grpc.ssl_target_name_override": o.targetMemberId } : {};
  const client = new grpc.Client(o.address, channelOf(o.credentials), options);
  const serialize = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : (m.requestSerialize as (x: unknown) => Buffer)(v));
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      m.path,
      serialize,
      m.responseDeserialize,
      new grpc.Metadata(),
      { deadline: Date.now() + (o.deadlineMs ?? 5000) },
      (err) => {
        client.close();
        resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" });
      },
    );
    call.on("error", () => {}); // the status arrives through the callback
    for (const f of frames) call.write(f);
    call.end();
  });
}

/** A frame of `messages` from `from` to `to`, as a member's PeerLink writes it. */
export function peerFrame(clusterId: string, header: { from: string; to: string }, messages: readonly Message[]): unknown {
  return encodeBatch({ clusterId, ...header }, messages);
}

/** The chunks of an InstallSnapshot transfer of `m`. */
export function snapshotFrames(clusterId: string, m: SnapshotMessage, chunkBytes = 64 * 1024): unknown[] {
  return snapshotChunks(clusterId, m, chunkBytes);
}

/** The chunk message serialized for InstallSnapshot, as bytes (sent on Send: the wrong kind). */
export function snapshotChunkBytes(chunk: unknown): Buffer {
  const m = methods["InstallSnapshot"];
  if (!m) throw new Error("no RaftPeer.InstallSnapshot");
  return (m.requestSerialize as (x: unknown) => Buffer)(chunk);
}
