// PeerTransport over gRPC: one long-lived client stream per peer carrying batches of Raft
// messages (proto/tenure/v1/peer.proto), and a RaftPeer server for the inbound side.
//
// Outbound, per peer (PeerLink): a queue bounded in messages and in bytes that drops the newest
// message, counts and logs (rate-limited) when full (TigerBeetle: never buffer without bound for a
// peer that is slow or down), a writer that drains it into
// frames of many messages, lazy connect on the first message, and reconnect with capped
// exponential backoff and full jitter. A failed connect or a broken stream drops what is queued:
// those messages are already stale, and Raft resends whatever still matters.
// Inbound: every frame is checked (cluster id, addressee, full decode) before any of it reaches
// the node; a bad frame ends the stream with a status and is counted.
// Snapshots travel apart, on their own InstallSnapshot stream of chunks (snapshot_stream.ts), so
// a state larger than a frame still reaches a lagging follower and heartbeats never wait behind
// it. Whatever is dropped for its size is counted and logged (rate-limited), never silently.

import { performance } from "node:perf_hooks";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_ROOT } from "../../proto/tenure_protos.ts";
import type { Message, SnapshotMessage } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import { fatal, isFatal } from "../fatal.ts";
import { PEER_PROTO_LOADER_OPTIONS, decodeBatch, encodeBatch, estimateMessageBytes } from "./peer_codec.ts";
import type { WirePeerBatch } from "./peer_codec.ts";
import type { PeerAddress, PeerTransport, PeerTransportStats } from "./peer_transport.ts";
import {
  PEER_FRAME_OVERHEAD_BYTES,
  PEER_MESSAGE_BYTES_MAX_DEFAULT,
  SNAPSHOT_BYTES_MAX_DEFAULT,
  SNAPSHOT_CHUNK_BYTES_DEFAULT,
  SNAPSHOT_CHUNK_TIMEOUT_MS,
  SNAPSHOT_RESEND_INTERVAL_MS,
  peerBatchBytesMax,
} from "../limits.ts";
import { LogLimiter } from "./log_limiter.ts";
import { PeerLink, type LinkContext } from "./peer_link.ts";
import { InboundGuard, type Refusal, type StreamSender } from "./peer_inbound.ts";
import { receiverConflict, type ReceiverView, type SnapshotImageCheck } from "./peer_message_checks.ts";
import { TermGuard, type TermGuardView } from "./term_guard.ts";
import type { PeerIncarnations } from "./peer_incarnations.ts";
import { SnapshotReceiver, type InstallMethod } from "./snapshot_stream.ts";

/** One structured log record (an `event` name plus fields), as server/logger.ts takes it. */
export type TransportLog = (fields: Readonly<Record<string, unknown>>) => void;

export interface GrpcPeerTransportOptions {
  readonly selfId: NodeId;
  readonly clusterId: string;
  /** host:port to listen on; port 0 picks a free port (see boundAddress()). */
  readonly listenAddress: string;
  readonly peers: readonly PeerAddress[];
  /** Per-peer outbound queue bound; beyond it messages are dropped, counted and logged. Default 4096. */
  readonly queueMessagesMax?: number;
  /**
   * The same queue's bound in estimated bytes (at least one frame), dropped the same way. Default
   * QUEUE_BYTES_MAX_DEFAULT (64 MiB), or one frame if that is larger; without it 4096 messages of
   * up to a frame each could hold 16 GiB for one peer.
   */
  readonly queueBytesMax?: number;
  /** Messages per frame. Default 256. */
  readonly batchMessagesMax?: number;
  /** gRPC frame limit both ways; a single larger message is dropped and logged. Default 4 MiB. */
  readonly messageBytesMax?: number;
  /** Data bytes per InstallSnapshot chunk (at most the frame). Default 1 MiB. */
  readonly snapshotChunkBytes?: number;
  /** A larger snapshot is neither sent nor accepted (dropped and logged). Default 256 MiB. */
  readonly snapshotBytesMax?: number;
  /** An inbound transfer with no chunk for this long is dropped. Default 10000. */
  readonly snapshotChunkTimeoutMs?: number;
  /** The same snapshot is not sent again to a peer this soon after a complete transfer. Default 5000. */
  readonly snapshotResendIntervalMs?: number;
  /** Lines about drops and refusals go out at most once per interval per kind. Default 10000. */
  readonly dropLogIntervalMs?: number;
  /**
   * Mutual TLS for the listener and every dial; absent = plaintext (--insecure). The server side
   * must require a client certificate of the cluster's CA. Each dial sets
   * grpc.ssl_target_name_override to the peer's member id, so the peer must present a
   * certificate for that id (DNS:<id> SAN): we never send to an impostor listening on its address.
   */
  readonly credentials?: { readonly server: grpc.ServerCredentials; readonly channel: grpc.ChannelCredentials };
  /**
   * Every inbound stream must come with a certificate naming exactly one member
   * (urn:tenure:member:<id>, peer_identity.ts), every frame on it must be sent from that id, and
   * the id must pass isAdmissiblePeer. Anything else is refused at the stream
   * (UNAUTHENTICATED / PERMISSION_DENIED), counted in identityRefusals and logged. Needs
   * credentials. Default false (plaintext clusters, tests of other things).
   */
  readonly requirePeerIdentity?: boolean;
  /**
   * Whether `memberId` may talk to this member now: in its configuration, or joining through a
   * membership change in progress (main.ts asks the node). Checked for every inbound stream and
   * frame when requirePeerIdentity is on. Default: every id.
   */
  readonly isAdmissiblePeer?: (memberId: NodeId) => boolean;
  /**
   * Decodes and checks a snapshot image before the node sees (and persists) it: null if it may be
   * restored, else why not. tenured checks it with the state machine's own decoder; the witness
   * keeps images it never reads. Default: every image passes.
   */
  readonly checkSnapshotImage?: SnapshotImageCheck;
  /**
   * The receiving node's term and last index, read just before a frame goes to it, for the
   * checks that depend on them (a heartbeat may not commit beyond our log). Default: skipped.
   */
  readonly receiverState?: () => ReceiverState;
  /**
   * With receiverState: while this member is in a leader lease (it heard its leader, or a
   * majority as leader, in its own term within this many ms: the election timeout), higher-term
   * messages other than votes are ignored and counted in termBumpsIgnored (term_guard.ts), so a
   * member that is not the leader cannot depose a healthy one. Default: off.
   */
  readonly termGuardLeaseMs?: number;
  /**
   * This member's incarnation and what it remembers of its peers' (peer_incarnations.ts): sent
   * on every stream, checked on every inbound stream and frame (a sender whose incarnation changed
   * under its id is refused, FAILED_PRECONDITION, counted in incarnationRefusals), and members
   * whose incarnation is not known are greeted. Default: none sent, none checked.
   */
  readonly incarnations?: PeerIncarnations;
  /** Reconnect delay is uniform in [0, min(max, min * 2^attempt)). Defaults 50 and 2000. */
  readonly reconnectBackoffMsMin?: number;
  readonly reconnectBackoffMsMax?: number;
  /** How long one connect attempt may take. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** Structured log sink; default one JSON line per event on stderr. */
  readonly log?: TransportLog;
}

/** What the transport reads from its node (NodeStatus has all of it). */
export interface ReceiverState extends ReceiverView, Omit<TermGuardView, "selfId"> {}

export interface GrpcPeerTransportStats extends PeerTransportStats {
  readonly sentBatches: number;
  readonly receivedBatches: number;
  /** Messages (snapshots included) dropped at send() for their size; also in droppedMessages. */
  readonly oversizeDrops: number;
  /** Messages dropped because their peer's queue was full (queueMessagesMax or queueBytesMax); also in droppedMessages. */
  readonly queueFullDrops: number;
  /** Complete InstallSnapshot transfers, out and in. */
  readonly snapshotsSent: number;
  readonly snapshotsReceived: number;
  /** Requests for a snapshot already in flight (or just sent) to that peer: not sent again. */
  readonly snapshotsCoalesced: number;
  /** Inbound transfers refused (also in rejectedBatches). */
  readonly snapshotsRefused: number;
  /** Inbound transfers being reassembled right now (at most one per peer). */
  readonly snapshotsInbound: number;
  /** Inbound streams or frames refused for the sender's identity (requirePeerIdentity); also in rejectedBatches. */
  readonly identityRefusals: number;
  /** Inbound frames that did not deserialize or were above messageBytesMax; also in rejectedBatches. */
  readonly undecodableFrames: number;
  /** Inbound frames refused by peer_message_checks.ts (bounds, config entries, snapshot images); also in rejectedBatches. */
  readonly invalidMessages: number;
  /** Higher-term messages ignored while in a leader lease (termGuardLeaseMs); not in rejectedBatches. */
  readonly termBumpsIgnored: number;
  /** Inbound streams or frames refused for an incarnation (options.incarnations); also in rejectedBatches. */
  readonly incarnationRefusals: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

// Resolved from the protos' own module, not the cwd, so the node can be started from anywhere and
// a bundled build (tools/build.ts puts the .proto files beside the bundle) finds them too.
const PROTO_PATH = join(PROTO_ROOT, "tenure/v1/peer.proto");
const SERVICE_NAME = "tenure.v1.RaftPeer";
function loadMethods(): { service: grpc.ServiceDefinition; send: grpc.MethodDefinition<WirePeerBatch, unknown>; install: InstallMethod } {
  const definition = protoLoader.loadSync(PROTO_PATH, { ...PEER_PROTO_LOADER_OPTIONS });
  const service = definition[SERVICE_NAME];
  const method = (name: string): grpc.MethodDefinition<unknown, unknown> => {
    const m =
      service !== undefined && name in service
        ? (service as Record<string, protoLoader.MethodDefinition<object, object>>)[name]
        : undefined;
    if (m === undefined || !m.requestStream || m.responseStream)
      throw new Error(`${PROTO_PATH}: ${SERVICE_NAME}.${name} must be client-streaming`);
    return m as grpc.MethodDefinition<unknown, unknown>;
  };
  return {
    service: service as grpc.ServiceDefinition,
    send: method("Send") as grpc.MethodDefinition<WirePeerBatch, unknown>,
    install: method("InstallSnapshot") as InstallMethod,
  };
}

/**
 * Raft keeps at most inflightMessagesMax (64) appends of about bytesPerMessageMax (1 MiB) in flight
 * per follower, so a queue of 64 MiB holds that whole window while the stream pushes back; beyond
 * it the peer is not keeping up, and Raft resends what it still needs after the drop.
 */
export const QUEUE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

export class GrpcPeerTransport implements PeerTransport {
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly counters: Mutable<Omit<GrpcPeerTransportStats, "snapshotsInbound">> = {
    sentMessages: 0,
    droppedMessages: 0,
    receivedMessages: 0,
    rejectedBatches: 0,
    sentBatches: 0,
    receivedBatches: 0,
    oversizeDrops: 0,
    queueFullDrops: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    snapshotsCoalesced: 0,
    snapshotsRefused: 0,
    identityRefusals: 0,
    undecodableFrames: 0,
    invalidMessages: 0,
    termBumpsIgnored: 0,
    incarnationRefusals: 0,
  };
  private readonly ctx: LinkContext;
  private readonly snapshotBytesMax: number;
  private readonly receiver: SnapshotReceiver;
  private readonly guard: InboundGuard;
  private readonly termGuard: TermGuard | null;
  private readonly limiter: LogLimiter;
  private handler: ((message: Message) => void) | null = null;
  private closing: Promise<void> | null = null;
  private bound = "";
  private readonly server: grpc.Server;

  private constructor(private readonly options: GrpcPeerTransportOptions) {
    const messageBytesMax = positiveInt(options.messageBytesMax, PEER_MESSAGE_BYTES_MAX_DEFAULT, "messageBytesMax");
    if (messageBytesMax <= 2 * PEER_FRAME_OVERHEAD_BYTES)
      throw new RangeError(`messageBytesMax must exceed ${2 * PEER_FRAME_OVERHEAD_BYTES}`);
    this.snapshotBytesMax = positiveInt(options.snapshotBytesMax, SNAPSHOT_BYTES_MAX_DEFAULT, "snapshotBytesMax");
    const log =
      options.log ??
      ((fields) => {
        process.stderr.write(`${JSON.stringify({ level: "warn", component: "peer_transport", node: options.selfId, ...fields })}\n`);
      });
    const limiter = new LogLimiter(log, positiveInt(options.dropLogIntervalMs, 10_000, "dropLogIntervalMs"));
    this.limiter = limiter;
    if (options.requirePeerIdentity && options.credentials === undefined) throw new RangeError("requirePeerIdentity needs TLS credentials");
    this.guard = new InboundGuard({
      requirePeerIdentity: options.requirePeerIdentity ?? false,
      isAdmissiblePeer: options.isAdmissiblePeer ?? (() => true),
      checks: {
        ...(options.checkSnapshotImage ? { checkSnapshotImage: options.checkSnapshotImage } : {}),
      },
      messageBytesMax,
      counters: this.counters,
      limiter,
      ...(options.incarnations ? { incarnations: options.incarnations } : {}),
    });
    options.incarnations?.onGreet((id) => this.links.get(id)?.greet());
    const receiverState = options.receiverState;
    if (options.termGuardLeaseMs !== undefined && receiverState === undefined) throw new RangeError("termGuardLeaseMs needs receiverState");
    this.termGuard =
      options.termGuardLeaseMs === undefined || receiverState === undefined
        ? null
        : new TermGuard({
            leaseMs: options.termGuardLeaseMs,
            view: () => ({ ...receiverState(), selfId: options.selfId }),
            nowMs: () => performance.now(),
          });
    const { service, send, install } = loadMethods();
    this.ctx = this.linkContext(options, { messageBytesMax, send, install, log, limiter });
    this.receiver = new SnapshotReceiver({
      clusterId: options.clusterId,
      selfId: options.selfId,
      snapshotBytesMax: this.snapshotBytesMax,
      chunkTimeoutMs: positiveInt(options.snapshotChunkTimeoutMs, SNAPSHOT_CHUNK_TIMEOUT_MS, "snapshotChunkTimeoutMs"),
      stats: this.counters,
      limiter,
      log,
      closing: () => this.closing !== null,
      sender: (call) => this.guard.streamSender(call),
      checkSender: (call, sender, from) => this.guard.checkSender(call, sender, from),
      deliver: (call, sender, message) => this.deliverSnapshot(call, sender, message),
    });
    // Twice the frame, so a frame a little too large is counted and refused by InboundGuard.
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": 2 * messageBytesMax,
      "grpc.max_send_message_length": messageBytesMax,
    });
    const guarded: grpc.ServiceDefinition = {
      ...service,
      Send: { ...send, requestDeserialize: this.guard.deserializer(send.requestDeserialize) },
      InstallSnapshot: { ...install, requestDeserialize: this.guard.deserializer(install.requestDeserialize) },
    };
    this.server.addService(guarded, {
      Send: (call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        this.onInboundStream(call, callback),
      InstallSnapshot: (call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        this.receiver.handle(call, callback),
    });
  }

  private linkContext(
    options: GrpcPeerTransportOptions,
    x: { messageBytesMax: number; send: LinkContext["method"]; install: InstallMethod; log: TransportLog; limiter: LogLimiter },
  ): LinkContext {
    const backoffMsMin = positiveInt(options.reconnectBackoffMsMin, 50, "reconnectBackoffMsMin");
    const backoffMsMax = positiveInt(options.reconnectBackoffMsMax, 2000, "reconnectBackoffMsMax");
    if (backoffMsMax < backoffMsMin) throw new RangeError("reconnectBackoffMsMax must be >= reconnectBackoffMsMin");
    const chunkBytes = positiveInt(options.snapshotChunkBytes, SNAPSHOT_CHUNK_BYTES_DEFAULT, "snapshotChunkBytes");
    if (chunkBytes > x.messageBytesMax - PEER_FRAME_OVERHEAD_BYTES)
      throw new RangeError(`snapshotChunkBytes ${chunkBytes} does not fit messageBytesMax ${x.messageBytesMax}`);
    const batchBytesMax = peerBatchBytesMax(x.messageBytesMax, options.clusterId.length);
    // Any message send() accepts (at most one batch) fits an empty queue; so does the default
    // with a peer frame configured above it.
    const queueBytesMax = positiveInt(options.queueBytesMax, Math.max(QUEUE_BYTES_MAX_DEFAULT, batchBytesMax), "queueBytesMax");
    if (queueBytesMax < batchBytesMax) throw new RangeError(`queueBytesMax ${queueBytesMax} is below one batch (${batchBytesMax} bytes)`);
    return {
      selfId: options.selfId,
      clusterId: options.clusterId,
      method: x.send,
      credentials: options.credentials?.channel ?? grpc.credentials.createInsecure(),
      verifyPeerName: options.credentials !== undefined,
      channelOptions: {
        "grpc.max_send_message_length": x.messageBytesMax,
        "grpc.max_receive_message_length": x.messageBytesMax,
        // Our backoff decides when to retry; a shared subchannel would carry grpc's own state over.
        "grpc.use_local_subchannel_pool": 1,
        "grpc.initial_reconnect_backoff_ms": backoffMsMin,
        "grpc.max_reconnect_backoff_ms": backoffMsMax,
        // Notices a peer behind a silent partition (no RST) instead of writing into the void.
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 5_000,
        "grpc.enable_retries": 0,
      },
      queueMessagesMax: positiveInt(options.queueMessagesMax, 4096, "queueMessagesMax"),
      queueBytesMax,
      batchMessagesMax: positiveInt(options.batchMessagesMax, 256, "batchMessagesMax"),
      batchBytesMax,
      backoffMsMin,
      backoffMsMax,
      connectTimeoutMs: positiveInt(options.connectTimeoutMs, 2000, "connectTimeoutMs"),
      stats: this.counters,
      log: x.log,
      incarnations: options.incarnations ?? null,
      snapshots: {
        method: x.install,
        chunkBytes,
        resendIntervalMs: positiveInt(options.snapshotResendIntervalMs, SNAPSHOT_RESEND_INTERVAL_MS, "snapshotResendIntervalMs"),
        limiter: x.limiter,
      },
    };
  }

  static async start(options: GrpcPeerTransportOptions): Promise<GrpcPeerTransport> {
    const t = new GrpcPeerTransport(options);
    const creds = options.credentials?.server ?? grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) => {
      t.server.bindAsync(options.listenAddress, creds, (err, p) => (err ? reject(err) : resolve(p)));
    });
    t.bound = `${options.listenAddress.slice(0, options.listenAddress.lastIndexOf(":"))}:${port}`;
    t.setPeers(options.peers);
    return t;
  }

  /** host:port actually listened on (the real port when listenAddress had port 0). */
  boundAddress(): string {
    return this.bound;
  }

  send(messages: readonly Message[]): void {
    const queued = new Set<PeerLink>();
    for (const m of messages) {
      const link = this.closing === null ? this.links.get(m.to) : undefined;
      if (link === undefined) {
        this.counters.droppedMessages += 1;
        continue;
      }
      // A snapshot's image goes in chunks; only its header must fit a frame.
      const snapshot = m.kind === "snapshot" ? m : null;
      const bytes = estimateMessageBytes(snapshot === null ? m : withoutImage(snapshot));
      if (bytes > this.ctx.batchBytesMax) this.dropOversize(m, bytes, { limit: "messageBytesMax", limitBytes: this.ctx.batchBytesMax });
      else if (snapshot !== null && snapshot.snapshot.data.byteLength > this.snapshotBytesMax) {
        this.dropOversize(m, snapshot.snapshot.data.byteLength, { limit: "snapshotBytesMax", limitBytes: this.snapshotBytesMax });
      } else if (snapshot !== null) link.enqueueSnapshot(snapshot);
      else {
        link.enqueue(m, bytes);
        queued.add(link);
      }
    }
    for (const link of queued) link.flush(); // one frame per peer per send(), written now
  }

  /** Counted and logged (at most once per interval per peer and kind): a size drop is never silent. */
  private dropOversize(m: Message, bytes: number, why: { limit: string; limitBytes: number }): void {
    this.counters.droppedMessages += 1;
    this.counters.oversizeDrops += 1;
    const index = m.kind === "snapshot" ? m.snapshot.metadata.index : undefined;
    this.ctx.snapshots.limiter.maybeLog(`message_too_large:${m.to}:${m.kind}`, {
      event: "message_dropped_too_large",
      peer: m.to,
      kind: m.kind,
      index,
      bytes,
      limit: why.limit,
      limitBytes: why.limitBytes,
    });
  }

  /** A reassembled snapshot, through the same checks and delivery as a batch on Send. */
  private deliverSnapshot(call: grpc.ServerReadableStream<unknown, unknown>, sender: StreamSender, message: Message): Refusal | null {
    const batch = encodeBatch({ clusterId: this.options.clusterId, from: message.from, to: this.options.selfId }, [message]);
    const r = this.onInboundBatch(call, sender, batch);
    return typeof r === "number" ? null : r;
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  setPeers(peers: readonly PeerAddress[]): void {
    if (this.closing !== null) return;
    const next = new Map(peers.filter((p) => p.id !== this.options.selfId).map((p) => [p.id, p.address]));
    for (const [id, link] of this.links) {
      if (next.get(id) === link.address) continue;
      link.close();
      this.links.delete(id);
    }
    for (const [id, address] of next) {
      if (this.links.has(id)) continue;
      const link = new PeerLink(id, address, this.ctx);
      this.links.set(id, link);
      link.greet();
    }
  }

  stats(): GrpcPeerTransportStats {
    return { ...this.counters, snapshotsInbound: this.receiver.inboundCount() };
  }

  /** Ends outbound streams and the server; resolves once the listening port is released. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.receiver.closeAll();
    this.closing = new Promise<void>((resolve) => {
      this.server.tryShutdown(() => resolve());
      // Peers keep their streams to us open for good, so a graceful drain would never finish.
      this.server.forceShutdown();
    });
    return this.closing;
  }

  private onInboundStream(call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>): void {
    let accepted = 0;
    let done = false;
    const finish = (refusal: Refusal | null): void => {
      if (done) return;
      done = true;
      if (refusal === null) callback(null, { accepted_messages: String(accepted) });
      else callback(refusal);
    };
    // Identity first, before any frame is read: a stranger learns nothing but the status.
    const sender = this.guard.streamSender(call);
    if ("code" in sender) {
      this.counters.rejectedBatches += 1;
      finish(sender);
      return;
    }
    call.on("data", (raw: unknown) => {
      if (done) return;
      const r = this.onInboundBatch(call, sender, raw);
      if (typeof r === "number") accepted += r;
      else finish(r);
    });
    call.on("end", () => finish(null));
    call.on("error", () => void (done = true)); // cancelled: the peer closed or died; nobody to answer
  }

  /** Delivers one frame and returns its message count, or says why it was refused. */
  private onInboundBatch(call: grpc.ServerReadableStream<unknown, unknown>, sender: StreamSender, raw: unknown): number | Refusal {
    if (this.closing !== null) return { code: grpc.status.UNAVAILABLE, details: "transport closing" };
    const undecodable = this.guard.undecodable(raw);
    if (undecodable !== null) return this.refuse(call, undecodable);
    const claimed = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>)["from"] : undefined;
    const identity = this.guard.checkSender(call, sender, claimed);
    if (identity !== null) return this.refuse(call, identity);
    const r = decodeBatch(raw, { clusterId: this.options.clusterId, selfId: this.options.selfId });
    if (!r.ok) {
      const code = r.code === "FAILED_PRECONDITION" ? grpc.status.FAILED_PRECONDITION : grpc.status.INVALID_ARGUMENT;
      return this.refuse(call, { code, details: r.reason });
    }
    const invalid = this.guard.checkMessages(r.messages);
    if (invalid !== null) return this.refuse(call, invalid);
    this.counters.receivedBatches += 1;
    for (const m of r.messages) {
      this.counters.receivedMessages += 1;
      if (this.handler === null) continue;
      const conflict = this.options.receiverState ? receiverConflict(m, this.options.receiverState()) : null;
      if (conflict !== null) {
        this.counters.invalidMessages += 1;
        this.limiter.maybeLog(`message_ignored:${m.from}:${m.kind}`, {
          event: "message_ignored",
          from: m.from,
          kind: m.kind,
          reason: conflict,
        });
        continue;
      }
      if (this.termGuard?.ignores(m)) {
        this.counters.termBumpsIgnored += 1;
        this.limiter.maybeLog(`higher_term_ignored:${m.from}`, { event: "higher_term_ignored", from: m.from, kind: m.kind, term: m.term });
        continue;
      }
      try {
        this.handler(m);
        this.termGuard?.heard(m);
      } catch (err) {
        // A broken invariant (an assertion in core.step) stops the process: server/fatal.ts.
        // Any other throw is the handler's bug: logged, and the listener keeps serving.
        if (isFatal(err)) fatal(err, `peer message from ${m.from} (${m.kind})`);
        else
          this.ctx.log({
            event: "message_handler_threw",
            from: m.from,
            kind: m.kind,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          });
      }
    }
    return r.messages.length;
  }

  /** Counted always; logged at most once per interval per code (a peer sending garbage must not flood the log). */
  private refuse(call: grpc.ServerReadableStream<unknown, unknown>, refusal: Refusal): Refusal {
    this.counters.rejectedBatches += 1;
    const code = grpc.status[refusal.code] ?? refusal.code;
    this.limiter.maybeLog(`inbound_batch_rejected:${code}`, {
      event: "inbound_batch_rejected",
      peer: call.getPeer(),
      code,
      reason: refusal.details,
    });
    return refusal;
  }
}

/** The message without its image: what the header of its transfer carries. */
function withoutImage(m: SnapshotMessage): SnapshotMessage {
  return { ...m, snapshot: { metadata: m.snapshot.metadata, data: new Uint8Array(0) } };
}
