// The members as Cluster.Members answers them and a backup header records them: one row per
// voter, learner or witness of the node's current configuration.

import { allMembers } from "../core/conf_change.ts";
import type { NodeApi } from "../node/node_api.ts";

export interface MemberRow {
  readonly id: string;
  readonly address: string;
  readonly role: "MEMBER_ROLE_VOTER" | "MEMBER_ROLE_LEARNER";
  readonly witness: boolean;
  readonly isLeader: boolean;
}

export function memberRows(node: Pick<NodeApi, "status" | "memberAddresses">): MemberRow[] {
  const s = node.status();
  const addresses = node.memberAddresses();
  const cs = s.confState;
  return allMembers(cs).map((id) => ({
    id,
    address: addresses.get(id) ?? "",
    role: cs.voters.includes(id) || cs.votersOutgoing.includes(id) ? "MEMBER_ROLE_VOTER" : "MEMBER_ROLE_LEARNER",
    witness: cs.witnesses.includes(id),
    isLeader: id === s.leader,
  }));
}
