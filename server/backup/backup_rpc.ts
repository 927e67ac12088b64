// tenure.v1.Cluster/Backup: a consistent copy of the state machine, streamed by the leader.
//
// Admin only (authenticated first, audited like the membership calls). The leader confirms its
// leadership with a ReadIndex (node.read), and the image is taken inside that read, so it holds
// every write that committed before the call arrived (the machine has applied up to the read
// index, config entries aside). A follower or a deposed leader answers NOT_LEADER with the
// leader's address, as every other leader-only call (status_map.ts); the backup client follows it.
//
// Stream: one header (format version, cluster id, applied index, term, token epoch, highest
// token and lease id, image length, members), the image in chunks, a trailer with the SHA-256 of
// the image. Memory: the image snapshot() made is the only full copy; chunks are views into it,
// queued up to the stream's high-water mark (16 messages, still views) and serialized by grpc-js
// one at a time as the transport drains (its flow control). One backup runs per member at a
// time (a second is LIMIT_EXCEEDED), so concurrent admins cannot stack images in memory.

import { createHash } from "node:crypto";
import { once } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { authenticate, callContext, failStream, readOk, requireAdmin, type HandlerContext, type ServiceDeps } from "../api/handler_kit.ts";
import { memberRows } from "../api/member_rows.ts";
import { ApiError } from "../api/status_map.ts";
import { parseEmpty } from "../api/validate.ts";
import { CLIENT_RESPONSE_FRAME_FACTOR, SNAPSHOT_CHUNK_BYTES_DEFAULT, SNAPSHOT_CHUNK_OVERHEAD_BYTES } from "../limits.ts";
import { BACKUP_FORMAT_VERSION } from "./backup_format.ts";

const RPC = "Cluster.Backup";
const BACKUPS_IN_FLIGHT_MAX = 1;

export interface BackupRpcOptions {
  readonly clusterId: string;
  /** Image bytes per image_chunk message (backupChunkBytes). */
  readonly chunkBytes: number;
}

/** The snapshot chunk size, or less when the client API's response frame is smaller. */
export function backupChunkBytes(clientMessageBytesMax: number): number {
  const frame = CLIENT_RESPONSE_FRAME_FACTOR * clientMessageBytesMax;
  return Math.min(SNAPSHOT_CHUNK_BYTES_DEFAULT, frame - SNAPSHOT_CHUNK_OVERHEAD_BYTES);
}

interface Taken {
  readonly image: Uint8Array;
  readonly appliedIndex: number;
  readonly tokens: { readonly lastToken: number; readonly lastLeaseId: number; readonly epoch: number };
  readonly term: number;
  readonly leaderId: string;
  /** tenure.v1.Member, as Cluster.Members answers. */
  readonly members: readonly object[];
}

export function backupHandler(deps: ServiceDeps, options: BackupRpcOptions): grpc.handleServerStreamingCall<unknown, object> {
  let inFlight = 0;
  return (call) => {
    let counted = false;
    const run = async (): Promise<void> => {
      const ctx: HandlerContext = { ...callContext(RPC, call).context, principal: authenticate(deps, call) };
      parseEmpty(call.request, deps.config.limits);
      const record = { identity: ctx.principal.identity, rpc: RPC, target: "cluster state", owner: null };
      try {
        requireAdmin(ctx);
      } catch (error) {
        deps.audit?.({ ...record, outcome: "denied" });
        throw error;
      }
      if (inFlight >= BACKUPS_IN_FLIGHT_MAX) {
        throw new ApiError("LIMIT_EXCEEDED", `a backup is already running on this member (at most ${BACKUPS_IN_FLIGHT_MAX}); retry later`);
      }
      inFlight += 1;
      counted = true;
      try {
        const taken = await takeImage(deps);
        await stream(call, ctx.signal, options, taken);
        deps.audit?.({ ...record, outcome: "ok" });
      } catch (error) {
        deps.audit?.({ ...record, outcome: "failed" });
        throw error;
      }
    };
    run().then(
      () => {
        if (counted) inFlight -= 1;
      },
      (error: unknown) => {
        if (counted) inFlight -= 1;
        failStream(call, RPC, error);
      },
    );
  };
}

async function takeImage(deps: ServiceDeps): Promise<Taken> {
  const node = deps.node;
  const { value } = await readOk(deps, (m) => {
    // Inside the confirmed read: the term and members are the leader's at this moment.
    const s = node.status();
    const members = memberRows(node);
    return { image: m.snapshot(), appliedIndex: m.appliedIndex(), tokens: m.tokens(), term: s.term, leaderId: s.id, members };
  });
  return value;
}

async function stream(
  call: grpc.ServerWritableStream<unknown, object>,
  signal: AbortSignal,
  options: BackupRpcOptions,
  t: Taken,
): Promise<void> {
  const header = {
    formatVersion: BACKUP_FORMAT_VERSION,
    clusterId: options.clusterId,
    appliedIndex: t.appliedIndex,
    term: t.term,
    tokenEpoch: t.tokens.epoch,
    lastToken: t.tokens.lastToken,
    lastLeaseId: t.tokens.lastLeaseId,
    imageBytes: t.image.length,
    members: t.members,
    takenAtMs: Date.now(),
    leaderId: t.leaderId,
  };
  await write(call, signal, { header });
  const hash = createHash("sha256");
  for (let offset = 0; offset < t.image.length; offset += options.chunkBytes) {
    const view = t.image.subarray(offset, Math.min(offset + options.chunkBytes, t.image.length));
    hash.update(view);
    await write(call, signal, { imageChunk: Buffer.from(view.buffer, view.byteOffset, view.byteLength) });
  }
  await write(call, signal, { trailer: { imageSha256: hash.digest() } });
  call.end();
}

/** Writes one message; past the stream's high-water mark, waits for it to drain. */
async function write(call: grpc.ServerWritableStream<unknown, object>, signal: AbortSignal, message: object): Promise<void> {
  if (signal.aborted) throw new ApiError("CANCELLED", `${RPC} was cancelled`);
  if (call.write(message)) return;
  await Promise.race([once(call, "drain"), once(signal, "abort")]);
  if (signal.aborted) throw new ApiError("CANCELLED", `${RPC} was cancelled`);
}
