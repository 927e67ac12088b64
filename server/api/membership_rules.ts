// What each membership call requires of the configuration it changes (issue 13 point 5).
//
// A membership call names members; one that names a node in the wrong place is refused
// (FAILED_PRECONDITION, reason REFUSED, nothing proposed) instead of proposing a change that does
// something else than the caller asked: ReplaceMember with an old id that is not a voter used to
// add the new voter and remove nothing (4 voters where the caller believed there were 3).
//   AddMember      the node is not a voter; as a learner (learner = true): not a member at all.
//                  A learner added as a voter is promoted, the reason learners exist (catch up
//                  first, then vote).
//   RemoveMember   the node is a member (voter or learner).
//   ReplaceMember  old_node_id is a voter, new_node_id is not one (a caught-up learner may be
//                  promoted in its place, as with AddMember).
// A retry after a lost reply therefore gets REFUSED too, with a message naming the configuration,
// which then shows that the first call took effect; already_done is no longer answered.
//
// These are evaluated by the node at the moment it proposes, against the configuration the change
// will apply to (server/node/raft_node.ts changeMembership): not here against a status read, which
// another change could overtake. Pure functions of the configuration.

import { describeConfState, isVoter } from "../core/conf_change.ts";
import type { ConfState, NodeId } from "../core/types.ts";
import type { MembershipPrecondition } from "../node/node_api.ts";

const isLearner = (cs: ConfState, id: NodeId): boolean => cs.learners.includes(id) || cs.learnersNext.includes(id);

function refusal(what: string, cs: ConfState): string {
  return `${what} in the configuration ${describeConfState(cs)}; nothing was proposed`;
}

export function addMemberRule(req: { readonly nodeId: NodeId; readonly learner: boolean }): MembershipPrecondition {
  return (cs) => {
    if (isVoter(cs, req.nodeId)) return refusal(`${req.nodeId} is already a voter`, cs);
    if (req.learner && isLearner(cs, req.nodeId)) return refusal(`${req.nodeId} is already a learner`, cs);
    return null;
  };
}

export function removeMemberRule(req: { readonly nodeId: NodeId }): MembershipPrecondition {
  return (cs) => (isVoter(cs, req.nodeId) || isLearner(cs, req.nodeId) ? null : refusal(`${req.nodeId} is not a member`, cs));
}

export function replaceMemberRule(req: { readonly oldNodeId: NodeId; readonly newNodeId: NodeId }): MembershipPrecondition {
  return (cs) => {
    if (!isVoter(cs, req.oldNodeId)) {
      const what = isLearner(cs, req.oldNodeId) ? "is a learner, not a voter (remove it with RemoveMember)" : "is not a member";
      return refusal(`old_node_id ${req.oldNodeId} ${what}`, cs);
    }
    if (isVoter(cs, req.newNodeId)) return refusal(`new_node_id ${req.newNodeId} is already a voter`, cs);
    return null;
  };
}
