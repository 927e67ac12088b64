// The narrow peer transport contract between the node loop and the network (hashicorp/raft's
// Transport). The node hands over a Ready's messages only after they may be sent (after the
// persist step); the transport delivers them at most once, in any order, or drops them. Raft
// copes with loss, duplication and reordering, so the transport never retries into a backlog.

import type { Message } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";

export interface PeerAddress {
  readonly id: NodeId;
  /** host:port of the peer's peer-protocol listener. */
  readonly address: string;
}

export interface PeerTransportStats {
  readonly sentMessages: number;
  readonly droppedMessages: number;
  readonly receivedMessages: number;
  readonly rejectedBatches: number;
}

export interface PeerTransport {
  /** Queues messages for their destinations. Never blocks; drops (and counts) when a peer's
   *  bounded queue is full or the peer is unknown. */
  send(messages: readonly Message[]): void;
  /** Sets the one inbound handler; messages for another node id or cluster are rejected. */
  onMessage(handler: (message: Message) => void): void;
  /** Replaces the set of known peers (membership changes). */
  setPeers(peers: readonly PeerAddress[]): void;
  stats(): PeerTransportStats;
  close(): Promise<void>;
}
