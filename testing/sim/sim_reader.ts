// Simulated readers of the lock simulation (issue 11): a few per member, each asking ITS member
// (never redirected) for Lock.Status or ValidateToken of one of the locks, over the simulated
// network, one read at a time. A follower answers notLeader (recorded as failed, which the
// checker drops); the leader answers after ReadIndex, once its state machine applied the read
// index. Each answered read is recorded with its invocation (sent) and completion (answer
// received) in TRUE simulated time, the recorder's one clock; lock_checkers.ts' ReadHistory
// checks them for linearizability against the chaos checker's token-register model, with the
// grants and releases of the log as the model's other operations.
//
// A reader has no clock of its own to drift: it only records, and the simulation converts its
// delays to true time directly. A read that got no answer within its timeout constrains nothing
// and is dropped; a late answer still counts, with the time it arrived.

import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { ReadOutcome } from "../../server/node/node_api.ts";

export type ReaderRequest =
  | { readonly kind: "status"; readonly reqId: number; readonly lock: string }
  | { readonly kind: "validate"; readonly reqId: number; readonly lock: string; readonly token: number };

/** Status: the holder's token (null: free or in lock-delay). Validate: ValidateToken's answer. */
export type ReaderAnswer = { readonly holder: number | null } | { readonly current: boolean };

export interface ReaderReply {
  readonly reqId: number;
  readonly outcome: ReadOutcome<ReaderAnswer>;
}

export type ReaderTimer = { readonly kind: "next" } | { readonly kind: "timeout"; readonly reqId: number };

export interface ReaderConfig {
  readonly id: string;
  /** The one member this reader asks. */
  readonly node: NodeId;
  readonly lockNames: readonly string[];
  /** Pause between reads, at most (true ms). */
  readonly readEveryMsMax: number;
  readonly timeoutMs: number;
}

/** One answered read, in the chaos checker's terms (history.ts read-holder / validate). */
export type ReadRecord =
  | {
      readonly kind: "read-holder";
      readonly reader: string;
      readonly node: NodeId;
      readonly lock: string;
      readonly invokeMs: number;
      readonly completeMs: number;
      readonly token: number | null;
    }
  | {
      readonly kind: "validate";
      readonly reader: string;
      readonly node: NodeId;
      readonly lock: string;
      readonly invokeMs: number;
      readonly completeMs: number;
      readonly token: number;
      readonly current: boolean;
    };

export interface ReaderEnv {
  send(reader: string, node: NodeId, request: ReaderRequest): void;
  /** Runs `timer` after `delayMs` of true time. */
  schedule(reader: string, delayMs: number, timer: ReaderTimer): void;
  /** Tokens granted on `lock` so far, in log order (what a validate asks about). */
  tokensOf(lock: string): readonly number[];
  record(read: ReadRecord): void;
}

export interface ReaderStats {
  issued: number;
  answered: number;
  refused: number;
  timedOut: number;
}

export class SimReader {
  private readonly pending = new Map<number, { readonly request: ReaderRequest; readonly invokeMs: number }>();
  private current: number | null = null;
  private reqNext = 1;
  nowTrue = 0;
  readonly stats: ReaderStats = { issued: 0, answered: 0, refused: 0, timedOut: 0 };

  constructor(
    readonly config: ReaderConfig,
    private readonly env: ReaderEnv,
    private readonly random: SeededRandom,
  ) {}

  start(): void {
    this.env.schedule(this.config.id, this.random.nextFloat() * this.config.readEveryMsMax, { kind: "next" });
  }

  onTimer(t: ReaderTimer): void {
    if (t.kind === "next") return this.issue();
    if (this.current !== t.reqId) return;
    // No answer in time: the read constrains nothing (a late answer is still recorded).
    this.stats.timedOut++;
    this.current = null;
    this.issue();
  }

  onReply(r: ReaderReply): void {
    const p = this.pending.get(r.reqId);
    if (p === undefined) return; // a duplicate of an answer already recorded
    this.pending.delete(r.reqId);
    const o = r.outcome;
    if (o.kind === "read") {
      this.stats.answered++;
      const base = { reader: this.config.id, node: this.config.node, lock: p.request.lock, invokeMs: p.invokeMs, completeMs: this.nowTrue };
      if (p.request.kind === "status" && "holder" in o.value) this.env.record({ kind: "read-holder", ...base, token: o.value.holder });
      else if (p.request.kind === "validate" && "current" in o.value)
        this.env.record({ kind: "validate", ...base, token: p.request.token, current: o.value.current });
    } else this.stats.refused++; // notLeader or unavailable: a definite failure, no effect
    if (this.current === r.reqId) {
      this.current = null;
      this.env.schedule(this.config.id, this.random.nextFloat() * this.config.readEveryMsMax, { kind: "next" });
    }
  }

  private issue(): void {
    if (this.current !== null) return;
    const lock = this.random.pick(this.config.lockNames);
    const reqId = this.reqNext++;
    const tokens = this.env.tokensOf(lock);
    let request: ReaderRequest;
    if (tokens.length > 0 && this.random.nextFloat() < 0.5) {
      // Mostly the newest token (still current?), sometimes an older one (it must not be).
      const token = this.random.nextFloat() < 0.7 ? (tokens[tokens.length - 1] ?? 0) : this.random.pick(tokens);
      request = { kind: "validate", reqId, lock, token };
    } else request = { kind: "status", reqId, lock };
    this.pending.set(reqId, { request, invokeMs: this.nowTrue });
    // Old reads never answered are forgotten after a while (their node crashed or the answer was lost).
    if (this.pending.size > 64) this.pending.delete(this.pending.keys().next().value as number);
    this.current = reqId;
    this.stats.issued++;
    this.env.send(this.config.id, this.config.node, request);
    this.env.schedule(this.config.id, this.config.timeoutMs, { kind: "timeout", reqId });
  }
}
