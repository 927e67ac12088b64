// A member that is not the leader must not depose a healthy one by sending higher terms.
//
// Raft adopts any higher term it sees (an append, a heartbeat, a response...) and steps down;
// PreVote and CheckQuorum only gate votes (RaftCore ignores a non-transfer vote while it heard
// from its leader within the election timeout). So an authenticated member that is broken, or a
// stranger where the peer port is plaintext, deposed every leader with a term+1 heartbeat every
// 300 ms. This guard ignores, on the receiving side, every higher-term message that is not a vote
// while the receiver is in a leader lease as the transport observed it:
//   - a follower that heard from its leader, in its own term, within leaseMs;
//   - a leader that heard, in its own term, from a majority of its voters within leaseMs.
// Ignoring a message is always safe in Raft (it is a message loss). What it can cost is
// liveness, and only in rare legitimate cases, bounded by leaseMs: a follower whose vote for the
// new leader was lost hears the new leader once the old one falls silent (it has stepped down);
// a leader that missed its successor's vote (a transfer) learns the new term once its followers
// stop answering in its term (CheckQuorum). Candidates and pre-candidates are never guarded.
// Votes are left to the core: a vote with the transfer flag passes every lease by design, so a
// broken member can still force an election with one (the core change this needs is in the
// README: the leader would name the member it sent TimeoutNow to).

import type { Message } from "../core/messages.ts";
import type { Role } from "../core/ready.ts";
import type { NodeId } from "../core/types.ts";

export interface TermGuardView {
  readonly selfId: NodeId;
  readonly term: number;
  readonly role: Role;
  /** The leader this member follows ("" when none). */
  readonly leader: NodeId;
  /** The voters of the configuration in force (the incoming half of a joint one). */
  readonly voters: readonly NodeId[];
}

export interface TermGuardOptions {
  /** How recent contact must be to count as a lease: the election timeout in ms. */
  readonly leaseMs: number;
  readonly view: () => TermGuardView;
  readonly nowMs: () => number;
}

export class TermGuard {
  /** When each voter was last heard from, in which term. Keyed by voters only: bounded. */
  private readonly heardAt = new Map<NodeId, { readonly term: number; readonly atMs: number }>();

  constructor(private readonly options: TermGuardOptions) {
    if (!(options.leaseMs > 0)) throw new RangeError(`leaseMs must be positive, got ${options.leaseMs}`);
  }

  /** True if `m` must be ignored: a higher term, not a vote, while this member is in a lease. */
  ignores(m: Message): boolean {
    if (m.kind === "vote") return false;
    const view = this.options.view();
    if (m.term <= view.term) return false;
    return this.inLease(view);
  }

  /** After `m` was delivered: contact in the receiver's (possibly just adopted) term. */
  heard(m: Message): void {
    const view = this.options.view();
    if (m.term !== view.term || !view.voters.includes(m.from)) return;
    this.heardAt.set(m.from, { term: m.term, atMs: this.options.nowMs() });
    if (this.heardAt.size > view.voters.length) {
      for (const id of this.heardAt.keys()) if (!view.voters.includes(id)) this.heardAt.delete(id);
    }
  }

  private recent(id: NodeId, view: TermGuardView, nowMs: number): boolean {
    const h = this.heardAt.get(id);
    return h !== undefined && h.term === view.term && nowMs - h.atMs < this.options.leaseMs;
  }

  private inLease(view: TermGuardView): boolean {
    const nowMs = this.options.nowMs();
    if (view.role === "follower") return view.leader !== "" && this.recent(view.leader, view, nowMs);
    if (view.role !== "leader") return false;
    const heard = view.voters.filter((id) => id === view.selfId || this.recent(id, view, nowMs)).length;
    return heard >= Math.floor(view.voters.length / 2) + 1;
  }
}
