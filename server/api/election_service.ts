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
        const { body } = await submitOk(deps, { kind: "ElectionProclaim", ...req, ...callerFields(ctx.principal) }, "ElectionProclaim");
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
      const { value } = await readOk(deps, (m) => ({
        leader: visibleLeader(m, m.electionLeader(name), ctx.principal),
        index: m.appliedIndex(),
      }));
      return leaderUpdate(value.leader, value.index);
    }),
    Observe: observeHandler(deps),
    Resign: unary(deps, "Election.Resign", async (raw, ctx) => {
      const req = parseFencedRelease(raw, limits);
      requirePermission(ctx, "elect", req.name);
      const { body } = await submitOk(deps, { kind: "ElectionResign", ...req, ...callerFields(ctx.principal) }, "ElectionResign");
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

/**
 * One Observe call. Subscribes first, reads the current leader, sends it, then sends the updates
 * buffered meanwhile whose index is above the read, then every update as it is applied. Writes
 * not yet flushed to the transport are bounded by observeBufferMax: a slower reader is dropped.
 */
class ObserveStream {
  private readonly rpc = "Election.Observe";
  private ended = false;
  private live = false;
  private readonly backlog: LeaderUpdate[] = [];
  private unflushed = 0;
  /** The leader as last sent, with its true lease id (`currentVisible` decides what is sent). */
  private current: ElectionLeader | null = null;
  private currentVisible = false;
  private unsubscribe: () => void = () => {};

  constructor(
    private readonly deps: ServiceDeps,
    private readonly call: grpc.ServerWritableStream<unknown, object>,
    private readonly name: string,
    private readonly principal: Principal,
  ) {}

  start(): void {
    this.call.on("cancelled", () => this.stop());
    this.call.on("error", () => this.stop());
    this.unsubscribe = this.deps.node.subscribe(
      (events, index) => this.onEvents(events, index),
      (machine, index) => this.onRestored(() => this.leaderIn(machine), index),
    );
    readOk(this.deps, (m) => ({ ...this.leaderIn(m), index: m.appliedIndex() })).then(
      ({ value }) => {
        if (this.ended) return;
        this.current = value.leader;
        this.currentVisible = value.visible;
        this.send(leaderUpdate(this.shown(value.leader, value.visible), value.index));
        for (const update of this.backlog.splice(0)) if (update.index > value.index) this.send(update);
        this.live = true;
      },
      (error: unknown) => this.fail(error),
    );
  }

  /** The leader in `m`, and whether this caller may see its lease id. */
  private leaderIn(m: LockStateMachine): { leader: ElectionLeader | null; visible: boolean } {
    const leader = m.electionLeader(this.name);
    return { leader, visible: leader !== null && mayKnowLease(this.principal, m.leaseOwner(leader.leaseId) ?? "") };
  }

  private onEvents(events: readonly StateEvent[], index: number): void {
    try {
      for (const event of events) {
        const update = this.updateOf(event, index);
        if (update !== null) this.onUpdate(update);
      }
    } catch (error) {
      // A listener must never throw into the node's apply loop.
      this.fail(error);
    }
  }

  private onUpdate(update: LeaderUpdate): void {
    if (this.ended) return;
    if (this.live) this.send(update);
    else if (this.backlog.length < this.deps.observeBufferMax) this.backlog.push(update);
    else this.fail(slowConsumer(this.deps.observeBufferMax));
  }

  /**
   * The member restored a snapshot up to `index`: the entries it covers emitted no events, so the
   * leader they left is sent as one update (unless it is the one already sent).
   */
  private onRestored(leader: () => { leader: ElectionLeader | null; visible: boolean }, index: number): void {
    try {
      if (this.ended) return;
      const now = leader();
      if (this.live && sameLeader(this.current, now.leader)) return;
      this.onUpdate(this.remember(now.leader, now.visible, index));
    } catch (error) {
      this.fail(error); // as onEvents: never into the node's apply loop
    }
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
    if (this.live) {
      this.current = leader;
      this.currentVisible = visible;
    }
    return leaderUpdate(this.shown(leader, visible), index);
  }

  private shown(leader: ElectionLeader | null, visible: boolean): ElectionLeader | null {
    return leader === null || visible ? leader : { ...leader, leaseId: 0 };
  }

  private send(update: LeaderUpdate): void {
    if (this.ended) return;
    try {
      // Each update is still the caller's to read: a removed token or a role taken away ends
      // the stream (as KeepAlive re-checks each request).
      requirePermission({ principal: authenticate(this.deps, this.call) }, "read", this.name);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.unflushed >= this.deps.observeBufferMax) {
      this.fail(slowConsumer(this.deps.observeBufferMax));
      return;
    }
    this.unflushed += 1;
    this.call.write(update, () => {
      this.unflushed -= 1;
    });
  }

  private stop(): void {
    this.ended = true;
    this.unsubscribe();
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    this.stop();
    failStream(this.call, this.rpc, error);
  }
}

function sameLeader(a: ElectionLeader | null, b: ElectionLeader | null): boolean {
  if (a === null || b === null) return a === b;
  return a.leaseId === b.leaseId && a.token === b.token && a.value === b.value;
}

function slowConsumer(max: number): ApiError {
  return new ApiError("SLOW_CONSUMER", `the reader fell more than ${max} updates behind; observe again`);
}
