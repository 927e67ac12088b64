// Peer traffic as the node sees it: a PeerTransport that wraps the real one (main.ts hands the
// wrapper to the node), so the gRPC transport itself carries no metrics code.
//   - RTT per peer: from a heartbeat sent to the next heartbeat answer from that peer (the oldest
//     unanswered heartbeat is timed; a lost heartbeat makes one sample up to a heartbeat interval
//     too long, never too short).
//   - Leader conflicts (a safety signal): a leader message (append, heartbeat, snapshot) of this
//     member's own term from a member other than the one it knows leads that term, or, while this
//     member leads it, from anyone. Raft allows one leader per term; the core stops the process
//     on the second case (an assertion), so the counter is what a follower can still report.
//   - The transport's own counts, read at scrape time.
// Per message: one kind comparison, and for a leader message one status read. Peers are the ids
// the node configured (setPeers), so labels stay bounded.

import { performance } from "node:perf_hooks";
import { Counter, Histogram } from "prom-client";
import type { Message } from "../core/messages.ts";
import type { Role } from "../core/ready.ts";
import type { NodeId, Term } from "../core/types.ts";
import type { PeerAddress, PeerTransport, PeerTransportStats } from "../transport/peer_transport.ts";
import type { MetricsRegistry } from "./registry.ts";

export interface LeaderView {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly leader: NodeId;
}

/** True if `m` claims leadership of `view`'s term that this member knows belongs to another. */
export function isLeaderConflict(m: Message, view: LeaderView): boolean {
  if (m.kind !== "append" && m.kind !== "heartbeat" && m.kind !== "snapshot") return false;
  if (m.term !== view.term || m.from === view.id) return false;
  if (view.role === "leader") return true;
  return view.leader !== "" && view.leader !== m.from;
}

export const RTT_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

interface PeerState {
  heartbeatSentAtMs: number | null;
  readonly rtt: { observe(seconds: number): void };
}

export interface PeerMetricsOptions {
  /** The peers the transport was started with (later ones come through setPeers). */
  readonly peerIds: readonly NodeId[];
  readonly view: () => LeaderView;
  readonly log?: (fields: Record<string, unknown>) => void;
  /** Monotonic ms; default performance.now(). */
  readonly nowMs?: () => number;
}

export class MeteredTransport implements PeerTransport {
  private readonly peers = new Map<NodeId, PeerState>();
  private readonly rtt: Histogram<"peer">;
  private readonly conflicts: Counter;
  private readonly nowMs: () => number;

  constructor(
    private readonly inner: PeerTransport,
    registry: MetricsRegistry,
    private readonly options: PeerMetricsOptions,
  ) {
    this.nowMs = options.nowMs ?? (() => performance.now());
    const registers = [registry];
    this.rtt = new Histogram({
      name: "tenure_peer_rtt_seconds",
      help: "Round trip to the peer: a heartbeat sent to its answer.",
      labelNames: ["peer"],
      buckets: RTT_BUCKETS_SECONDS,
      registers,
    });
    this.conflicts = new Counter({
      name: "tenure_leader_conflicts_total",
      help: "SAFETY: leader messages of this member's term from a member other than the leader it knows (or, while it leads, from anyone): two leaders in one term. Page.",
      registers,
    });
    const stat = (name: string, help: string, read: (s: PeerTransportStats) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(inner.stats()));
        },
      });
    };
    this.trackPeers(options.peerIds);
    stat("tenure_peer_messages_sent_total", "Raft messages handed to the peer streams.", (s) => s.sentMessages);
    stat(
      "tenure_peer_messages_dropped_total",
      "Raft messages dropped on the way out (queue full, too large, unknown peer).",
      (s) => s.droppedMessages,
    );
    stat("tenure_peer_messages_received_total", "Raft messages received from peers.", (s) => s.receivedMessages);
    stat("tenure_peer_batches_rejected_total", "Inbound peer frames refused (identity, decoding, checks).", (s) => s.rejectedBatches);
  }

  send(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.kind !== "heartbeat") continue;
      const peer = this.peers.get(m.to);
      if (peer !== undefined && peer.heartbeatSentAtMs === null) peer.heartbeatSentAtMs = this.nowMs();
    }
    this.inner.send(messages);
  }

  onMessage(handler: (message: Message) => void): void {
    this.inner.onMessage((m) => {
      this.observe(m);
      handler(m);
    });
  }

  setPeers(peers: readonly PeerAddress[]): void {
    this.trackPeers(peers.map((p) => p.id));
    this.inner.setPeers(peers);
  }

  private trackPeers(peerIds: readonly NodeId[]): void {
    const ids = new Set(peerIds);
    for (const id of this.peers.keys()) if (!ids.has(id)) this.peers.delete(id);
    for (const id of ids) if (!this.peers.has(id)) this.peers.set(id, { heartbeatSentAtMs: null, rtt: this.rtt.labels(id) });
  }

  stats(): PeerTransportStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private observe(m: Message): void {
    if (m.kind === "heartbeatResponse") {
      const peer = this.peers.get(m.from);
      if (peer === undefined || peer.heartbeatSentAtMs === null) return;
      peer.rtt.observe(Math.max(0, this.nowMs() - peer.heartbeatSentAtMs) / 1000);
      peer.heartbeatSentAtMs = null;
      return;
    }
    if (m.kind !== "append" && m.kind !== "heartbeat" && m.kind !== "snapshot") return;
    const view = this.options.view();
    if (!isLeaderConflict(m, view)) return;
    this.conflicts.inc();
    this.options.log?.({
      event: "leader_conflict",
      level: "error",
      term: m.term,
      from: m.from,
      kind: m.kind,
      role: view.role,
      leader: view.leader,
    });
  }
}
