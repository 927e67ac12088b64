// Which member ids may use this member's peer port now (GrpcPeerTransport's isAdmissiblePeer),
// from the node's own view: its configuration in force, plus the leader it follows.
//
// - Every id of the applied configuration: voters, the outgoing half of a joint configuration,
//   learners (a member joining catches up as one), learners-to-be and witnesses.
// - The leader this member follows, even once this member applied that leader's removal: a
//   removed leader keeps leading until it hands over (TimeoutNow), and its followers must hear it.
// - A member with no configuration at all (an empty disk waiting for its first snapshot) admits
//   every certified member: it cannot tell, and only a member can hold a member certificate.
// A member joining is admitted by each member once that member applies the change that adds it;
// the leader applies it before it contacts the new member, so only messages from the new member
// to members still behind are refused meanwhile (votes, which Raft may lose anyway).

import type { ConfState, NodeId } from "../core/types.ts";

export interface AdmissionView {
  readonly confState: ConfState;
  readonly leader: NodeId;
}

export function isAdmissibleMember(view: AdmissionView, id: NodeId): boolean {
  const cs = view.confState;
  if (cs.voters.length === 0 && cs.votersOutgoing.length === 0) return true;
  if (id === view.leader) return true;
  return [cs.voters, cs.votersOutgoing, cs.learners, cs.learnersNext, cs.witnesses].some((list) => list.includes(id));
}
