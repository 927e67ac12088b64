// tenure.v1.Cluster: Status, Members, AddMember, RemoveMember, ReplaceMember, TransferLeader,
// Freeze, Thaw, Backup (server/backup/backup_rpc.ts).
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
//
// Freeze and Thaw (admin, audited) are replicated commands (server/state/command_handlers.ts),
// each under a session of its own (a fresh client id, seq 1): both are idempotent, so a retry
// after a lost reply is another call answered already_frozen / already_thawed. Status shows the
// freeze as this member's state machine has applied it.

import { randomBytes } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { backupHandler, type BackupRpcOptions } from "../backup/backup_rpc.ts";
import type { ConfChange, ConfChangeSingle } from "../core/conf_change.ts";
import type { ConfState } from "../core/types.ts";
import type { AdminOutcome, MembershipPrecondition } from "../node/node_api.ts";
import type { FrozenState } from "../state/command_handlers.ts";
import type { Freeze, Thaw } from "../state/commands.ts";
import { callerFields, readOk, requireAdmin, submitOk, unary, type HandlerContext, type ServiceDeps } from "./handler_kit.ts";
import { memberRows } from "./member_rows.ts";
import { addMemberRule, removeMemberRule, replaceMemberRule } from "./membership_rules.ts";
import { ApiError, notLeaderError } from "./status_map.ts";
import { parseAddMember, parseEmpty, parseFreeze, parseRemoveMember, parseReplaceMember, parseTransferLeader } from "./validate.ts";

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
        ...frozenFields(node.stateMachine?.()?.frozen() ?? null),
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
        throwUnlessOk(deps, await node.transferLeader(toNodeId));
        return {};
      });
    }),
    Freeze: unary(deps, "Cluster.Freeze", async (raw, ctx) => {
      const { reason } = parseFreeze(raw, limits);
      return audited(deps, ctx, `cluster (freeze: ${JSON.stringify(reason)})`, async () => {
        const command: Freeze = { kind: "Freeze", reason, ...adminSession(ctx) };
        const { body } = await submitOk(deps, command, "Freeze");
        const { value } = await readOk(deps, (m) => m.frozen());
        const frozen = frozenFields(value);
        return {
          alreadyFrozen: body.alreadyFrozen,
          frozenReason: frozen.frozenReason,
          frozenBy: frozen.frozenBy,
          frozenSinceMs: frozen.frozenSinceMs,
        };
      });
    }),
    Thaw: unary(deps, "Cluster.Thaw", async (raw, ctx) => {
      parseEmpty(raw, limits);
      return audited(deps, ctx, "cluster (thaw)", async () => {
        const command: Thaw = { kind: "Thaw", ...adminSession(ctx) };
        const { body } = await submitOk(deps, command, "Thaw");
        return { alreadyThawed: body.alreadyThawed, granted: body.granted };
      });
    }),
    Backup: backupHandler(deps, options.backup),
  };
}

/** A session of its own for one Freeze or Thaw (both idempotent: a retry is a new call). */
function adminSession(ctx: HandlerContext): { clientId: string; seq: number; identity: string; admin: boolean } {
  return { clientId: `cluster-freeze-${randomBytes(8).toString("hex")}`, seq: 1, ...callerFields(ctx.principal) };
}

export function frozenFields(frozen: FrozenState | null): {
  readonly frozen: boolean;
  readonly frozenReason: string;
  readonly frozenBy: string;
  readonly frozenSinceMs: number;
} {
  if (frozen === null) return { frozen: false, frozenReason: "", frozenBy: "", frozenSinceMs: 0 };
  return { frozen: true, frozenReason: frozen.reason, frozenBy: frozen.by, frozenSinceMs: frozen.sinceMs };
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
