// tenure.v1.Cluster: Status, Members, AddMember, RemoveMember, ReplaceMember, TransferLeader.
//
// Membership changes are one joint-consensus step each (enterJoint with autoLeave), and are
// idempotent by target state: if the configuration already has the requested shape nothing is
// proposed and already_done is true, so a retry after a lost reply is safe.

import type * as grpc from "@grpc/grpc-js";
import { allMembers, isJoint, type ConfChange, type ConfChangeSingle } from "../core/conf_change.ts";
import type { ConfState } from "../core/types.ts";
import type { AdminOutcome } from "../node/node_api.ts";
import { unary, type ServiceDeps } from "./handler_kit.ts";
import { ApiError, notLeaderError } from "./status_map.ts";
import { parseAddMember, parseEmpty, parseRemoveMember, parseReplaceMember, parseTransferLeader } from "./validate.ts";

export interface ClusterServiceOptions {
  /** Plaintext ports (--insecure): Status reports it. */
  readonly insecure: boolean;
}

export function clusterService(deps: ServiceDeps, options: ClusterServiceOptions): grpc.UntypedServiceImplementation {
  const limits = deps.config.limits;
  const node = deps.node;
  return {
    Status: unary("Cluster.Status", async (raw) => {
      parseEmpty(raw, limits);
      const s = node.status();
      return {
        nodeId: s.id,
        role: s.role,
        term: s.term,
        leaderId: s.leader,
        leaderAddress: s.leader === "" ? "" : (node.memberAddresses().get(s.leader) ?? ""),
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        lastIndex: s.lastIndex,
        confState: s.confState,
        insecure: options.insecure,
      };
    }),
    Members: unary("Cluster.Members", async (raw) => {
      parseEmpty(raw, limits);
      const s = node.status();
      const addresses = node.memberAddresses();
      const cs = s.confState;
      const members = allMembers(cs).map((id) => ({
        id,
        address: addresses.get(id) ?? "",
        role: cs.voters.includes(id) || cs.votersOutgoing.includes(id) ? "MEMBER_ROLE_VOTER" : "MEMBER_ROLE_LEARNER",
        witness: cs.witnesses.includes(id),
        isLeader: id === s.leader,
      }));
      return { members };
    }),
    AddMember: unary("Cluster.AddMember", async (raw) => {
      const req = parseAddMember(raw, limits);
      const cs = node.status().confState;
      const done = req.learner ? cs.learners.includes(req.nodeId) : cs.voters.includes(req.nodeId);
      const op = req.learner ? "addLearner" : "addVoter";
      return changeMembership(deps, done, [{ op, nodeId: req.nodeId, witness: req.witness }]);
    }),
    RemoveMember: unary("Cluster.RemoveMember", async (raw) => {
      const { nodeId } = parseRemoveMember(raw, limits);
      const done = !allMembers(node.status().confState).includes(nodeId);
      return changeMembership(deps, done, [{ op: "removeNode", nodeId, witness: false }]);
    }),
    ReplaceMember: unary("Cluster.ReplaceMember", async (raw) => {
      const req = parseReplaceMember(raw, limits);
      const cs = node.status().confState;
      const done = !allMembers(cs).includes(req.oldNodeId) && cs.voters.includes(req.newNodeId);
      return changeMembership(deps, done, [
        { op: "addVoter", nodeId: req.newNodeId, witness: req.witness },
        { op: "removeNode", nodeId: req.oldNodeId, witness: false },
      ]);
    }),
    TransferLeader: unary("Cluster.TransferLeader", async (raw) => {
      const { toNodeId } = parseTransferLeader(raw, limits);
      throwUnlessOk(deps, node.transferLeader(toNodeId));
      return {};
    }),
  };
}

async function changeMembership(
  deps: ServiceDeps,
  alreadyDone: boolean,
  changes: readonly ConfChangeSingle[],
): Promise<{ alreadyDone: boolean; confState: ConfState }> {
  const before = deps.node.status().confState;
  // A joint configuration still in effect is the node's to refuse; never report it as done.
  if (alreadyDone && !isJoint(before)) return { alreadyDone: true, confState: before };
  const change: ConfChange = { kind: "enterJoint", changes, autoLeave: true };
  throwUnlessOk(deps, await deps.node.changeMembership(change));
  return { alreadyDone: false, confState: deps.node.status().confState };
}

function throwUnlessOk(deps: ServiceDeps, outcome: AdminOutcome): void {
  switch (outcome.kind) {
    case "ok":
      return;
    case "notLeader":
      throw notLeaderError(outcome.hint, deps.node);
    case "refused":
      throw new ApiError("REFUSED", outcome.reason);
  }
}
