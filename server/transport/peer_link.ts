// The outbound half of GrpcPeerTransport towards one peer: a queue bounded in messages and in
// bytes, a writer that drains it into frames, lazy connect, and reconnect with capped exponential
// backoff and full jitter (see grpc_peer_transport.ts for the whole picture). Under TLS each dial
// expects the peer's certificate to name its member id (grpc.ssl_target_name_override).
// With incarnations (peer_incarnations.ts), every stream the link opens (Send and the snapshots'
// InstallSnapshot) carries this member's incarnation and what it remembers of the peer's; the
// peer's answer headers teach it the peer's; a member of the configuration whose incarnation is
// not known yet is greeted (a stream is opened for its headers, even with nothing to send); and
// an incarnation refusal is logged for what it means.

import * as grpc from "@grpc/grpc-js";
import type { Message, SnapshotMessage } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import type { LogLimiter, TransportLog } from "./log_limiter.ts";
import { encodeBatch, type WirePeerBatch } from "./peer_codec.ts";
import { INCARNATION_HEADER, INCARNATION_REFUSAL_HEADER, PEER_INCARNATION_HEADER, type PeerIncarnations } from "./peer_incarnations.ts";
import { SnapshotSender, type InstallMethod, type SnapshotCounters } from "./snapshot_stream.ts";

/** The counters a link updates (a subset of GrpcPeerTransportStats). */
export interface LinkCounters extends SnapshotCounters {
  sentMessages: number;
  sentBatches: number;
  queueFullDrops: number;
}

/** What a PeerLink needs from its transport: settings, counters and the log. */
export interface LinkContext {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly method: grpc.MethodDefinition<WirePeerBatch, unknown>;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  /** With TLS: dial each peer expecting a certificate for its member id (ssl_target_name_override). */
  readonly verifyPeerName: boolean;
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly batchMessagesMax: number;
  readonly batchBytesMax: number;
  readonly backoffMsMin: number;
  readonly backoffMsMax: number;
  readonly connectTimeoutMs: number;
  readonly stats: LinkCounters;
  readonly log: TransportLog;
  /** This member's incarnation and its peers'; null: no incarnation headers (tests of other things). */
  readonly incarnations: PeerIncarnations | null;
  readonly snapshots: {
    readonly method: InstallMethod;
    readonly chunkBytes: number;
    readonly resendIntervalMs: number;
    readonly limiter: LogLimiter;
  };
}

type LinkState = "idle" | "connecting" | "open" | "backoff" | "closed";

/** An open stream is reopened to greet the peer at most this often. */
const GREETING_INTERVAL_MS = 1000;

/**
 * The outbound half towards one peer. Never holds more than queueMessagesMax messages or
 * queueBytesMax estimated bytes, plus one snapshot transfer in flight and one waiting
 * (SnapshotSender).
 */
export class PeerLink {
  private queue: { readonly message: Message; readonly bytes: number }[] = [];
  /** Sum of the queued messages' estimated bytes. */
  private queueBytes = 0;
  private state: LinkState = "idle";
  private client: grpc.Client | null = null;
  private call: grpc.ClientWritableStream<WirePeerBatch> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private openedAtMs = 0;
  /** Last failure logged, so a peer that stays down (or keeps refusing us) logs once. */
  private loggedReason: string | null = null;
  private writeBlocked = false;
  private lastGreetingMs = Number.NEGATIVE_INFINITY;
  /** The peer answered without an incarnation (an older build): greeting it again is useless. */
  private peerWithoutIncarnation = false;

  private readonly snapshots: SnapshotSender;

  constructor(
    readonly id: NodeId,
    readonly address: string,
    private readonly ctx: LinkContext,
  ) {
    const { method, chunkBytes, resendIntervalMs, limiter } = ctx.snapshots;
    this.snapshots = new SnapshotSender(id, {
      clusterId: ctx.clusterId,
      method,
      chunkBytes,
      resendIntervalMs,
      limiter,
      stats: ctx.stats,
      log: ctx.log,
    });
  }

  /** A snapshot goes on its own InstallSnapshot stream over this link's connection. */
  enqueueSnapshot(message: SnapshotMessage): void {
    if (this.state === "closed") {
      this.ctx.stats.droppedMessages += 1;
      return;
    }
    this.snapshots.offer(message, this.state === "open" ? this.client : null);
    if (this.state === "idle") this.connect();
  }

  enqueue(message: Message, bytes: number): void {
    if (this.state === "closed") {
      this.ctx.stats.droppedMessages += 1;
      return;
    }
    // Full: the newest message goes (those queued are already on their way to a frame).
    const full =
      this.queue.length >= this.ctx.queueMessagesMax
        ? { limit: "queueMessagesMax", limitValue: this.ctx.queueMessagesMax }
        : this.queueBytes + bytes > this.ctx.queueBytesMax
          ? { limit: "queueBytesMax", limitValue: this.ctx.queueBytesMax }
          : null;
    if (full !== null) {
      this.ctx.stats.droppedMessages += 1;
      this.ctx.stats.queueFullDrops += 1;
      this.ctx.snapshots.limiter.maybeLog(`queue_full:${this.id}:${full.limit}`, {
        event: "message_dropped_queue_full",
        peer: this.id,
        kind: message.kind,
        bytes,
        queuedMessages: this.queue.length,
        queuedBytes: this.queueBytes,
        ...full,
      });
      return;
    }
    this.queue.push({ message, bytes });
    this.queueBytes += bytes;
    if (this.state === "idle") this.connect();
  }

  /**
   * Writes what enqueue() queued, now: the transport calls it once per send(), after every
   * message of that send() is queued, so one Ready's messages share a frame. Written in the same
   * turn, not deferred to a later one (setImmediate): gRPC's HTTP/2 session puts the frame on the
   * socket in the next check phase, before the node's next pass (a leader's fsync) runs.
   */
  flush(): void {
    if (this.state === "open") this.pump();
  }

  /**
   * The peer is a member whose incarnation we do not know: open a stream (or a new one, at most
   * once per GREETING_INTERVAL_MS) so its response headers tell us. A failed attempt is retried
   * after the backoff for as long as it is not known.
   */
  greet(): void {
    if (!this.wantsGreeting()) return;
    if (this.state === "idle") this.connect();
    else if (this.state === "open" && this.client !== null) {
      const nowMs = Date.now();
      if (nowMs - this.lastGreetingMs < GREETING_INTERVAL_MS) return;
      this.lastGreetingMs = nowMs;
      const old = this.call;
      this.call = null; // its end is not a failure
      old?.end();
      this.openStream(this.client);
    }
  }

  private wantsGreeting(): boolean {
    return this.ctx.incarnations?.wantsGreeting(this.id) === true && !this.peerWithoutIncarnation;
  }

  close(): void {
    this.dropQueue();
    this.snapshots.drop();
    this.state = "closed";
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.teardown();
  }

  private connect(): void {
    this.state = "connecting";
    const options = this.ctx.verifyPeerName
      ? { ...this.ctx.channelOptions, "grpc.ssl_target_name_override": this.id }
      : this.ctx.channelOptions;
    const interceptors = this.ctx.incarnations === null ? [] : [this.incarnationInterceptor(this.ctx.incarnations)];
    const client = new grpc.Client(this.address, this.ctx.credentials, { ...options, interceptors });
    this.client = client;
    const channel = client.getChannel();
    const deadline = Date.now() + this.ctx.connectTimeoutMs;
    // Watch the channel instead of waitForReady, which would sit out the whole deadline on a
    // refused connection; TRANSIENT_FAILURE means this attempt has failed.
    const check = (): void => {
      if (this.client !== client || this.state !== "connecting") return;
      const s = channel.getConnectivityState(true);
      if (s === grpc.connectivityState.READY) this.openStream(client);
      else if (s === grpc.connectivityState.TRANSIENT_FAILURE || s === grpc.connectivityState.SHUTDOWN) this.fail("unreachable");
      else channel.watchConnectivityState(s, deadline, (err) => (err ? this.fail("connect timeout") : check()));
    };
    check();
  }

  /**
   * On every call of this link's client (Send and InstallSnapshot): our incarnation and what we
   * remember of the peer's go out; the peer's comes back in its headers; a refusal for an
   * incarnation is logged for what it means (rate-limited).
   */
  private incarnationInterceptor(incarnations: PeerIncarnations): grpc.Interceptor {
    return (options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        start: (metadata, _listener, next) => {
          metadata.set(INCARNATION_HEADER, incarnations.own);
          const remembered = incarnations.rememberedOf(this.id);
          if (remembered !== undefined) metadata.set(PEER_INCARNATION_HEADER, remembered);
          next(metadata, {
            onReceiveMetadata: (headers, nextHeaders) => {
              const theirs = headers.get(INCARNATION_HEADER)[0];
              if (typeof theirs === "string") incarnations.learn(this.id, theirs, "response");
              else this.peerWithoutIncarnation = true;
              nextHeaders(headers);
            },
            onReceiveStatus: (status, nextStatus) => {
              this.noteRefusal(status);
              nextStatus(status);
            },
          });
        },
      });
  }

  private noteRefusal(status: grpc.StatusObject): void {
    const side = status.metadata.get(INCARNATION_REFUSAL_HEADER)[0];
    if (side !== "sender" && side !== "receiver") return;
    const limiter = this.ctx.snapshots.limiter;
    // "sender": the peer remembers another incarnation of us, so this member is the wiped one.
    if (side === "sender") {
      const reason = `this member (${this.ctx.selfId}) was wiped and is refused by ${this.id}: ${status.details}; remove --bootstrap from its service definition`;
      limiter.maybeLog(`incarnation_refused_by_peer:${this.id}:out`, { event: "incarnation_refused_by_peer", peer: this.id, reason });
    } else {
      limiter.maybeLog(`peer_incarnation_refused:${this.id}:out`, {
        event: "peer_incarnation_refused",
        peer: this.id,
        reason: status.details,
      });
    }
  }

  private openStream(client: grpc.Client): void {
    const { path, requestSerialize, responseDeserialize } = this.ctx.method;
    const call = client.makeClientStreamRequest<WirePeerBatch, unknown>(path, requestSerialize, responseDeserialize, (err) => {
      if (this.call === call) this.fail(err ? `${grpc.status[err.code] ?? err.code}: ${err.details}` : "stream ended by peer");
    });
    call.on("drain", () => {
      this.writeBlocked = false;
      this.pump();
    });
    call.on("error", () => {}); // errors arrive through the callback above; never crash on one
    this.call = call;
    this.state = "open";
    this.openedAtMs = Date.now();
    this.writeBlocked = false;
    this.pump();
    this.snapshots.onOpen(client);
  }

  /** Writes frames until the queue is empty or gRPC pushes back (then waits for 'drain'). */
  private pump(): void {
    const call = this.call;
    if (call === null || this.state !== "open") return;
    const header = { clusterId: this.ctx.clusterId, from: this.ctx.selfId, to: this.id };
    while (!this.writeBlocked && this.queue.length > 0) {
      let count = 0;
      let bytes = 0;
      for (const item of this.queue) {
        if (count === this.ctx.batchMessagesMax || (count > 0 && bytes + item.bytes > this.ctx.batchBytesMax)) break;
        count += 1;
        bytes += item.bytes;
      }
      const batch = this.queue.splice(0, count).map((item) => item.message);
      this.queueBytes -= bytes;
      this.writeBlocked = !call.write(encodeBatch(header, batch));
      this.ctx.stats.sentMessages += batch.length;
      this.ctx.stats.sentBatches += 1;
    }
  }

  private fail(reason: string): void {
    if (this.state === "closed") return;
    const wasOpen = this.state === "open";
    this.dropQueue();
    this.snapshots.drop();
    this.teardown();
    // A stream that stayed up a while was healthy: start the backoff over. One that broke at
    // once (a peer refusing our cluster id) keeps growing it.
    if (wasOpen && Date.now() - this.openedAtMs > this.ctx.backoffMsMax) {
      this.attempt = 0;
      this.loggedReason = null;
    }
    if (reason !== this.loggedReason)
      this.ctx.log({ event: "peer_unavailable", peer: this.id, address: this.address, reason, attempt: this.attempt });
    this.loggedReason = reason;
    const ceilingMs = Math.min(this.ctx.backoffMsMax, this.ctx.backoffMsMin * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    this.state = "backoff";
    this.timer = setTimeout(() => {
      this.timer = null;
      this.state = "idle";
      if (this.queue.length > 0 || this.snapshots.hasWaiting() || this.wantsGreeting()) this.connect();
    }, Math.random() * ceilingMs); // full jitter: peers that lost us together do not retry together
  }

  private dropQueue(): void {
    this.ctx.stats.droppedMessages += this.queue.length;
    this.queue = [];
    this.queueBytes = 0;
  }

  private teardown(): void {
    const call = this.call;
    this.call = null;
    call?.end();
    this.client?.close();
    this.client = null;
  }
}
