// tenure.v1.Election: Campaign (blocking), Proclaim, Leader, Observe (server stream), Resign.

import type * as grpc from "@grpc/grpc-js";
import type { ElectionLeader } from "../state/election_table.ts";
import type { StateEvent } from "../state/results.ts";
import { failStream, readOk, submitOk, unary, type ServiceDeps } from "./handler_kit.ts";
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
    Campaign: unary("Election.Campaign", async (raw, ctx) => {
      const { timeoutMs, ...req } = parseCampaign(raw, limits);
      const command = { kind: "ElectionCampaign" as const, ...req };
      const grant = await acquireBlocking(deps, ctx, { table: "election", command, timeoutMs });
      const leader: ElectionLeader = { name: req.name, leaseId: req.leaseId, token: grant.token, value: grant.value };
      return { leader, validUntil: grant.validUntil, replayed: grant.replayed };
    }),
    Proclaim: unary("Election.Proclaim", async (raw) => {
      const req = parseProclaim(raw, limits);
      try {
        const { body } = await submitOk(deps, { kind: "ElectionProclaim", ...req }, "ElectionProclaim");
        return { token: body.token };
      } catch (error) {
        if (error instanceof ApiError && error.reason === "NOT_HOLDER") {
          throw error.withCurrentToken(await currentToken(deps, "election", req.name));
        }
        throw error;
      }
    }),
    Leader: unary("Election.Leader", async (raw) => {
      const { name } = parseName(raw, limits);
      const { value } = await readOk(deps, (m) => ({ leader: m.electionLeader(name), index: m.appliedIndex() }));
      return leaderUpdate(value.leader, value.index);
    }),
    Observe: observeHandler(deps),
    Resign: unary("Election.Resign", async (raw) => {
      const req = parseFencedRelease(raw, limits);
      const { body } = await submitOk(deps, { kind: "ElectionResign", ...req }, "ElectionResign");
      return { resigned: body.resigned };
    }),
  };
}

function leaderUpdate(leader: ElectionLeader | null, index: number): LeaderUpdate {
  return { hasLeader: leader !== null, leader, index };
}

function observeHandler(deps: ServiceDeps): grpc.handleServerStreamingCall<unknown, object> {
  return (call) => {
    try {
      const { name } = parseName(call.request, deps.config.limits);
      new ObserveStream(deps, call, name).start();
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
  private current: ElectionLeader | null = null;
  private unsubscribe: () => void = () => {};

  constructor(
    private readonly deps: ServiceDeps,
    private readonly call: grpc.ServerWritableStream<unknown, object>,
    private readonly name: string,
  ) {}

  start(): void {
    this.call.on("cancelled", () => this.stop());
    this.call.on("error", () => this.stop());
    this.unsubscribe = this.deps.node.subscribe(
      (events, index) => this.onEvents(events, index),
      (machine, index) => this.onRestored(() => machine.electionLeader(this.name), index),
    );
    readOk(this.deps, (m) => ({ leader: m.electionLeader(this.name), index: m.appliedIndex() })).then(
      ({ value }) => {
        if (this.ended) return;
        this.current = value.leader;
        this.send(leaderUpdate(value.leader, value.index));
        for (const update of this.backlog.splice(0)) if (update.index > value.index) this.send(update);
        this.live = true;
      },
      (error: unknown) => this.fail(error),
    );
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
  private onRestored(leader: () => ElectionLeader | null, index: number): void {
    try {
      if (this.ended) return;
      const now = leader();
      if (this.live && sameLeader(this.current, now)) return;
      this.onUpdate(this.remember(now, index));
    } catch (error) {
      this.fail(error); // as onEvents: never into the node's apply loop
    }
  }

  private updateOf(event: StateEvent, index: number): LeaderUpdate | null {
    const name = this.name;
    switch (event.kind) {
      case "granted":
        if (event.table !== "election" || event.name !== name) return null;
        return this.remember({ name, leaseId: event.leaseId, token: event.token, value: event.value }, index);
      case "proclaimed": {
        if (event.name !== name) return null;
        const leaseId = this.current?.token === event.token ? this.current.leaseId : 0;
        return this.remember({ name, leaseId, token: event.token, value: event.value }, index);
      }
      case "freed":
      case "delayed":
        if (event.table !== "election" || event.name !== name) return null;
        return this.remember(null, index);
      case "leaseGone":
      case "actedForOwner":
        return null;
    }
  }

  private remember(leader: ElectionLeader | null, index: number): LeaderUpdate {
    if (this.live) this.current = leader;
    return leaderUpdate(leader, index);
  }

  private send(update: LeaderUpdate): void {
    if (this.ended) return;
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
