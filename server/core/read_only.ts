// ReadIndex bookkeeping on the leader (Raft thesis §6.4). PURE.
//
// A read registered at commit index i with context c is safe to serve once a quorum has answered
// a heartbeat that carries c (so no newer leader existed when the read arrived) and the state
// machine has applied i. One confirmation answers every read registered before it.

import type { ReadState } from "./ready.ts";
import type { Index, NodeId } from "./types.ts";

interface PendingRead {
  readonly context: number;
  readonly index: Index;
  readonly acks: Set<NodeId>;
}

export class ReadOnlyQueue {
  private readonly queue: PendingRead[] = [];

  constructor(private readonly pendingReadsMax: number) {}

  size(): number {
    return this.queue.length;
  }

  full(): boolean {
    return this.queue.length >= this.pendingReadsMax;
  }

  add(context: number, index: Index, self: NodeId): void {
    this.queue.push({ context, index, acks: new Set([self]) });
  }

  /** Context to carry on the next heartbeat (the newest pending read), or 0. */
  lastContext(): number {
    return this.queue[this.queue.length - 1]?.context ?? 0;
  }

  /**
   * Records `from`'s acknowledgement of `context` (which also vouches for every older read) and
   * returns the reads that are now confirmed by `hasQuorum`, in order.
   */
  recvAck(from: NodeId, context: number, hasQuorum: (acks: ReadonlySet<NodeId>) => boolean): ReadState[] {
    const pos = this.queue.findIndex((r) => r.context === context);
    if (pos < 0) return [];
    for (let i = 0; i <= pos; i++) this.queue[i]?.acks.add(from);
    let confirmed = -1;
    for (let i = pos; i >= 0; i--) {
      const read = this.queue[i];
      if (read && hasQuorum(read.acks)) {
        confirmed = i;
        break;
      }
    }
    if (confirmed < 0) return [];
    return this.queue.splice(0, confirmed + 1).map((r) => ({ index: r.index, context: r.context }));
  }

  /** Leadership lost: the pending reads can no longer be confirmed. Returns their contexts. */
  reset(): number[] {
    return this.queue.splice(0).map((r) => r.context);
  }
}
