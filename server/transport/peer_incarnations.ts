// Member incarnations on the peer port (issue 13 point 3). Every member has an incarnation, made
// with its data directory (server/data_dir.ts, server/storage/incarnation.ts), and sends it on
// every peer stream it opens (Send and InstallSnapshot) as gRPC metadata, with what it believes
// the receiver's is. Each member remembers, durably, the incarnation of every peer id it accepted
// (trust on first use) and refuses a sender whose incarnation changed under the same id: a wiped
// disk restarted under its old id (a `--bootstrap` left in a service definition) forgot its votes
// and log, and must rejoin as a new member through a membership change. Its messages never reach
// the Raft core, so it cannot vote, campaign or acknowledge.
//
// What is remembered follows the applied configuration (observeConfiguration, after every Ready
// pass of the node): an id that left it is forgotten, so RemoveMember then AddMember of the same
// id with a fresh data directory works; only ids in the configuration are recorded, so a removed
// member cannot be re-learned before it is added back. Members of the configuration whose
// incarnation is not known yet are greeted (PeerLink opens a stream, the receiver answers with
// its incarnation in its response headers): followers rarely talk to each other, and a follower
// that never learned a member's incarnation would accept a wiped one.
//
// Limitation (trust on first use): a member that never learned the old incarnation (added after
// the wipe, or whose file was lost) accepts the wiped one; so does a member that missed the
// removal and the re-adding of an id within one Ready pass or one snapshot (it then refuses the
// re-added member instead, until it is removed and added again). README "Member incarnations".

import type { ConfState, NodeId } from "../core/types.ts";
import { assert } from "../core/assert.ts";

/** The sender's own incarnation (request headers), and the receiver's (response headers). */
export const INCARNATION_HEADER = "tenure-incarnation";
/** What the sender believes the receiver's incarnation is; absent when it does not know. */
export const PEER_INCARNATION_HEADER = "tenure-peer-incarnation";
/**
 * On a refusal's trailers: whose incarnation is not the one remembered. "sender": the receiver
 * remembers the sender with another incarnation (the sender was wiped). "receiver": the sender
 * remembers the receiver with another one (the receiver was wiped).
 */
export const INCARNATION_REFUSAL_HEADER = "tenure-incarnation-refusal";
export type IncarnationRefusalSide = "sender" | "receiver";

const INCARNATION_PATTERN = /^[0-9a-f]{32}$/;

/** Where the table is kept: its content at start, and a durable write of a new content. */
export interface PeerIncarnationStore {
  readonly initial: ReadonlyMap<NodeId, string>;
  save(peers: ReadonlyMap<NodeId, string>): void;
}

/** What an inbound stream's sender incarnation means. Pure: see judgeSender. */
export type SenderVerdict =
  | { readonly kind: "known" }
  | { readonly kind: "first"; readonly incarnation: string }
  | { readonly kind: "missing" }
  | { readonly kind: "malformed"; readonly value: string }
  | { readonly kind: "changed"; readonly was: string; readonly now: string };

/** The sender's claimed incarnation against the one remembered for its id (undefined: none). */
export function judgeSender(remembered: string | undefined, claimed: string | null): SenderVerdict {
  if (claimed === null || claimed.length === 0) return { kind: "missing" };
  if (!INCARNATION_PATTERN.test(claimed)) return { kind: "malformed", value: claimed.slice(0, 64) };
  if (remembered === undefined) return { kind: "first", incarnation: claimed };
  return remembered === claimed ? { kind: "known" } : { kind: "changed", was: remembered, now: claimed };
}

/**
 * Whether the sender's belief about this member's incarnation (null: it has none) is wrong:
 * then the sender remembers another member under this id, and refuses us.
 */
export function addresseeMismatch(own: string, believed: string | null): boolean {
  return believed !== null && believed.length > 0 && believed !== own;
}

const REJOIN = "it must rejoin as a new member through a membership change (RemoveMember then AddMember, or ReplaceMember)";

/** The refusal a member that remembers `id` as `was` gives it when it comes back as `now`. */
export function changedReason(id: NodeId, was: string, now: string): string {
  return `member ${id}'s incarnation changed (was ${was}, now ${now}): its data directory was wiped or replaced; ${REJOIN}`;
}

/** The refusal a wiped member gives a peer that remembers its old incarnation (and the line it logs). */
export function wipedReason(x: { readonly self: NodeId; readonly own: string; readonly peer: NodeId; readonly believed: string }): string {
  return (
    `this member (${x.self}) was wiped and is refused by ${x.peer}: ${x.peer} remembers incarnation ${x.believed}, ` +
    `this data directory has ${x.own}; the data directory was wiped or replaced; ${REJOIN}, and --bootstrap must leave its service definition`
  );
}

export class PeerIncarnations {
  private readonly known: Map<NodeId, string>;
  /** Ids of the applied configuration, or null before the node reported one (or without one). */
  private members: ReadonlySet<NodeId> | null = null;
  private lastConfState: ConfState | null = null;
  private readonly greeters: ((id: NodeId) => void)[] = [];

  constructor(
    readonly selfId: NodeId,
    /** This member's incarnation. */
    readonly own: string,
    private readonly store: PeerIncarnationStore,
    private readonly log: (fields: Readonly<Record<string, unknown>>) => void = () => undefined,
  ) {
    assert(INCARNATION_PATTERN.test(own), `not an incarnation: ${JSON.stringify(own)}`);
    this.known = new Map(store.initial);
  }

  /** The incarnation remembered for `id`, if any. */
  rememberedOf(id: NodeId): string | undefined {
    return this.known.get(id);
  }

  /** Whether `id` is a member of the configuration whose incarnation is not known yet. */
  wantsGreeting(id: NodeId): boolean {
    return id !== this.selfId && this.members !== null && this.members.has(id) && !this.known.has(id);
  }

  /** Called with a member id to greet (PeerLink.greet). */
  onGreet(greet: (id: NodeId) => void): void {
    this.greeters.push(greet);
  }

  /**
   * An inbound stream's sender: judged against what is remembered, and recorded on first use if
   * it is a member of the configuration (a first-time sender outside it is accepted, unrecorded).
   */
  checkSender(id: NodeId, claimed: string | null): SenderVerdict {
    const verdict = judgeSender(this.known.get(id), claimed);
    if (verdict.kind === "first") this.learn(id, verdict.incarnation, "stream");
    return verdict;
  }

  /** A peer's incarnation heard in its response headers: recorded only if unknown (and a member). */
  learn(id: NodeId, incarnation: string, how: "stream" | "response"): boolean {
    if (id === this.selfId || this.known.has(id) || !INCARNATION_PATTERN.test(incarnation)) return false;
    if (this.members === null || !this.members.has(id)) return false;
    const next = new Map(this.known).set(id, incarnation);
    this.store.save(next); // durable before it counts: a restart must refuse what we refused
    this.known.set(id, incarnation);
    this.log({ event: "peer_incarnation_recorded", peer: id, incarnation, how });
    return true;
  }

  /**
   * The node's applied configuration, after each Ready pass: ids that left it are forgotten
   * (a later AddMember of the same id starts over), and members not known yet are greeted.
   * An empty configuration (a member waiting for its first snapshot) changes nothing.
   */
  observeConfiguration(cs: ConfState): void {
    if (cs === this.lastConfState) return;
    this.lastConfState = cs;
    const members = new Set<NodeId>([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext, ...cs.witnesses]);
    if (cs.voters.length === 0 && cs.votersOutgoing.length === 0) return;
    this.members = members;
    const gone = [...this.known.keys()].filter((id) => !members.has(id));
    if (gone.length > 0) {
      const next = new Map([...this.known].filter(([id]) => members.has(id)));
      this.store.save(next);
      for (const id of gone) this.known.delete(id);
      this.log({ event: "peer_incarnations_forgotten", peers: gone, why: "no longer in the applied configuration" });
    }
    for (const id of members) if (this.wantsGreeting(id)) for (const greet of this.greeters) greet(id);
  }
}
