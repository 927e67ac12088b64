// tenure.v1.Election: Campaign (blocking), Proclaim, Leader, Observe (server stream), Resign.
//
// Permissions: elect on the name for Campaign, Proclaim and Resign, read for Leader and Observe.
// An election belongs to the owner of its leader's lease: the machine refuses another identity's
// Proclaim and Resign. Readers see the leader's token and value (what elections are for), and
// its lease id only if they own that lease or are admin.

import type * as grpc from "@grpc/grpc-js";
import type { Principal } from "../auth/principal.ts";
import type { ElectionLeader } from "../state/election_table.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { StateEvent } from "../state/results.ts";
import { authenticate, callerFields, failStream, readOk, requirePermission, submitOk, unary, type ServiceDeps } from "./handler_kit.ts";
import { currentToken } from "./lock_service.ts";
import { ApiError } from "./status_map.ts";
import { parseCampaign, parseFencedRelease, parseName, parseProclaim } from "./validate.ts";
import { acquireBlocking } from "./wait_grant.ts";
import { AppliedStream } from "./applied_stream.ts";

/** tenure.v1.LeaderResponse: one Leader answer or one Observe update. */
export interface LeaderUpdate {
  readonly hasLeader: boolean;
  readonly leader: ElectionLeader | null;
  readonly index: number;
}

export function electionService(deps: ServiceDeps): grpc.UntypedServiceImplementation {
  const limits = deps.config.limits;
  return {
    Campaign: unary(deps, "Election.Campaign", async (raw, ctx) => {
      const { timeoutMs, ...req } = parseCampaign(raw, limits);
      requirePermission(ctx, "elect", req.name);
      const command = { kind: "ElectionCampaign" as const, ...req, ...callerFields(ctx.principal) };
      const grant = await acquireBlocking(deps, ctx, { table: "election", command, timeoutMs });
      const leader: ElectionLeader = { name: req.name, leaseId: req.leaseId, token: grant.token, value: grant.value };
      return { leader, validUntil: grant.validUntil, replayed: grant.replayed };
    }),
    Proclaim: unary(deps, "Election.Proclaim", async (raw, ctx) => {
      const req = parseProclaim(raw, limits);
      requirePermission(ctx, "elect", req.name);
      try {
        const { body } = await submitOk(deps, { kind: "ElectionProclaim", ...req, ...callerFields(ctx.principal) }, "ElectionProclaim", {
          signal: ctx.signal,
        });
        return { token: body.token };
      } catch (error) {
        if (error instanceof ApiError && error.reason === "NOT_HOLDER") {
          throw error.withCurrentToken(await currentToken(deps, "election", req.name));
        }
        throw error;
      }
    }),
    Leader: unary(deps, "Election.Leader", async (raw, ctx) => {
      const { name } = parseName(raw, limits);
      requirePermission(ctx, "read", name);
      const { value } = await readOk(
        deps,
        (m) => ({
          leader: visibleLeader(m, m.electionLeader(name), ctx.principal),
          index: m.appliedIndex(),
        }),
        { signal: ctx.signal },
      );
      return leaderUpdate(value.leader, value.index);
    }),
    Observe: observeHandler(deps),
    Resign: unary(deps, "Election.Resign", async (raw, ctx) => {
      const req = parseFencedRelease(raw, limits);
      requirePermission(ctx, "elect", req.name);
      const { body } = await submitOk(deps, { kind: "ElectionResign", ...req, ...callerFields(ctx.principal) }, "ElectionResign", {
        signal: ctx.signal,
      });
      return { resigned: body.resigned };
    }),
  };
}

function leaderUpdate(leader: ElectionLeader | null, index: number): LeaderUpdate {
  return { hasLeader: leader !== null, leader, index };
}

/** The leader as `principal` may see it: the lease id only if it owns the lease or is admin. */
function visibleLeader(m: LockStateMachine, leader: ElectionLeader | null, principal: Principal): ElectionLeader | null {
  if (leader === null) return null;
  return mayKnowLease(principal, m.leaseOwner(leader.leaseId) ?? "") ? leader : { ...leader, leaseId: 0 };
}

function mayKnowLease(principal: Principal, owner: string): boolean {
  return principal.admin || owner === principal.identity;
}

function observeHandler(deps: ServiceDeps): grpc.handleServerStreamingCall<unknown, object> {
  return (call) => {
    try {
      const principal = authenticate(deps, call);
      const { name } = parseName(call.request, deps.config.limits);
      requirePermission({ principal }, "read", name);
      new ObserveStream(deps, call, name, principal).start();
    } catch (error) {
      failStream(call, "Election.Observe", error);
    }
  };
}

type LeaderRead = { readonly leader: ElectionLeader | null; readonly visible: boolean };

/** One Observe call (applied_stream.ts): the leader now, then each change of it. */
class ObserveStream extends AppliedStream<LeaderRead, LeaderUpdate> {
  /** The leader as last sent, with its true lease id (`currentVisible` decides what is sent). */
  private current: ElectionLeader | null = null;
  private currentVisible = false;

  constructor(
    deps: ServiceDeps,
    call: grpc.ServerWritableStream<unknown, object>,
    name: string,
    private readonly principal: Principal,
  ) {
    super(deps, call, "Election.Observe", name, "observe");
  }

  /** The leader in `m`, and whether this caller may see its lease id. */
  protected read(m: LockStateMachine): LeaderRead {
    const leader = m.electionLeader(this.name);
    return { leader, visible: leader !== null && mayKnowLease(this.principal, m.leaseOwner(leader.leaseId) ?? "") };
  }

  protected first(value: LeaderRead, index: number): LeaderUpdate {
    this.current = value.leader;
    this.currentVisible = value.visible;
    return leaderUpdate(this.shown(value.leader, value.visible), index);
  }

  protected encode(update: LeaderUpdate): object {
    return update;
  }

  protected onEvents(events: readonly StateEvent[], index: number): void {
    for (const event of events) {
      const update = this.updateOf(event, index);
      if (update !== null) this.push(update);
    }
  }

  /**
   * The entries the snapshot covers emitted no events, so the leader they left is sent as one
   * update (unless it is the one already sent).
   */
  protected onRestored(machine: LockStateMachine, index: number): void {
    if (this.isEnded) return;
    const now = this.read(machine);
    if (this.isLive && sameLeader(this.current, now.leader)) return;
    this.push(this.remember(now.leader, now.visible, index));
  }

  private updateOf(event: StateEvent, index: number): LeaderUpdate | null {
    const name = this.name;
    switch (event.kind) {
      case "granted": {
        if (event.table !== "election" || event.name !== name) return null;
        const visible = mayKnowLease(this.principal, event.owner);
        return this.remember({ name, leaseId: event.leaseId, token: event.token, value: event.value }, visible, index);
      }
      case "proclaimed": {
        if (event.name !== name) return null;
        const known = this.current?.token === event.token;
        const leaseId = known ? (this.current?.leaseId ?? 0) : 0;
        return this.remember({ name, leaseId, token: event.token, value: event.value }, known && this.currentVisible, index);
      }
      case "freed":
      case "delayed":
        if (event.table !== "election" || event.name !== name) return null;
        return this.remember(null, false, index);
      case "leaseGone":
      case "actedForOwner":
        return null;
    }
  }

  private remember(leader: ElectionLeader | null, visible: boolean, index: number): LeaderUpdate {
    if (this.isLive) {
      this.current = leader;
      this.currentVisible = visible;
    }
    return leaderUpdate(this.shown(leader, visible), index);
  }

  private shown(leader: ElectionLeader | null, visible: boolean): ElectionLeader | null {
    return leader === null || visible ? leader : { ...leader, leaseId: 0 };
  }
}

function sameLeader(a: ElectionLeader | null, b: ElectionLeader | null): boolean {
  if (a === null || b === null) return a === b;
  return a.leaseId === b.leaseId && a.token === b.token && a.value === b.value;
}
