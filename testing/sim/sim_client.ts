// A simulated lock client: the SDK rules of DESIGN.md §3 and §5 on its own drifting clock.
//
// It grants a lease (t0 read on ITS clock BEFORE the first send; belief deadline = t0 + ttl(1-rho)
// - margin, same clock), keeps it alive, acquires a few locks with wait=true (a queued acquire
// learns of its grant by linearizable reads), and while it believes it holds a lock it writes to
// the guarded store carrying the token; then it releases (belief ends BEFORE the release is sent).
// One mutating request is in flight at a time (the session table keeps one result per client);
// an unknown outcome, a timeout or a notLeader answer is retried with the SAME (clientId, seq),
// following the leader hint. Past its deadline without a renewal the client drops the lease and
// every belief, and starts over with a new lease (Chubby's jeopardy, without the grace period).
//
// The simulation owns time: it converts the client's local delays to true time, defers the
// client's events while it is paused, and carries its messages over the faulty network.

import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { ClientCommand } from "../../server/state/commands.ts";
import type { MutexStatus } from "../../server/state/lock_table.ts";
import type { ApplyResult } from "../../server/state/results.ts";
import type { ReadOutcome, SubmitOutcome } from "../../server/node/node_api.ts";
import type { LockChecker } from "./lock_checkers.ts";
import type { GuardWrite } from "./sim_guard.ts";

export type ClientRequest =
  | { readonly kind: "submit"; readonly reqId: number; readonly command: ClientCommand }
  | { readonly kind: "read"; readonly reqId: number; readonly lock: string };

export type ClientReply =
  | { readonly kind: "submit"; readonly reqId: number; readonly seq: number; readonly outcome: SubmitOutcome }
  | { readonly kind: "read"; readonly reqId: number; readonly lock: string; readonly outcome: ReadOutcome<MutexStatus> };

export type ClientTimer =
  | { readonly kind: "work" }
  | { readonly kind: "keepalive"; readonly leaseId: number }
  | { readonly kind: "deadline"; readonly leaseId: number }
  | { readonly kind: "write"; readonly belief: number }
  | { readonly kind: "writeAfterPause"; readonly belief: number }
  | { readonly kind: "release"; readonly belief: number }
  | { readonly kind: "poll"; readonly lock: string }
  /** rotate: the attempt timed out, so try another node; otherwise a reply already chose one. */
  | { readonly kind: "resend"; readonly reqId: number; readonly rotate: boolean };

export interface ClientConfig {
  readonly id: string;
  /** Local clock = offsetMs + rate * true time (pauses do not stop it: a GC pause is not a clock stop). */
  readonly rate: number;
  readonly offsetMs: number;
  readonly ttlMs: number;
  readonly rho: number;
  readonly marginMs: number;
  readonly lockNames: readonly string[];
  readonly nodes: readonly NodeId[];
  readonly writeEveryMs: number;
  readonly holdMsMax: number;
  readonly thinkMsMax: number;
  readonly pollMs: number;
  readonly attemptTimeoutMs: number;
  readonly revokeProbability: number;
  /** After a revoke, sometimes acquire with the revoked lease id (an out-of-date client). */
  readonly staleLeaseProbe: boolean;
}

export interface ClientEnv {
  readonly checker: LockChecker;
  sendToNode(client: string, node: NodeId, request: ClientRequest): void;
  sendToGuard(client: string, write: GuardWrite): void;
  schedule(client: string, localDelayMs: number, timer: ClientTimer): void;
  /** >0: the client is paused now for that long (true ms) without noticing (negative control). */
  unawarePauseMs(client: string): number;
}

type Op =
  | { readonly kind: "grant" }
  | { readonly kind: "keepalive"; readonly leaseId: number }
  | { readonly kind: "acquire"; readonly lock: string; readonly leaseId: number }
  | { readonly kind: "release"; readonly lock: string; readonly token: number }
  | { readonly kind: "revoke"; readonly leaseId: number }
  | { readonly kind: "staleAcquire"; readonly lock: string; readonly leaseId: number };

interface InFlight {
  readonly op: Op;
  readonly seq: number;
  readonly command: ClientCommand;
  readonly t0Local: number;
  reqId: number;
}

export class SimClient {
  private lease: { id: number; deadlineLocal: number } | null = null;
  private holding: { lock: string; token: number; belief: number; leaseId: number } | null = null;
  private waiting: { lock: string; leaseId: number } | null = null;
  private inFlight: InFlight | null = null;
  private readonly queue: Op[] = [];
  private target: NodeId;
  private seqNext = 1;
  private reqNext = 1;
  private writeNo = 0;
  nowTrue = 0;
  grantsReceived = 0;
  lastGrantAtMs = -1;
  leasesLost = 0;

  constructor(
    readonly config: ClientConfig,
    private readonly env: ClientEnv,
    private readonly random: SeededRandom,
  ) {
    this.target = config.nodes[random.nextInt(config.nodes.length)] ?? "a";
  }

  localNow(): number {
    return this.config.offsetMs + this.config.rate * this.nowTrue;
  }

  private toTrue(local: number): number {
    return (local - this.config.offsetMs) / this.config.rate;
  }

  start(): void {
    this.enqueue({ kind: "grant" });
  }

  // ------------------------------------------------------------------ timers

  onTimer(t: ClientTimer): void {
    switch (t.kind) {
      case "work":
        return this.work();
      case "keepalive":
        if (this.lease?.id !== t.leaseId) return;
        if (!this.queue.some((o) => o.kind === "keepalive") && this.inFlight?.op.kind !== "keepalive") {
          this.queue.unshift({ kind: "keepalive", leaseId: t.leaseId }); // renewals go first
          this.pump();
        }
        this.env.schedule(this.config.id, this.config.ttlMs / 3, t);
        return;
      case "deadline":
        if (this.lease?.id === t.leaseId && this.localNow() >= this.lease.deadlineLocal) this.leaseLost();
        return;
      case "write":
        return this.write(t.belief, true);
      case "writeAfterPause":
        return this.write(t.belief, false);
      case "release": {
        const h = this.holding;
        if (h === null || h.belief !== t.belief) return;
        this.endBelief(this.nowTrue);
        this.enqueue({ kind: "release", lock: h.lock, token: h.token });
        return;
      }
      case "poll":
        if (this.waiting?.lock !== t.lock || this.lease === null) return;
        this.env.sendToNode(this.config.id, this.target, { kind: "read", reqId: this.reqNext++, lock: t.lock });
        this.env.schedule(this.config.id, this.config.pollMs, t);
        return;
      case "resend":
        if (this.inFlight?.reqId === t.reqId) {
          if (t.rotate) this.target = this.otherNode();
          this.send();
        }
        return;
    }
  }

  private work(): void {
    // No lease: the grant's completion schedules work; holding or waiting: the release does.
    if (this.lease === null || this.holding !== null || this.waiting !== null) return;
    if (this.inFlight !== null || this.queue.length > 0) return this.schedule("work", 20);
    if (this.random.nextFloat() < this.config.revokeProbability) {
      this.enqueue({ kind: "revoke", leaseId: this.lease.id });
      return;
    }
    const lock = this.config.lockNames[this.random.nextInt(this.config.lockNames.length)] ?? "x";
    this.enqueue({ kind: "acquire", lock, leaseId: this.lease.id });
  }

  /** `check` false: the write was decided before an unnoticed pause and goes out unchecked. */
  private write(belief: number, check: boolean): void {
    const h = this.holding;
    if (h === null || h.belief !== belief) return;
    if (check) {
      if (!this.believes()) return;
      const pauseMs = this.env.unawarePauseMs(this.config.id);
      if (pauseMs > 0) {
        this.env.schedule(this.config.id, 0, { kind: "writeAfterPause", belief }); // runs when it wakes
        return;
      }
    }
    this.env.checker.actOnBelief(h.lock, h.belief);
    this.env.sendToGuard(this.config.id, { resource: h.lock, token: h.token, clientId: this.config.id, writeNo: ++this.writeNo });
    this.env.schedule(this.config.id, this.config.writeEveryMs, { kind: "write", belief });
  }

  /** Checks the deadline on the local clock; past it, every belief ends (at the deadline). */
  private believes(): boolean {
    if (this.lease !== null && this.localNow() < this.lease.deadlineLocal) return true;
    this.leaseLost();
    return false;
  }

  // ------------------------------------------------------------------ replies

  onReply(r: ClientReply): void {
    if (r.kind === "read") return this.onRead(r.lock, r.outcome);
    const f = this.inFlight;
    if (f === null || f.seq !== r.seq) return; // a late answer to a finished request
    const o = r.outcome;
    if (o.kind === "applied") return this.complete(f, o.result);
    if (r.reqId !== f.reqId) return;
    if (o.kind === "notLeader" && o.hint !== null) this.target = o.hint.leaderId;
    else this.target = this.otherNode();
    this.env.schedule(this.config.id, o.kind === "unavailable" ? 30 : 10, { kind: "resend", reqId: f.reqId, rotate: false });
  }

  private onRead(lock: string, o: ReadOutcome<MutexStatus>): void {
    if (o.kind === "notLeader") {
      this.target = o.hint?.leaderId ?? this.otherNode();
      return;
    }
    const w = this.waiting;
    if (o.kind !== "read" || w === null || w.lock !== lock) return;
    const holder = o.value.holder;
    if (holder !== null && holder.leaseId === w.leaseId) {
      this.waiting = null;
      this.onGranted(lock, holder.token, w.leaseId);
    } else if (!o.value.waiters.some((x) => x.leaseId === w.leaseId)) {
      this.waiting = null; // our lease left the queue (it is gone): start over
      this.schedule("work", 1);
    }
  }

  private complete(f: InFlight, result: ApplyResult): void {
    this.inFlight = null;
    const op = f.op;
    switch (op.kind) {
      case "grant":
        if (result.ok && result.kind === "LeaseGrant") {
          this.lease = { id: result.leaseId, deadlineLocal: this.deadlineFrom(f.t0Local) };
          this.env.schedule(this.config.id, this.config.ttlMs / 3, { kind: "keepalive", leaseId: result.leaseId });
          this.scheduleDeadline();
          this.schedule("work", this.random.nextFloat() * this.config.thinkMsMax);
        } else this.enqueue({ kind: "grant" });
        break;
      case "keepalive":
        if (this.lease?.id !== op.leaseId) break;
        if (result.ok && result.kind === "LeaseKeepAlive" && result.renewed.some((x) => x.leaseId === op.leaseId)) {
          this.lease.deadlineLocal = Math.max(this.lease.deadlineLocal, this.deadlineFrom(f.t0Local));
          const h = this.holding;
          if (h !== null) this.env.checker.extendBelief(h.lock, h.belief, this.toTrue(this.lease.deadlineLocal));
          this.scheduleDeadline();
        } else this.leaseLost();
        break;
      case "acquire":
        if (result.ok && result.kind === "LockAcquire") {
          if (result.status === "granted") this.onGranted(op.lock, result.token, op.leaseId);
          else if (this.lease?.id === op.leaseId) {
            this.waiting = { lock: op.lock, leaseId: op.leaseId };
            this.env.schedule(this.config.id, this.config.pollMs, { kind: "poll", lock: op.lock });
          }
        } else if (!result.ok && (result.code === "LEASE_EXPIRED" || result.code === "LEASE_NOT_FOUND")) {
          if (this.lease?.id === op.leaseId) this.leaseLost();
        } else this.schedule("work", this.config.thinkMsMax);
        break;
      case "revoke":
        if (this.config.staleLeaseProbe && result.ok && this.random.nextFloat() < 0.5) {
          const lock = this.config.lockNames[0] ?? "x";
          this.enqueue({ kind: "staleAcquire", lock, leaseId: op.leaseId });
        }
        this.enqueue({ kind: "grant" });
        break;
      case "release":
      case "staleAcquire":
        this.schedule("work", this.random.nextFloat() * this.config.thinkMsMax);
        break;
    }
    this.pump();
  }

  private onGranted(lock: string, token: number, leaseId: number): void {
    this.grantsReceived++;
    this.lastGrantAtMs = this.nowTrue;
    if (this.lease?.id !== leaseId || !this.believes() || this.holding !== null) {
      // Held by a lease we no longer trust (or twice): never act on it, hand it back.
      this.enqueue({ kind: "release", lock, token });
      return;
    }
    const lease = this.lease;
    const belief = this.env.checker.openBelief(this.config.id, lock, token, this.toTrue(lease.deadlineLocal));
    this.holding = { lock, token, belief, leaseId };
    this.write(belief, true);
    this.env.schedule(this.config.id, 1 + this.random.nextFloat() * this.config.holdMsMax, { kind: "release", belief });
  }

  // ------------------------------------------------------------------ lease and beliefs

  private deadlineFrom(t0Local: number): number {
    return t0Local + this.config.ttlMs * (1 - this.config.rho) - this.config.marginMs;
  }

  private scheduleDeadline(): void {
    const lease = this.lease;
    if (lease === null) return;
    this.env.schedule(this.config.id, Math.max(0, lease.deadlineLocal - this.localNow()), { kind: "deadline", leaseId: lease.id });
  }

  private endBelief(atTrue: number): void {
    const h = this.holding;
    if (h === null) return;
    this.env.checker.closeBelief(h.lock, h.belief, atTrue);
    this.holding = null;
  }

  private leaseLost(): void {
    const lease = this.lease;
    if (lease === null) return;
    this.leasesLost++;
    this.endBelief(this.toTrue(lease.deadlineLocal));
    this.lease = null;
    this.waiting = null;
    // Drop queued work of the old lease; a release of a token we got stays (it frees the lock).
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]?.kind !== "release") this.queue.splice(i, 1);
    this.enqueue({ kind: "grant" });
  }

  // ------------------------------------------------------------------ requests

  private enqueue(op: Op): void {
    this.queue.push(op);
    this.pump();
  }

  private pump(): void {
    if (this.inFlight !== null) return;
    const op = this.queue.shift();
    if (op === undefined) return;
    const seq = this.seqNext++;
    const command = this.commandOf(op, seq);
    // t0 on the client's own clock, before the first attempt leaves (DESIGN.md §3 "Client view").
    this.inFlight = { op, seq, command, t0Local: this.localNow(), reqId: 0 };
    this.send();
  }

  private send(): void {
    const f = this.inFlight;
    if (f === null) return;
    f.reqId = this.reqNext++;
    this.env.sendToNode(this.config.id, this.target, { kind: "submit", reqId: f.reqId, command: f.command });
    this.env.schedule(this.config.id, this.config.attemptTimeoutMs, { kind: "resend", reqId: f.reqId, rotate: true });
  }

  private commandOf(op: Op, seq: number): ClientCommand {
    const base = { clientId: this.config.id, seq };
    switch (op.kind) {
      case "grant":
        return { kind: "LeaseGrant", ...base, ttlMs: this.config.ttlMs };
      case "keepalive":
        return { kind: "LeaseKeepAlive", ...base, leaseIds: [op.leaseId] };
      case "acquire":
        return { kind: "LockAcquire", ...base, name: op.lock, leaseId: op.leaseId, wait: true };
      case "release":
        return { kind: "LockRelease", ...base, name: op.lock, token: op.token };
      case "revoke":
        return { kind: "LeaseRevoke", ...base, leaseId: op.leaseId };
      case "staleAcquire":
        return { kind: "LockAcquire", ...base, name: op.lock, leaseId: op.leaseId, wait: false };
    }
  }

  private schedule(kind: "work", localMs: number): void {
    this.env.schedule(this.config.id, localMs, { kind });
  }

  private otherNode(): NodeId {
    const others = this.config.nodes.filter((n) => n !== this.target);
    return others[this.random.nextInt(others.length)] ?? this.target;
  }
}
