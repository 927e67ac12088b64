// The gRPC side of chunked InstallSnapshot (RaftPeer.InstallSnapshot, proto/tenure/v1/peer.proto):
// SnapshotSender streams snapshots to one peer, SnapshotReceiver reassembles them from every peer.
// The split and the checks are in snapshot_chunks.ts.
//
// Sender, per peer: at most one transfer in flight and at most one waiting for the link to open.
// Raft asks for the same snapshot at every heartbeat until the follower answers, so a request for
// the snapshot already in flight (or sent completely less than resendIntervalMs ago) is coalesced,
// not sent again; a different snapshot (newer index or term) replaces the one in flight. Chunks are
// written as gRPC drains them, so the sender buffers a bounded number of chunks, never the image
// twice. A transfer has a deadline proportional to its size (server/limits.ts).
//
// Receiver: one transfer per sending peer (a newer one aborts an unfinished one), at most
// SNAPSHOT_INBOUND_TRANSFERS_MAX at once in all, a chunk timeout, and every refusal counted and
// logged (rate-limited). A complete snapshot goes to the node through the transport's usual
// inbound path, exactly as an InstallSnapshot message on Send would.

import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import type { Message, SnapshotMessage } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import { SNAPSHOT_INBOUND_TRANSFERS_MAX, snapshotSendTimeoutMs } from "../limits.ts";
import type { LogLimiter, TransportLog } from "./log_limiter.ts";
import { UndecodableFrame, type Refusal, type StreamSender } from "./peer_inbound.ts";
import {
  SnapshotAssembly,
  snapshotDataChunk,
  snapshotHeaderChunk,
  type ChunkRefusalCode,
  type WireSnapshotChunk,
} from "./snapshot_chunks.ts";

export type InstallMethod = grpc.MethodDefinition<WireSnapshotChunk, unknown>;

export interface SnapshotCounters {
  snapshotsSent: number;
  snapshotsCoalesced: number;
  snapshotsReceived: number;
  snapshotsRefused: number;
  droppedMessages: number;
  rejectedBatches: number;
}

export interface SnapshotSenderContext {
  readonly clusterId: string;
  readonly method: InstallMethod;
  readonly chunkBytes: number;
  readonly resendIntervalMs: number;
  readonly stats: SnapshotCounters;
  readonly limiter: LogLimiter;
  readonly log: TransportLog;
}

/** Same snapshot, same sender term: a request for it again is a duplicate. */
function keyOf(m: SnapshotMessage): string {
  return `${m.term}/${m.snapshot.metadata.term}/${m.snapshot.metadata.index}`;
}

interface Transfer {
  readonly key: string;
  readonly message: SnapshotMessage;
  readonly call: grpc.ClientWritableStream<WireSnapshotChunk>;
  readonly startedAtMs: number;
  sentBytes: number;
  chunks: number;
}

/** Outbound snapshots towards one peer. */
export class SnapshotSender {
  private current: Transfer | null = null;
  private waiting: SnapshotMessage | null = null;
  private lastComplete: { readonly key: string; readonly atMs: number } | null = null;

  constructor(
    private readonly peer: NodeId,
    private readonly ctx: SnapshotSenderContext,
  ) {}

  /** True when a snapshot waits for the link to open (the link must connect for it). */
  hasWaiting(): boolean {
    return this.waiting !== null;
  }

  /** A snapshot for this peer; `client` is the open connection, or null while there is none. */
  offer(m: SnapshotMessage, client: grpc.Client | null): void {
    const key = keyOf(m);
    const recent =
      this.lastComplete !== null && this.lastComplete.key === key && performance.now() - this.lastComplete.atMs < this.ctx.resendIntervalMs;
    if (this.current?.key === key || (this.waiting !== null && keyOf(this.waiting) === key) || recent) {
      this.ctx.stats.snapshotsCoalesced += 1;
      return;
    }
    this.cancel();
    if (this.waiting !== null) this.ctx.stats.droppedMessages += 1;
    this.waiting = null;
    if (client === null) this.waiting = m;
    else this.start(m, client);
  }

  /** The link is open: start the snapshot that waited for it. */
  onOpen(client: grpc.Client): void {
    const m = this.waiting;
    this.waiting = null;
    if (m !== null) this.start(m, client);
  }

  /** The link broke or closed: whatever is in flight or waiting is stale (Raft asks again). */
  drop(): void {
    if (this.current !== null) this.ctx.stats.droppedMessages += 1;
    if (this.waiting !== null) this.ctx.stats.droppedMessages += 1;
    this.cancel();
    this.waiting = null;
  }

  private cancel(): void {
    const t = this.current;
    this.current = null;
    t?.call.cancel();
  }

  private start(m: SnapshotMessage, client: grpc.Client): void {
    const { path, requestSerialize, responseDeserialize } = this.ctx.method;
    const bytes = m.snapshot.data.byteLength;
    const deadline = Date.now() + snapshotSendTimeoutMs(bytes);
    let transfer: Transfer | null = null;
    const call = client.makeClientStreamRequest<WireSnapshotChunk, unknown>(
      path,
      requestSerialize,
      responseDeserialize,
      { deadline },
      (err) => {
        if (transfer !== null) this.onEnd(transfer, err);
      },
    );
    call.on("error", () => {}); // errors arrive through the callback above; never crash on one
    transfer = { key: keyOf(m), message: m, call, startedAtMs: performance.now(), sentBytes: 0, chunks: 0 };
    this.current = transfer;
    call.write(snapshotHeaderChunk(this.ctx.clusterId, m));
    this.pump(transfer);
  }

  /** Writes chunks until the image is out (then ends the stream) or gRPC pushes back. */
  private pump(t: Transfer): void {
    const data = t.message.snapshot.data;
    while (this.current === t && t.sentBytes < data.byteLength) {
      const { chunk, next } = snapshotDataChunk(data, t.sentBytes, this.ctx.chunkBytes);
      t.sentBytes = next;
      t.chunks += 1;
      if (!t.call.write(chunk)) {
        t.call.once("drain", () => this.pump(t));
        return;
      }
    }
    if (this.current === t) t.call.end();
  }

  private onEnd(t: Transfer, err: grpc.ServiceError | null): void {
    if (this.current !== t) return; // replaced or dropped: cancelled on purpose
    this.current = null;
    const m = t.message;
    const fields = { peer: this.peer, term: m.term, index: m.snapshot.metadata.index, bytes: m.snapshot.data.byteLength, chunks: t.chunks };
    const durationMs = Math.round(performance.now() - t.startedAtMs);
    if (err !== null) {
      const reason = `${grpc.status[err.code] ?? err.code}: ${err.details}`;
      this.ctx.limiter.maybeLog(`snapshot_send_failed:${this.peer}`, {
        event: "snapshot_send_failed",
        ...fields,
        sentBytes: t.sentBytes,
        durationMs,
        reason,
      });
      return;
    }
    this.ctx.stats.snapshotsSent += 1;
    this.lastComplete = { key: t.key, atMs: performance.now() };
    this.ctx.log({ event: "snapshot_sent", ...fields, durationMs });
  }
}

const STATUS_OF: Readonly<Record<ChunkRefusalCode, grpc.status>> = {
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  DATA_LOSS: grpc.status.DATA_LOSS,
};

export interface SnapshotReceiverContext {
  readonly clusterId: string;
  readonly selfId: NodeId;
  readonly snapshotBytesMax: number;
  readonly chunkTimeoutMs: number;
  readonly stats: SnapshotCounters;
  readonly limiter: LogLimiter;
  readonly log: TransportLog;
  readonly closing: () => boolean;
  /** Who the stream is from (its certificate's member), or why it is refused before any chunk. */
  readonly sender: (call: grpc.ServerReadableStream<unknown, unknown>) => StreamSender | Refusal;
  /** The header's sender id must be the stream's member (null: allowed). */
  readonly checkSender: (call: grpc.ServerReadableStream<unknown, unknown>, sender: StreamSender, from: NodeId) => Refusal | null;
  /** Hands the whole snapshot to the node by the usual inbound path; a Refusal if it refused it. */
  readonly deliver: (call: grpc.ServerReadableStream<unknown, unknown>, sender: StreamSender, message: Message) => Refusal | null;
}

/** Inbound InstallSnapshot streams, at most one per sending peer. */
export class SnapshotReceiver {
  /** Abort functions of the unfinished transfer of each sender. */
  private readonly inflight = new Map<NodeId, (refusal: Refusal) => void>();

  constructor(private readonly ctx: SnapshotReceiverContext) {}

  inboundCount(): number {
    return this.inflight.size;
  }

  /** Ends every unfinished transfer (the transport is closing). */
  closeAll(): void {
    for (const abort of [...this.inflight.values()]) abort({ code: grpc.status.UNAVAILABLE, details: "transport closing" });
  }

  handle(call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>): void {
    let assembly: SnapshotAssembly | null = null;
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const startedAtMs = performance.now();
    let chunks = 0;
    /** answered: false when the sender cancelled; counted: false when deliver() counted it. */
    const finish = (refusal: Refusal | null, how = { answered: true, counted: false }): void => {
      if (done) return;
      done = true;
      if (timer !== null) clearTimeout(timer);
      const from = assembly?.from;
      if (from !== undefined && this.inflight.get(from) === abort) this.inflight.delete(from);
      const received = assembly?.receivedBytes ?? 0;
      assembly = null; // frees the partial image
      if (!how.answered) return;
      if (refusal !== null && !how.counted) this.refused(call, from, refusal);
      if (refusal === null) callback(null, { received_bytes: String(received) });
      else callback(refusal);
    };
    const abort = (refusal: Refusal): void => finish(refusal);
    const arm = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(
        () => finish({ code: grpc.status.DEADLINE_EXCEEDED, details: `no snapshot chunk for ${this.ctx.chunkTimeoutMs} ms` }),
        this.ctx.chunkTimeoutMs,
      );
    };
    // Identity first, before any chunk is read or anything allocated.
    const sender = this.ctx.sender(call);
    if ("code" in sender) {
      finish(sender);
      return;
    }
    call.on("data", (raw: unknown) => {
      if (done) return;
      if (this.ctx.closing()) return finish({ code: grpc.status.UNAVAILABLE, details: "transport closing" });
      if (raw instanceof UndecodableFrame) return finish({ code: raw.code, details: raw.reason });
      if (assembly === null) {
        const r = this.begin(call, sender, raw, abort);
        if ("code" in r) return finish(r);
        assembly = r;
      } else {
        const r = assembly.add(raw);
        if (!r.ok) return finish({ code: STATUS_OF[r.code], details: r.reason });
        chunks += 1;
      }
      arm();
    });
    call.on("end", () => {
      if (done) return;
      if (assembly === null) return finish({ code: grpc.status.INVALID_ARGUMENT, details: "snapshot stream ended without a header" });
      const r = assembly.finish();
      if (!r.ok) return finish({ code: STATUS_OF[r.code], details: r.reason });
      const refusal = this.ctx.deliver(call, sender, r.message);
      if (refusal !== null) return finish(refusal, { answered: true, counted: true });
      this.ctx.stats.snapshotsReceived += 1;
      const durationMs = Math.round(performance.now() - startedAtMs);
      this.ctx.log({
        event: "snapshot_received",
        peer: assembly.from,
        term: r.message.term,
        index: assembly.metadata.index,
        bytes: assembly.totalBytes,
        chunks,
        durationMs,
      });
      finish(null);
    });
    // Cancelled: the sender gave up, broke or replaced the transfer; nobody is left to answer.
    call.on("error", () => finish(null, { answered: false, counted: false }));
  }

  /** Checks the header chunk and registers the transfer, replacing its sender's unfinished one. */
  private begin(
    call: grpc.ServerReadableStream<unknown, unknown>,
    sender: StreamSender,
    raw: unknown,
    abort: (refusal: Refusal) => void,
  ): SnapshotAssembly | Refusal {
    // The claimed sender before SnapshotAssembly.begin, which allocates the declared total.
    const header = typeof raw === "object" && raw !== null ? (raw as { header?: unknown }).header : undefined;
    const claimed = typeof header === "object" && header !== null ? (header as { from?: unknown }).from : undefined;
    const identity = this.ctx.checkSender(call, sender, typeof claimed === "string" ? claimed : "");
    if (identity !== null) return identity;
    const expect = { clusterId: this.ctx.clusterId, selfId: this.ctx.selfId, snapshotBytesMax: this.ctx.snapshotBytesMax };
    const r = SnapshotAssembly.begin(raw, expect);
    if (!r.ok) return { code: STATUS_OF[r.code], details: r.reason };
    const from = r.assembly.from;
    if (!this.inflight.has(from) && this.inflight.size >= SNAPSHOT_INBOUND_TRANSFERS_MAX) {
      return { code: grpc.status.RESOURCE_EXHAUSTED, details: `${this.inflight.size} snapshot transfers from other peers are in progress` };
    }
    this.inflight.get(from)?.({ code: grpc.status.ABORTED, details: "replaced by a newer snapshot transfer from the same peer" });
    this.inflight.set(from, abort);
    return r.assembly;
  }

  private refused(call: grpc.ServerReadableStream<unknown, unknown>, from: NodeId | undefined, refusal: Refusal): void {
    this.ctx.stats.snapshotsRefused += 1;
    this.ctx.stats.rejectedBatches += 1;
    const code = grpc.status[refusal.code] ?? refusal.code;
    const key = `snapshot_refused:${from ?? call.getPeer()}:${code}`;
    this.ctx.limiter.maybeLog(key, { event: "snapshot_refused", peer: from ?? call.getPeer(), code, reason: refusal.details });
  }
}
