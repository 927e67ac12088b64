// Test support: a NodeApi over a real LockStateMachine in memory. submit stamps the command with
// the fake leader's clock and term and applies it at once; reads run on the machine. It can be
// switched to answer like a follower, an unavailable node, or a leader that lost the outcome.

import { applyConfChange, type ConfChange } from "../../server/core/conf_change.ts";
import type { ConfState, Index, NodeId } from "../../server/core/types.ts";
import type {
  AdminOutcome,
  CallOptions,
  EventListener,
  LeaderHint,
  MembershipPrecondition,
  NodeApi,
  NodeStatus,
  ReadOutcome,
  SubmitOutcome,
} from "../../server/node/node_api.ts";
import { encodeCommand, type ClientCommand, type Command } from "../../server/state/commands.ts";
import { DEFAULT_STATE_CONFIG, type StateConfig } from "../../server/state/limits.ts";
import { LockStateMachine } from "../../server/state/machine.ts";
import type { ApplyResult } from "../../server/state/results.ts";

export type FakeMode =
  | { readonly kind: "leader" }
  | { readonly kind: "notLeader"; readonly hint: LeaderHint | null }
  | { readonly kind: "unavailable"; readonly reason: string }
  /** A full queue of pending requests: nothing proposed, retry here after retryAfterMs. */
  | { readonly kind: "overloaded"; readonly reason: string; readonly retryAfterMs: number }
  /** Applies the command (when `applies`) but answers outcomeUnknown, like a lost reply. */
  | { readonly kind: "outcomeUnknown"; readonly applies: boolean };

export class FakeNode implements NodeApi {
  readonly machine: LockStateMachine;
  readonly id: NodeId = "a";
  mode: FakeMode = { kind: "leader" };
  /** Leader time stamped on proposals; tests move it with advance(). */
  nowMs = 1_000;
  term = 1;
  /** What status() says of recovery (server/core/raft.ts "Recovery"). */
  recovering = false;
  confState: ConfState = {
    voters: ["a", "b", "c"],
    votersOutgoing: [],
    learners: [],
    learnersNext: [],
    witnesses: [],
    autoLeave: false,
  };
  readonly addresses = new Map<NodeId, string>([
    ["a", "127.0.0.1:7001"],
    ["b", "127.0.0.1:7002"],
    ["c", "127.0.0.1:7003"],
  ]);
  /** The next submit or read throws this (to test that handlers survive a bug). */
  throwNext: Error | null = null;
  readonly submitted: ClientCommand[] = [];
  /** Reads asked of this node (a handler that should answer from its commit alone asks none). */
  reads = 0;
  /** The signal of every submit and read, in order (undefined: the handler passed none). */
  readonly signals: (AbortSignal | undefined)[] = [];
  /** Reads wait until their signal aborts (a read stuck behind a slow quorum); false: answer at once. */
  holdReads = false;
  readonly transfers: NodeId[] = [];
  private index: Index = 0;
  private readonly listeners = new Set<EventListener>();

  constructor(config: StateConfig = DEFAULT_STATE_CONFIG) {
    this.machine = new LockStateMachine(config);
    this.applyCommand({ kind: "LeaderTimersRestart" });
  }

  advance(ms: number): void {
    this.nowMs += ms;
  }

  /** Proposes the timer commands due now (lease expiry, end of lock-delay). */
  fireTimers(): ApplyResult[] {
    return this.machine.timers(this.nowMs).map((command) => this.applyCommand(command));
  }

  async submit(command: ClientCommand, options: CallOptions = {}): Promise<SubmitOutcome> {
    this.signals.push(options.signal);
    await Promise.resolve();
    this.maybeThrow();
    const mode = this.mode;
    switch (mode.kind) {
      case "notLeader":
        return { kind: "notLeader", hint: mode.hint };
      case "unavailable":
        return { kind: "unavailable", reason: mode.reason };
      case "overloaded":
        return mode;
      case "outcomeUnknown":
        if (mode.applies) this.applyClient(command);
        return { kind: "outcomeUnknown", reason: "fake: leadership lost after proposing" };
      case "leader":
        return { kind: "applied", result: this.applyClient(command) };
    }
  }

  async read<T>(query: (machine: LockStateMachine) => T, options: CallOptions = {}): Promise<ReadOutcome<T>> {
    this.reads++;
    this.signals.push(options.signal);
    const signal = options.signal;
    if (this.holdReads && signal !== undefined) {
      // As RaftNode: an aborted read is dropped and never answered.
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      return new Promise<never>(() => {});
    }
    await Promise.resolve();
    this.maybeThrow();
    const mode = this.mode;
    if (mode.kind === "notLeader") return { kind: "notLeader", hint: mode.hint };
    if (mode.kind === "unavailable") return { kind: "unavailable", reason: mode.reason };
    if (mode.kind === "overloaded") return mode;
    return { kind: "read", value: query(this.machine), index: this.machine.appliedIndex() };
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  /** The local state machine, as RaftNode.stateMachine() (Lock.Watch and Status read it). */
  stateMachine(): LockStateMachine {
    return this.machine;
  }

  status(): NodeStatus {
    const mode = this.mode;
    const leader = mode.kind === "leader" ? this.id : mode.kind === "notLeader" ? (mode.hint?.leaderId ?? "") : "";
    return {
      id: this.id,
      role: this.mode.kind === "leader" ? "leader" : "follower",
      term: this.term,
      leader,
      commitIndex: this.index,
      appliedIndex: this.index,
      lastIndex: this.index,
      confState: this.confState,
      recovering: this.recovering,
    };
  }

  async transferLeader(to: NodeId): Promise<AdminOutcome> {
    if (this.mode.kind === "notLeader") return { kind: "notLeader", hint: this.mode.hint };
    if (!this.confState.voters.includes(to)) return { kind: "refused", reason: `${to} is not a voter` };
    this.transfers.push(to);
    return { kind: "ok" };
  }

  async changeMembership(change: ConfChange, precondition?: MembershipPrecondition): Promise<AdminOutcome> {
    await Promise.resolve();
    if (this.mode.kind === "notLeader") return { kind: "notLeader", hint: this.mode.hint };
    // As the real node: asked at the proposal, against the configuration the change applies to.
    const refused = precondition?.(this.confState) ?? null;
    if (refused !== null) return { kind: "refused", reason: refused };
    const entered = applyConfChange(this.confState, change);
    if (!entered.ok) return { kind: "refused", reason: entered.reason };
    let next = entered.confState;
    if (next.autoLeave) {
      const left = applyConfChange(next, { kind: "leaveJoint" });
      if (!left.ok) return { kind: "refused", reason: left.reason };
      next = left.confState;
    }
    this.confState = next;
    return { kind: "ok" };
  }

  memberAddresses(): ReadonlyMap<NodeId, string> {
    return this.addresses;
  }

  private applyClient(command: ClientCommand): ApplyResult {
    this.submitted.push(command);
    return this.applyCommand(command);
  }

  private applyCommand(command: Command): ApplyResult {
    this.index += 1;
    const bytes = encodeCommand({ leaderTimeMs: this.nowMs, term: this.term, command });
    const result = this.machine.apply(this.index, bytes);
    if (result.events.length > 0) for (const listener of [...this.listeners]) listener(result.events, this.index);
    return result;
  }

  private maybeThrow(): void {
    const error = this.throwNext;
    if (error === null) return;
    this.throwNext = null;
    throw error;
  }
}
