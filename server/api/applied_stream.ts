// A server stream of what the state machine applies (Election.Observe, Lock.Watch). Subscribes
// first, then reads the current value through the leader (ReadIndex) and sends it, then the
// updates buffered meanwhile whose index is above the read, then every update as it is applied.
// Writes not yet flushed to the transport are bounded by observeBufferMax: a slower reader is
// dropped (SLOW_CONSUMER). Each update is re-authorized before it is sent. A failure inside the
// node's apply loop ends this stream only, never the loop. The stream is served by the leader:
// once this member no longer leads it ends NOT_LEADER (with the hint) or NO_LEADER, checked at
// every applied batch and every LEADERSHIP_CHECK_MS, so a deposed member never serves a silent,
// stale stream; the client watches again at the leader. At most deps.appliedStreams.max such
// streams are open at once on a member (LIMIT_EXCEEDED beyond).

import type * as grpc from "@grpc/grpc-js";
import type { LockStateMachine } from "../state/machine.ts";
import type { StateEvent } from "../state/results.ts";
import { authenticate, failStream, readOk, requirePermission, type ServiceDeps } from "./handler_kit.ts";
import { ApiError, notLeaderError } from "./status_map.ts";

/** How often an idle stream checks that this member still leads. */
const LEADERSHIP_CHECK_MS = 250;

export abstract class AppliedStream<R, U extends { readonly index: number }> {
  private ended = false;
  private live = false;
  private readonly backlog: U[] = [];
  private unflushed = 0;
  private unsubscribe: () => void = () => {};
  private counted = false;
  private leadershipTimer: NodeJS.Timeout | null = null;

  constructor(
    protected readonly deps: ServiceDeps,
    private readonly call: grpc.ServerWritableStream<unknown, object>,
    /** "Election.Observe": in error logs and statuses. */
    private readonly rpc: string,
    /** The name the caller needs read permission on. */
    protected readonly name: string,
    /** What the dropped reader is told to do again ("observe", "watch"). */
    private readonly again: string,
  ) {}

  /** The current value, read inside the confirmed read; `first` turns it into the first update. */
  protected abstract read(m: LockStateMachine): R;
  protected abstract first(value: R, index: number): U;
  /** Applied entries: call push() for each update they make. */
  protected abstract onEvents(events: readonly StateEvent[], index: number): void;
  /** The member restored a snapshot up to `index`: its entries emitted no events. */
  protected abstract onRestored(machine: LockStateMachine, index: number): void;
  /** The message for `update`, or null when there is nothing new to send. */
  protected abstract encode(update: U): object | null;

  start(): void {
    const streams = this.deps.appliedStreams;
    if (streams.open >= streams.max) {
      this.fail(new ApiError("LIMIT_EXCEEDED", `${streams.max} observe/watch streams are open on this member; retry later`));
      return;
    }
    streams.open += 1;
    this.counted = true;
    this.call.on("cancelled", () => this.stop());
    this.call.on("error", () => this.stop());
    this.leadershipTimer = setInterval(() => this.guarded(() => this.checkLeadership()), LEADERSHIP_CHECK_MS);
    this.leadershipTimer.unref();
    this.unsubscribe = this.deps.node.subscribe(
      (events, index) =>
        this.guarded(() => {
          if (this.checkLeadership()) this.onEvents(events, index);
        }),
      (machine, index) => this.guarded(() => this.onRestored(machine, index)),
    );
    readOk(this.deps, (m) => ({ value: this.read(m), index: m.appliedIndex() })).then(
      ({ value }) => {
        if (this.ended) return;
        this.send(this.first(value.value, value.index));
        for (const update of this.backlog.splice(0)) if (update.index > value.index) this.send(update);
        this.live = true;
      },
      (error: unknown) => this.fail(error),
    );
  }

  /** True once the first update went out: later updates are sent as they come. */
  protected get isLive(): boolean {
    return this.live;
  }

  protected get isEnded(): boolean {
    return this.ended;
  }

  protected push(update: U): void {
    if (this.ended) return;
    if (this.live) this.send(update);
    else if (this.backlog.length < this.deps.observeBufferMax) this.backlog.push(update);
    else this.fail(this.slowConsumer());
  }

  private send(update: U): void {
    if (this.ended) return;
    const message = this.encode(update);
    if (message === null) return;
    try {
      // Each update is still the caller's to read: a removed token or a role taken away ends
      // the stream (as KeepAlive re-checks each request).
      requirePermission({ principal: authenticate(this.deps, this.call) }, "read", this.name);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.unflushed >= this.deps.observeBufferMax) {
      this.fail(this.slowConsumer());
      return;
    }
    this.unflushed += 1;
    this.call.write(message, () => {
      this.unflushed -= 1;
    });
  }

  /** False (and the stream ended) once this member does not lead. */
  private checkLeadership(): boolean {
    if (this.ended) return false;
    const s = this.deps.node.status();
    if (s.role === "leader") return true;
    const hint = s.leader === "" ? null : { leaderId: s.leader, leaderAddress: null };
    this.fail(notLeaderError(hint, this.deps.node));
    return false;
  }

  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.fail(error); // never into the node's apply loop
    }
  }

  private slowConsumer(): ApiError {
    const max = this.deps.observeBufferMax;
    return new ApiError("SLOW_CONSUMER", `the reader fell more than ${max} updates behind; ${this.again} again`);
  }

  private stop(): void {
    this.ended = true;
    this.unsubscribe();
    if (this.leadershipTimer !== null) clearInterval(this.leadershipTimer);
    this.leadershipTimer = null;
    if (this.counted) this.deps.appliedStreams.open -= 1;
    this.counted = false;
  }

  protected fail(error: unknown): void {
    if (this.ended) return;
    this.stop();
    failStream(this.call, this.rpc, error);
  }
}
