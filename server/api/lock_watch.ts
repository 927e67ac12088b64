// Lock.Watch (applied_stream.ts): the lock's status through the leader (ReadIndex), then a new
// status whenever an applied entry grants, frees or delays this lock (and after a snapshot
// restore). Each status is read from the member's own state machine at the index the event was
// applied at, so it is exactly the state after that entry; a status equal to the last one sent
// (state, holder's token, delay) is not sent again.

import type * as grpc from "@grpc/grpc-js";
import type { Principal } from "../auth/principal.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { StateEvent } from "../state/results.ts";
import { AppliedStream } from "./applied_stream.ts";
import { authenticate, failStream, requirePermission, type ServiceDeps } from "./handler_kit.ts";
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

class LockWatchStream extends AppliedStream<VisibleStatus, Update> {
  private lastKey = "";

  constructor(
    deps: ServiceDeps,
    call: grpc.ServerWritableStream<unknown, object>,
    name: string,
    private readonly principal: Principal,
  ) {
    super(deps, call, "Lock.Watch", name, "watch");
  }

  protected read(m: LockStateMachine): VisibleStatus {
    return visibleStatus(m, m.lockStatus(this.name), this.principal);
  }

  protected first(status: VisibleStatus, index: number): Update {
    return { status, index };
  }

  protected onEvents(events: readonly StateEvent[], index: number): void {
    const mine = events.some(
      (e) => (e.kind === "granted" || e.kind === "freed" || e.kind === "delayed") && e.table === "lock" && e.name === this.name,
    );
    if (!mine) return;
    const machine = this.deps.node.stateMachine?.();
    if (machine === undefined) {
      this.fail(new ApiError("NO_LEADER", "this member cannot serve Lock.Watch (no local state machine); watch again"));
      return;
    }
    this.push({ status: this.read(machine), index });
  }

  protected onRestored(machine: LockStateMachine, index: number): void {
    this.push({ status: this.read(machine), index });
  }

  /** Only changes go out: a restore or a batch may repeat what was sent. */
  protected encode(update: Update): object | null {
    const s = update.status;
    const key = `${s.state}/${s.holder?.token ?? 0}/${s.delay?.untilMs ?? 0}`;
    if (key === this.lastKey) return null;
    this.lastKey = key;
    return { status: encodeMutexStatus(s), appliedIndex: update.index };
  }
}
