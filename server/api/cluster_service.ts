// tenure.v1.Cluster: Status, Members, AddMember, RemoveMember, ReplaceMember, TransferLeader,
// Backup (server/backup/backup_rpc.ts).
//
// Membership changes are one joint-consensus step each (enterJoint with autoLeave). Each names
// members, and one naming a node in the wrong place (adding a voter that is one, removing a
// non-member, replacing a node that is not a voter) is refused with FAILED_PRECONDITION (REFUSED)
// and nothing proposed: membership_rules.ts, checked by the node when it proposes. A retry after
// a lost reply is refused the same way, and its message shows the configuration; already_done is
// always false.
//
// Status and Members answer any authenticated caller. The membership calls and TransferLeader
// need admin (server/auth), and each is audited; a voter or learner is added only if its address
// is known (in --members of this member), so a typo cannot add a member that does not exist and
// shrink the cluster's margin.

import type * as grpc from "@grpc/grpc-js";
import { backupHandler, type BackupRpcOptions } from "../backup/backup_rpc.ts";
import type { ConfChange, ConfChangeSingle } from "../core/conf_change.ts";
import type { ConfState } from "../core/types.ts";
import type { AdminOutcome, MembershipPrecondition } from "../node/node_api.ts";
import { requireAdmin, unary, type HandlerContext, type ServiceDeps } from "./handler_kit.ts";
import { memberRows } from "./member_rows.ts";
import { addMemberRule, removeMemberRule, replaceMemberRule } from "./membership_rules.ts";
import { ApiError, notLeaderError } from "./status_map.ts";
import { parseAddMember, parseEmpty, parseRemoveMember, parseReplaceMember, parseTransferLeader } from "./validate.ts";

export interface ClusterServiceOptions {
  /** Plaintext ports (--insecure): Status reports it. */
  readonly insecure: boolean;
  /** Cluster.Backup (server/backup/backup_rpc.ts): admin only, streamed by the leader. */
  readonly backup: BackupRpcOptions;
}

/** Refuses a member this node has no address for (it could never be reached). */
function requireKnownMember(deps: ServiceDeps, nodeId: string): void {
  if (deps.node.memberAddresses().has(nodeId)) return;
  throw new ApiError("REFUSED", `no address is known for member ${nodeId}: list it in --members of every member before adding it`);
}

/** Runs an admin-only call and writes its audit line, whatever the outcome (a refusal too). */
async function audited<T>(deps: ServiceDeps, ctx: HandlerContext, target: string, act: () => Promise<T>): Promise<T> {
  const record = { identity: ctx.principal.identity, rpc: ctx.rpc, target, owner: null };
  try {
    requireAdmin(ctx);
  } catch (error) {
    deps.audit?.({ ...record, outcome: "denied" });
    throw error;
  }
  try {
    const result = await act();
    deps.audit?.({ ...record, outcome: "ok" });
    return result;
  } catch (error) {
    deps.audit?.({ ...record, outcome: "failed" });
    throw error;
  }
}

export function clusterService(deps: ServiceDeps, options: ClusterServiceOptions): grpc.UntypedServiceImplementation {
  const limits = deps.config.limits;
  const node = deps.node;
  return {
    Status: unary(deps, "Cluster.Status", async (raw, ctx) => {
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
        authMode: deps.auth?.mode ?? "open",
        callerIdentity: ctx.principal.identity,
        callerAdmin: ctx.principal.admin,
        recovering: s.recovering === true,
      };
    }),
    Members: unary(deps, "Cluster.Members", async (raw) => {
      parseEmpty(raw, limits);
      return { members: memberRows(node) };
    }),
    AddMember: unary(deps, "Cluster.AddMember", async (raw, ctx) => {
      const req = parseAddMember(raw, limits);
      return audited(deps, ctx, `member ${req.nodeId}`, async () => {
        requireKnownMember(deps, req.nodeId);
        const op = req.learner ? "addLearner" : "addVoter";
        return changeMembership(deps, [{ op, nodeId: req.nodeId, witness: req.witness }], addMemberRule(req));
      });
    }),
    RemoveMember: unary(deps, "Cluster.RemoveMember", async (raw, ctx) => {
      const { nodeId } = parseRemoveMember(raw, limits);
      return audited(deps, ctx, `member ${nodeId}`, async () =>
        changeMembership(deps, [{ op: "removeNode", nodeId, witness: false }], removeMemberRule({ nodeId })),
      );
    }),
    ReplaceMember: unary(deps, "Cluster.ReplaceMember", async (raw, ctx) => {
      const req = parseReplaceMember(raw, limits);
      return audited(deps, ctx, `member ${req.oldNodeId} by ${req.newNodeId}`, async () => {
        requireKnownMember(deps, req.newNodeId);
        const changes: ConfChangeSingle[] = [
          { op: "addVoter", nodeId: req.newNodeId, witness: req.witness },
          { op: "removeNode", nodeId: req.oldNodeId, witness: false },
        ];
        return changeMembership(deps, changes, replaceMemberRule(req));
      });
    }),
    TransferLeader: unary(deps, "Cluster.TransferLeader", async (raw, ctx) => {
      const { toNodeId } = parseTransferLeader(raw, limits);
      return audited(deps, ctx, `leadership to ${toNodeId}`, async () => {
        throwUnlessOk(deps, node.transferLeader(toNodeId));
        return {};
      });
    }),
    Backup: backupHandler(deps, options.backup),
  };
}

async function changeMembership(
  deps: ServiceDeps,
  changes: readonly ConfChangeSingle[],
  precondition: MembershipPrecondition,
): Promise<{ alreadyDone: boolean; confState: ConfState }> {
  const change: ConfChange = { kind: "enterJoint", changes, autoLeave: true };
  throwUnlessOk(deps, await deps.node.changeMembership(change, precondition));
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
