// A small driver for the state machine tests (and later the simulator's scenario tests). PURE.
// It plays the leader: stamps time and term, numbers entries, and keeps each client's seq.

import { encodeCommand, type ClientCommand, type SystemCommand } from "../../server/state/commands.ts";
import type { StateConfig } from "../../server/state/limits.ts";
import { DEFAULT_STATE_CONFIG } from "../../server/state/limits.ts";
import { LockStateMachine } from "../../server/state/machine.ts";
import type { ApplyResult } from "../../server/state/results.ts";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type ClientBody = DistributiveOmit<ClientCommand, "clientId" | "seq">;

export class Driver {
  machine: LockStateMachine;
  index = 0;
  term = 1;
  timeMs = 1_000;
  private readonly seqs = new Map<string, number>();

  constructor(config: StateConfig = DEFAULT_STATE_CONFIG, machine?: LockStateMachine) {
    this.machine = machine ?? new LockStateMachine(config);
    if (machine === undefined) this.system({ kind: "LeaderTimersRestart" });
    else this.index = machine.appliedIndex();
  }

  at(timeMs: number): this {
    this.timeMs = timeMs;
    return this;
  }

  /** The next command of `clientId` (seq + 1). */
  client(clientId: string, body: ClientBody): ApplyResult {
    const seq = (this.seqs.get(clientId) ?? 0) + 1;
    this.seqs.set(clientId, seq);
    return this.send(clientId, seq, body);
  }

  /** A command with an explicit seq (a retry, or a stale duplicate). */
  send(clientId: string, seq: number, body: ClientBody): ApplyResult {
    const command = { ...body, clientId, seq } as ClientCommand;
    return this.raw(encodeCommand({ leaderTimeMs: this.timeMs, term: this.term, command }));
  }

  system(command: SystemCommand): ApplyResult {
    return this.raw(encodeCommand({ leaderTimeMs: this.timeMs, term: this.term, command }));
  }

  raw(bytes: Uint8Array): ApplyResult {
    this.index += 1;
    return this.machine.apply(this.index, bytes);
  }

  /** Proposes whatever timers() lists at the current time. */
  fireTimers(): ApplyResult[] {
    return this.machine.timers(this.timeMs).map((command) => this.system(command));
  }

  grant(clientId: string, ttlMs = 10_000): number {
    const r = this.client(clientId, { kind: "LeaseGrant", ttlMs });
    if (!r.ok || r.kind !== "LeaseGrant") throw new Error(`grant failed: ${JSON.stringify(r)}`);
    return r.leaseId;
  }

  acquire(clientId: string, name: string, leaseId: number, wait = true): ApplyResult {
    return this.client(clientId, { kind: "LockAcquire", name, leaseId, wait });
  }

  /** Token of a granted acquire or campaign; throws otherwise (tests only). */
  static token(r: ApplyResult): number {
    if (r.ok && (r.kind === "LockAcquire" || r.kind === "ElectionCampaign") && r.status !== "queued") return r.token;
    throw new Error(`not granted: ${JSON.stringify(r)}`);
  }

  /** A new leader in the next term: its first entry restarts the timers. */
  newLeader(timeMs: number): ApplyResult {
    this.term += 1;
    this.timeMs = timeMs;
    return this.system({ kind: "LeaderTimersRestart" });
  }
}
