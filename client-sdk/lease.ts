// A lease as its holder sees it. Validity is the CLIENT's deadline on its own monotonic clock,
// t0 + ttl * (1 - rho) - margin from the send time of the grant or renewal (validity.ts); the
// server's times are never compared with it. The deadline timer, not the keepalive stream, decides
// when to stop: a silent or half-open stream cannot keep a holder believing it still holds.
//
// States: active -> jeopardy (deadline passed without a renewal: `signal` aborts NOW and fenced work
// must stop) -> active again if a renewal lands within the grace period, or lost (grace over, or
// the server said LEASE_EXPIRED / LEASE_NOT_FOUND). revoke() -> revoked.
//
// Signals never un-abort. Recovering from jeopardy gives the lease a FRESH `signal` and emits
// "renewed"; work started under the old signal stays stopped and must re-check `lease.signal`
// before it resumes. Locks and campaigns keep the signal they were granted with, so a lock handle
// whose signal aborted is finished: acquire again (same lease -> same token if still held).

import { TenureError } from "./errors.ts";
import type { Rpc } from "./rpc.ts";
import type { CallOptions } from "./signals.ts";
import type { TimerHandle } from "./timers.ts";
import { clientDeadlineMs, renewAtMs } from "./validity.ts";

export type LeaseState = "active" | "jeopardy" | "lost" | "revoked";
export type LeaseEvent = "jeopardy" | "renewed" | "lost";

/** What a lease needs from its client (kept narrow so tests can drive a lease by hand). */
export interface LeaseHost {
  /** Its clock and timers are the lease's (rpc.clock, rpc.timers). */
  readonly rpc: Rpc;
  readonly rho: number;
  readonly marginMs: number;
  readonly graceMs: number | undefined;
  /** Stop renewing this lease (lost or revoked). */
  forget(lease: Lease): void;
}

export class Lease {
  readonly id: number;
  readonly ttlMs: number;
  #state: LeaseState = "active";
  #expiresAt: number;
  #lastRenewT0: number;
  #controller = new AbortController();
  #timer: TimerHandle | undefined;
  #graceTimer: TimerHandle | undefined;
  #listeners = new Map<LeaseEvent, Set<(e: TenureError | undefined) => void>>();
  #resolveLost!: (e: TenureError) => void;
  /** Resolves (never rejects) once the lease is lost or revoked, with the reason. */
  readonly lost: Promise<TenureError>;

  constructor(
    private readonly host: LeaseHost,
    init: { readonly id: number; readonly ttlMs: number; readonly t0Ms: number; readonly serverRho: number },
  ) {
    this.id = init.id;
    this.ttlMs = init.ttlMs;
    this.lost = new Promise((resolve) => (this.#resolveLost = resolve));
    this.#lastRenewT0 = init.t0Ms;
    this.#expiresAt = this.deadlineFrom(init.t0Ms, init.ttlMs, init.serverRho);
    this.arm();
  }

  get state(): LeaseState {
    return this.#state;
  }

  /** Monotonic ms (the client's clock: performance.now() by default) until which the holder may act. */
  get expiresAt(): number {
    return this.#expiresAt;
  }

  /** Aborts at expiresAt unless a renewal extended it, and on loss or revoke. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** When the next renewal is due (for the keepalive loop). */
  get renewAt(): number {
    return renewAtMs(this.#lastRenewT0, this.ttlMs);
  }

  get ended(): boolean {
    return this.#state === "lost" || this.#state === "revoked";
  }

  on(event: LeaseEvent, listener: (e: TenureError | undefined) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Ends the lease on the server; its locks and elections are handed on at once. Idempotent. */
  async revoke(opts: CallOptions = {}): Promise<void> {
    if (this.#state !== "revoked" && this.#state !== "lost") {
      this.end("revoked", new TenureError("CANCELLED", `lease ${this.id} revoked`));
    }
    try {
      await this.host.rpc.mutate("Lease", "Revoke", { leaseId: String(this.id) }, opts);
    } catch (error) {
      const e = TenureError.from(error);
      if (e.code !== "LEASE_NOT_FOUND") throw e; // already gone: the goal is reached
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.revoke();
  }

  /** @internal A renewal sent at t0Ms was applied (keepalive loop). */
  renewed(t0Ms: number, ttlMs: number, serverRho: number): void {
    if (this.ended) return;
    this.#lastRenewT0 = Math.max(this.#lastRenewT0, t0Ms);
    const deadline = this.deadlineFrom(t0Ms, ttlMs, serverRho);
    if (deadline <= this.#expiresAt) return;
    this.#expiresAt = deadline;
    if (this.#state === "jeopardy") {
      if (this.host.rpc.clock() >= deadline) return; // a late reply that cannot help
      this.host.rpc.timers.clearTimeout(this.#graceTimer);
      this.#state = "active";
      this.#controller = new AbortController();
      this.emit("renewed", undefined);
    }
    this.arm();
  }

  /** @internal The server answered LEASE_EXPIRED or LEASE_NOT_FOUND for this lease. */
  failed(error: TenureError): void {
    if (!this.ended) this.end("lost", error);
  }

  /** @internal The client closed: stop everything without revoking (the server expires it). */
  abandon(error: TenureError): void {
    if (!this.ended) this.end("lost", error);
  }

  private deadlineFrom(t0Ms: number, ttlMs: number, serverRho: number): number {
    // The larger rho is the safer one: the server's promise is made with its own.
    return clientDeadlineMs({ t0Ms, ttlMs, rho: Math.max(this.host.rho, serverRho), marginMs: this.host.marginMs });
  }

  private arm(): void {
    const timers = this.host.rpc.timers;
    timers.clearTimeout(this.#timer);
    const delay = Math.max(0, this.#expiresAt - this.host.rpc.clock());
    this.#timer = timers.setTimeout(() => this.onDeadline(), delay);
  }

  private onDeadline(): void {
    if (this.ended || this.#state === "jeopardy") return;
    const now = this.host.rpc.clock();
    if (now < this.#expiresAt) return this.arm(); // extended meanwhile (timers may fire early)
    this.#state = "jeopardy";
    const error = new TenureError("LEASE_LOST", `lease ${this.id} passed its validity without a renewal (jeopardy)`);
    this.#controller.abort(error);
    this.emit("jeopardy", error);
    // Keep renewing for the grace period: the server holds the lease at least ttl * (1 + rho)
    // after its last renewal, so a renewal may still land.
    const graceMs = this.host.graceMs ?? this.ttlMs;
    this.#graceTimer = this.host.rpc.timers.setTimeout(() => {
      if (this.#state === "jeopardy")
        this.end("lost", new TenureError("LEASE_LOST", `lease ${this.id} lost: no renewal within ${graceMs} ms of grace`));
    }, graceMs);
  }

  private end(state: "lost" | "revoked", error: TenureError): void {
    this.#state = state;
    this.host.rpc.timers.clearTimeout(this.#timer);
    this.host.rpc.timers.clearTimeout(this.#graceTimer);
    this.#controller.abort(error);
    this.host.forget(this);
    this.#resolveLost(error);
    if (state === "lost") this.emit("lost", error);
  }

  private emit(event: LeaseEvent, e: TenureError | undefined): void {
    for (const fn of this.#listeners.get(event) ?? []) {
      try {
        fn(e);
      } catch {
        // A listener's bug must not stop the lease's own bookkeeping.
      }
    }
  }
}

/** Decodes a uint64 field that the proto loader gives as a decimal string. */
export function safeInt(value: unknown, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new TenureError("INTERNAL", `${what} out of range: ${String(value)}`);
  return n;
}
