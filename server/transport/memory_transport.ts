// In-process twin of GrpcPeerTransport for tests (hashicorp/raft's inmem_transport.go).
//
// Same contract: send() never blocks, delivery is asynchronous and at most once, a bounded queue
// per destination drops (and counts) when full. Every message goes through peer_codec's
// encode/decode, so tests exercise the production validation and receivers never share a byte
// array with the sender. Links can be cut one way (cut(a, b) drops a->b only) and healed.
// Sizes as on gRPC: a message whose estimate exceeds the frame, or a snapshot above
// snapshotBytesMax, is dropped, counted and logged (rate-limited); a snapshot is split into chunks
// and reassembled by the receiver with the same checks (snapshot_chunks.ts), then delivered apart
// from the other messages of its turn, as its own stream would be.
//
// Not for the deterministic simulator: it uses setImmediate, i.e. real event-loop order.

import { performance } from "node:perf_hooks";
import type { Message } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import { fatal, isFatal } from "../fatal.ts";
import { decodeMessage, encodeMessage, estimateMessageBytes } from "./peer_codec.ts";
import type { PeerAddress, PeerTransport, PeerTransportStats } from "./peer_transport.ts";
import { PEER_MESSAGE_BYTES_MAX_DEFAULT, SNAPSHOT_BYTES_MAX_DEFAULT, SNAPSHOT_CHUNK_BYTES_DEFAULT, peerBatchBytesMax } from "../limits.ts";
import { LogLimiter } from "./log_limiter.ts";
import { checkPeerMessage, type MessageCheckOptions } from "./peer_message_checks.ts";
import { reassemble, snapshotChunks, type WireSnapshotChunk } from "./snapshot_chunks.ts";

/** The cluster id written into snapshot headers on this network (nothing else checks one). */
const MEMORY_CLUSTER_ID = "memory";

export interface MemoryNetworkOptions {
  /** Per-destination queue bound of each transport (default 4096). */
  readonly queueMessagesMax?: number;
  /** The frame limit, as GrpcPeerTransportOptions.messageBytesMax (default 4 MiB). */
  readonly messageBytesMax?: number;
  /** As GrpcPeerTransportOptions (defaults 256 MiB and 1 MiB). */
  readonly snapshotBytesMax?: number;
  readonly snapshotChunkBytes?: number;
  /** Where a throwing message handler and rejected messages are reported; default stderr. */
  readonly log?: (fields: Readonly<Record<string, unknown>>) => void;
}

export class MemoryNetwork {
  private readonly transports = new Map<NodeId, MemoryTransport>();
  private readonly cuts = new Set<string>();
  private dropCount = 0;
  readonly queueMessagesMax: number;
  readonly log: (fields: Readonly<Record<string, unknown>>) => void;
  readonly batchBytesMax: number;
  readonly snapshotBytesMax: number;
  readonly snapshotChunkBytes: number;
  /** Size drops and snapshot refusals: at most one line per 10 s per kind, as on gRPC. */
  readonly limiter: LogLimiter;

  constructor(options: MemoryNetworkOptions = {}) {
    this.queueMessagesMax = options.queueMessagesMax ?? 4096;
    this.log = options.log ?? ((fields) => process.stderr.write(`${JSON.stringify({ component: "memory_transport", ...fields })}\n`));
    if (!Number.isSafeInteger(this.queueMessagesMax) || this.queueMessagesMax < 1) {
      throw new RangeError(`queueMessagesMax must be a positive integer, got ${this.queueMessagesMax}`);
    }
    this.batchBytesMax = peerBatchBytesMax(options.messageBytesMax ?? PEER_MESSAGE_BYTES_MAX_DEFAULT, MEMORY_CLUSTER_ID.length);
    this.snapshotBytesMax = options.snapshotBytesMax ?? SNAPSHOT_BYTES_MAX_DEFAULT;
    this.snapshotChunkBytes = options.snapshotChunkBytes ?? SNAPSHOT_CHUNK_BYTES_DEFAULT;
    for (const [name, v] of [
      ["messageBytesMax", this.batchBytesMax],
      ["snapshotBytesMax", this.snapshotBytesMax],
      ["snapshotChunkBytes", this.snapshotChunkBytes],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} is too small or not an integer`);
    }
    this.limiter = new LogLimiter(this.log);
  }

  /**
   * Creates and registers the transport of `selfId`. Ids are unique while open. `checks` are the
   * inbound checks of peer_message_checks.ts, as GrpcPeerTransport's checkSnapshotImage and
   * receiverState options pass them.
   */
  transport(selfId: NodeId, checks: MessageCheckOptions = {}): MemoryTransport {
    if (this.transports.has(selfId)) throw new Error(`transport ${selfId} already exists on this network`);
    const t = new MemoryTransport(this, selfId, checks);
    this.transports.set(selfId, t);
    return t;
  }

  /** Drops every message from `from` to `to` until healed (one way only). */
  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(linkKey(from, to));
  }

  /** Heals one link, or every link when called without arguments. */
  heal(from?: NodeId, to?: NodeId): void {
    if (from === undefined || to === undefined) this.cuts.clear();
    else this.cuts.delete(linkKey(from, to));
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.has(linkKey(from, to));
  }

  /** Messages lost on the network (cut links, closed receivers), not counting full queues. */
  drops(): number {
    return this.dropCount;
  }

  /** @internal */
  countDrop(): void {
    this.dropCount += 1;
  }

  /** @internal */
  lookup(id: NodeId): MemoryTransport | undefined {
    return this.transports.get(id);
  }

  /** @internal */
  unregister(t: MemoryTransport): void {
    if (this.transports.get(t.selfId) === t) this.transports.delete(t.selfId);
  }
}

/** A sender that keeps sending garbage must not flood the log. */
const REJECT_LOG_INTERVAL_MS = 1_000;

function linkKey(from: NodeId, to: NodeId): string {
  return JSON.stringify([from, to]);
}

export class MemoryTransport implements PeerTransport {
  private handler: ((message: Message) => void) | null = null;
  /** null: every transport on the network is reachable; otherwise only these ids. */
  private peers: Set<NodeId> | null = null;
  private readonly queues = new Map<NodeId, Message[]>();
  private flushScheduled = false;
  private closed = false;
  private sent = 0;
  private dropped = 0;
  private received = 0;
  private rejected = 0;
  private rejectLoggedAtMs = -Infinity;
  private rejectsUnlogged = 0;

  /** Use MemoryNetwork.transport(). */
  constructor(
    private readonly network: MemoryNetwork,
    readonly selfId: NodeId,
    private readonly checks: MessageCheckOptions = {},
  ) {}

  send(messages: readonly Message[]): void {
    for (const m of messages) {
      const queue = this.queueFor(m.to);
      if (this.closed || queue === undefined || queue.length >= this.network.queueMessagesMax) {
        this.dropped += 1;
        continue;
      }
      if (this.tooLarge(m)) continue;
      queue.push(m);
    }
    if (!this.flushScheduled && !this.closed) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  setPeers(peers: readonly PeerAddress[]): void {
    this.peers = new Set(peers.map((p) => p.id));
    for (const id of [...this.queues.keys()]) {
      if (this.peers.has(id)) continue;
      this.dropped += this.queues.get(id)?.length ?? 0;
      this.queues.delete(id);
    }
  }

  stats(): PeerTransportStats {
    return { sentMessages: this.sent, droppedMessages: this.dropped, receivedMessages: this.received, rejectedBatches: this.rejected };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const q of this.queues.values()) this.dropped += q.length;
    this.queues.clear();
    this.network.unregister(this);
  }

  private queueFor(to: NodeId): Message[] | undefined {
    if (to === this.selfId) return undefined;
    // Before setPeers, every transport registered on the network counts as a known peer.
    if (this.peers === null ? this.network.lookup(to) === undefined : !this.peers.has(to)) return undefined;
    let q = this.queues.get(to);
    if (q === undefined) {
      q = [];
      this.queues.set(to, q);
    }
    return q;
  }

  /** The size checks of GrpcPeerTransport.send: true (dropped, counted, logged) when too large. */
  private tooLarge(m: Message): boolean {
    const snapshot = m.kind === "snapshot" ? m : null;
    const header = snapshot === null ? m : { ...snapshot, snapshot: { metadata: snapshot.snapshot.metadata, data: new Uint8Array(0) } };
    const bytes = estimateMessageBytes(header);
    const net = this.network;
    let why: { limit: string; limitBytes: number; bytes: number } | null = null;
    if (bytes > net.batchBytesMax) why = { limit: "messageBytesMax", limitBytes: net.batchBytesMax, bytes };
    else if (snapshot !== null && snapshot.snapshot.data.byteLength > net.snapshotBytesMax) {
      why = { limit: "snapshotBytesMax", limitBytes: net.snapshotBytesMax, bytes: snapshot.snapshot.data.byteLength };
    }
    if (why === null) return false;
    this.dropped += 1;
    net.limiter.maybeLog(`message_too_large:${this.selfId}:${m.to}:${m.kind}`, {
      event: "message_dropped_too_large",
      node: this.selfId,
      peer: m.to,
      kind: m.kind,
      ...why,
    });
    return true;
  }

  /** One "frame" per destination per turn of the event loop, as the gRPC writer batches. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    for (const [to, queue] of this.queues) {
      if (queue.length === 0) continue;
      const batch = queue.splice(0, queue.length);
      this.sent += batch.length;
      const dest = this.network.lookup(to);
      if (dest === undefined || this.network.isCut(this.selfId, to)) {
        for (let i = 0; i < batch.length; i++) this.network.countDrop();
        continue;
      }
      const others = batch.filter((m) => m.kind !== "snapshot");
      if (others.length > 0) dest.deliver(others.map(encodeMessage));
      for (const m of batch) {
        if (m.kind === "snapshot") dest.deliverSnapshot(snapshotChunks(MEMORY_CLUSTER_ID, m, this.network.snapshotChunkBytes));
      }
    }
  }

  /**
   * @internal Inbound InstallSnapshot: the chunks of one transfer, reassembled with the checks of
   * the gRPC receiver, then delivered as one message like any other.
   */
  deliverSnapshot(chunks: readonly WireSnapshotChunk[]): void {
    if (this.closed) return;
    const r = reassemble(chunks, { clusterId: MEMORY_CLUSTER_ID, selfId: this.selfId, snapshotBytesMax: this.network.snapshotBytesMax });
    if (!r.ok) {
      this.rejected += 1;
      this.network.limiter.maybeLog(`snapshot_refused:${this.selfId}:${r.code}`, {
        event: "snapshot_refused",
        node: this.selfId,
        code: r.code,
        reason: r.reason,
      });
      return;
    }
    this.deliver([encodeMessage(r.message)]);
  }

  /** At most one line per REJECT_LOG_INTERVAL_MS, with the count of those left out. */
  private logRejected(reason: string): void {
    const nowMs = performance.now();
    if (nowMs - this.rejectLoggedAtMs < REJECT_LOG_INTERVAL_MS) {
      this.rejectsUnlogged += 1;
      return;
    }
    this.network.log({ event: "inbound_batch_rejected", node: this.selfId, reason, rejectedSinceLastLine: this.rejectsUnlogged });
    this.rejectLoggedAtMs = nowMs;
    this.rejectsUnlogged = 0;
  }

  /** @internal Inbound side: validates like the gRPC server, then hands over one by one. */
  deliver(wire: readonly unknown[]): void {
    if (this.closed) return;
    const decoded: Message[] = [];
    for (const w of wire) {
      const r = decodeMessage(w);
      const problem = !r.ok ? r.reason : r.value.to !== this.selfId ? `addressed to ${r.value.to}` : checkPeerMessage(r.value, this.checks);
      if (!r.ok || problem !== null) {
        // The sender's fault, not an invariant of this process: dropped, counted and logged.
        this.rejected += 1;
        this.logRejected(problem ?? "refused");
        return;
      }
      decoded.push(r.value);
    }
    for (const m of decoded) {
      this.received += 1;
      if (this.handler === null) continue;
      try {
        this.handler(m);
      } catch (err) {
        // As in GrpcPeerTransport: a broken invariant stops the process, other throws are logged.
        if (isFatal(err)) fatal(err, `peer message from ${m.from} (${m.kind})`);
        else
          this.network.log({
            event: "message_handler_threw",
            node: this.selfId,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          });
      }
    }
  }
}
