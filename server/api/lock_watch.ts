// Lock.Watch: one server stream per call. Subscribes first, reads the lock's status through the
// leader (ReadIndex), sends it, then a new status whenever an applied entry grants, frees or
// delays this lock (and after a snapshot restore that changed it). Each status is read from the
// member's own state machine at the index the event was applied at, so it is exactly the state
// after that entry. Writes not yet flushed are bounded by observeBufferMax: a slower reader is
// dropped (SLOW_CONSUMER), as Election.Observe does.

import type * as grpc from "@grpc/grpc-js";
import type { Principal } from "../auth/principal.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { StateEvent } from "../state/results.ts";
import { authenticate, failStream, readOk, requirePermission, type ServiceDeps } from "./handler_kit.ts";
import { encodeMutexStatus, visibleStatus, type VisibleStatus } from "./lock_service.ts";
import { ApiError } from "./status_map.ts";
import { parseName } from "./validate.ts";

export function lockWatchHandler(deps: ServiceDeps): grpc.handleServerStreamingCall<unknown, object> {
  return (call) => {
    try {
      const principal = authenticate(deps, call);
      const { name } = parseName(call.request, deps.config.limits);
      requirePermission({ principal }, "read", name);
      new LockWatchStream(deps, call, name, principal).start();
    } catch (error) {
      failStream(call, "Lock.Watch", error);
    }
  };
}

interface Update {
  readonly status: VisibleStatus;
  readonly index: number;
}

class LockWatchStream {
  private readonly rpc = "Lock.Watch";
  private ended = false;
  private live = false;
  private readonly backlog: Update[] = [];
  private unflushed = 0;
  private lastKey = "";
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
      (machine, index) => this.onChange(() => this.statusIn(machine), index),
    );
    readOk(this.deps, (m) => ({ status: this.statusIn(m), index: m.appliedIndex() })).then(
      ({ value }) => {
        if (this.ended) return;
        this.send(value);
        for (const update of this.backlog.splice(0)) if (update.index > value.index) this.send(update);
        this.live = true;
      },
      (error: unknown) => this.fail(error),
    );
  }

  private statusIn(m: LockStateMachine): VisibleStatus {
    return visibleStatus(m, m.lockStatus(this.name), this.principal);
  }

  private onEvents(events: readonly StateEvent[], index: number): void {
    const mine = events.some(
      (e) => (e.kind === "granted" || e.kind === "freed" || e.kind === "delayed") && e.table === "lock" && e.name === this.name,
    );
    if (!mine) return;
    const machine = this.deps.node.stateMachine?.();
    if (machine === undefined) {
      this.fail(new ApiError("NO_LEADER", "this member cannot serve Lock.Watch (no local state machine); watch again"));
      return;
    }
    this.onChange(() => this.statusIn(machine), index);
  }

  /** Never throws into the node's apply loop: a failure ends this stream only. */
  private onChange(status: () => VisibleStatus, index: number): void {
    try {
      if (this.ended) return;
      const update = { status: status(), index };
      if (this.live) this.send(update);
      else if (this.backlog.length < this.deps.observeBufferMax) this.backlog.push(update);
      else this.fail(slowConsumer(this.deps.observeBufferMax));
    } catch (error) {
      this.fail(error);
    }
  }

  private send(update: Update): void {
    if (this.ended) return;
    const s = update.status;
    // A restore or a batch may repeat what was sent: only changes go out.
    const key = `${s.state}/${s.holder?.token ?? 0}/${s.delay?.untilMs ?? 0}`;
    if (key === this.lastKey) return;
    try {
      // Each update is still the caller's to read (a token removed or a role taken away ends it).
      requirePermission({ principal: authenticate(this.deps, this.call) }, "read", this.name);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.unflushed >= this.deps.observeBufferMax) {
      this.fail(slowConsumer(this.deps.observeBufferMax));
      return;
    }
    this.lastKey = key;
    this.unflushed += 1;
    this.call.write({ status: encodeMutexStatus(s), appliedIndex: update.index }, () => {
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

function slowConsumer(max: number): ApiError {
  return new ApiError("SLOW_CONSUMER", `the reader fell more than ${max} updates behind; watch again`);
}
