// One KeepAlive stream per client carrying ALL its leases (coalesced: one request, one replicated
// command, renews every lease that is due or nearly due). Requests go one at a time on a client_id
// of its own (the server allows one mutating request in flight per client_id). A request that is
// not answered within its timeout, or a stream that fails, is abandoned and the stream reopened,
// at the NOT_LEADER hint or the next endpoint, after a backoff. Retries use a new seq: renewing
// twice is harmless (lease.proto). Safety never depends on this loop: each Lease's own deadline
// timer aborts its signal.

import { retryDelayMs, type RandomSource } from "./backoff.ts";
import { TenureError } from "./errors.ts";
import { safeInt, type Lease } from "./lease.ts";
import type { Rpc } from "./rpc.ts";
import type { Session, SessionPool } from "./sessions.ts";
import { linkSignals, sleep } from "./signals.ts";
import type { DuplexStream, Message, Transport } from "./transport.ts";

const IDS_PER_REQUEST_MAX = 1024;

export interface KeepAliveOptions {
  readonly rpc: Rpc;
  readonly transport: Transport;
  readonly pool: SessionPool;
  readonly random: RandomSource;
  readonly attemptTimeoutMs: number;
  readonly closed: AbortSignal;
  /**
   * TEST-ONLY DELIBERATE BUG (client.ts ClientRuntime): date a renewal from the arrival of its
   * answer instead of the send of its first attempt. Never set outside the lock simulation.
   */
  readonly testOnlyBugLeaseStartAfterReply?: boolean;
}

interface Pending {
  readonly seq: number;
  readonly resolve: (m: Message) => void;
  readonly reject: (e: TenureError) => void;
}

export class KeepAlive {
  private readonly leases = new Map<number, Lease>();
  private session: Session;
  private stream: DuplexStream | null = null;
  private pending: Pending | null = null;
  private running = false;
  private wake: AbortController = new AbortController();
  /**
   * The request being retried: its seq and the send time of its FIRST attempt. A retry reuses the
   * seq until the server answers it (a new client_id must start at seq 1, and a replay of an
   * applied renewal is only safe to date from the first send).
   */
  private inflight: { readonly seq: number; readonly t0: number; readonly ids: readonly string[] } | null = null;

  constructor(private readonly o: KeepAliveOptions) {
    this.session = o.pool.fresh();
  }

  add(lease: Lease): void {
    this.leases.set(lease.id, lease);
    this.wake.abort(); // the new lease may be due before the loop's current sleep ends
    if (!this.running) {
      this.running = true;
      void this.loop().finally(() => (this.running = false));
    }
  }

  remove(lease: Lease): void {
    this.leases.delete(lease.id);
  }

  close(): void {
    this.wake.abort();
    this.drop(new TenureError("CLOSED", "client closed"));
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.leases.size > 0 && !this.o.closed.aborted) {
      const now = this.o.rpc.clock();
      const next = this.nextRenewAt();
      if (next > now) {
        this.wake = new AbortController();
        // linkSignals, not AbortSignal.any: Node keeps a composite signal that has a listener in
        // a global set until it aborts (gcPersistentSignals), so a loop abandoned mid-sleep (a
        // client dropped without close(); every seed of the lock simulation) kept the whole
        // client alive, and the client's closed signal collected one dependant per sleep.
        const linked = linkSignals([this.wake.signal, this.o.closed]);
        await sleep(next - now, linked.signal, this.o.rpc.timers).catch(() => {});
        linked.cleanup();
        continue;
      }
      try {
        await this.renewOnce();
        failures = 0;
      } catch (error) {
        const e = TenureError.from(error);
        this.drop(e);
        if (e.code === "NOT_LEADER" && e.leaderHint) this.o.transport.setLeader(e.leaderHint);
        else if (e.code === "UNAVAILABLE" || e.code === "NO_LEADER" || e.code === "DEADLINE_EXCEEDED")
          this.o.transport.rotate(this.o.transport.leader);
        // A definitive answer to this seq: the next request takes a new one.
        if (e.reason !== undefined && !e.retryable) this.inflight = null;
        if (e.code === "SESSION_EXPIRED" || e.code === "STALE_SEQUENCE") this.session = this.o.pool.fresh();
        // OVERLOADED: the leader is busy; stay on it (no rotation above) and wait out its hint.
        await sleep(retryDelayMs(e, failures++, this.o.random), this.o.closed, this.o.rpc.timers).catch(() => {});
      }
    }
    this.drop(new TenureError("CANCELLED", "no leases left"));
  }

  /**
   * Sends one request renewing every live lease (most due first) and applies its answer. A retry
   * resends the same request (same ids: a seq must always carry the same command).
   */
  private async renewOnce(): Promise<void> {
    const batch = this.inflight === null ? this.mostDue() : [];
    if (this.inflight === null && batch.length === 0) return;
    const stream = this.open();
    this.inflight ??= { seq: this.session.seqs.next(), t0: this.o.rpc.clock(), ids: batch.map((l) => String(l.id)) };
    const { seq, t0, ids } = this.inflight;
    // Bound the wait well inside the shortest TTL so a silent stream is replaced in time to matter.
    let minTtl = Number.POSITIVE_INFINITY;
    for (const id of ids) minTtl = Math.min(minTtl, this.leases.get(Number(id))?.ttlMs ?? minTtl);
    if (minTtl === Number.POSITIVE_INFINITY) minTtl = 4 * this.o.attemptTimeoutMs;
    const timeoutMs = Math.max(100, Math.min(this.o.attemptTimeoutMs, minTtl / 4));
    const reply = new Promise<Message>((resolve, reject) => {
      this.pending = { seq, resolve, reject };
    });
    const timers = this.o.rpc.timers;
    const timer = timers.setTimeout(
      () => this.pending?.reject(new TenureError("DEADLINE_EXCEEDED", `keepalive seq ${seq} unanswered after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      stream.write({ clientId: this.session.clientId, seq, leaseIds: ids });
      const res = await reply;
      this.inflight = null;
      // The deliberate bug dates the renewal from now, AFTER the round trip: too late by up to the
      // reply's delay, a lost attempt's timeout and a pause while the answer waited.
      const from = this.o.testOnlyBugLeaseStartAfterReply === true ? this.o.rpc.clock() : t0;
      for (const r of (res["renewed"] ?? []) as Message[]) {
        const v = (r["validUntil"] ?? {}) as Message;
        this.leases.get(safeInt(r["leaseId"], "leaseId"))?.renewed(from, safeInt(v["ttlMs"], "ttlMs"), Number(v["rho"] ?? 0));
      }
      for (const f of (res["failed"] ?? []) as Message[]) {
        const id = safeInt(f["leaseId"], "leaseId");
        const reason = f["reason"] === "LEASE_EXPIRED" ? "LEASE_EXPIRED" : "LEASE_NOT_FOUND";
        this.leases.get(id)?.failed(new TenureError(reason, `lease ${id}: ${reason}`, { reason }));
      }
    } finally {
      timers.clearTimeout(timer);
      this.pending = null;
    }
  }

  /** The earliest renewal time of the leases (a loop: a spread of 100,000 arguments overflows the stack). */
  private nextRenewAt(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const lease of this.leases.values()) next = Math.min(next, lease.renewAt);
    return next;
  }

  /**
   * Up to IDS_PER_REQUEST_MAX live leases, the most due first. All of them when they fit (every
   * lease renewed in one request: coalesced); otherwise sorted, but only past the ones due now
   * when those alone fill the request, so a client with 100,000 leases does not sort them all
   * for each of its requests.
   */
  private mostDue(): Lease[] {
    const live: Lease[] = [];
    for (const lease of this.leases.values()) if (!lease.ended) live.push(lease);
    if (live.length <= IDS_PER_REQUEST_MAX) return live;
    const now = this.o.rpc.clock();
    const due = live.filter((l) => l.renewAt <= now);
    const pool = due.length >= IDS_PER_REQUEST_MAX ? due : live;
    return pool.sort((a, b) => a.renewAt - b.renewAt).slice(0, IDS_PER_REQUEST_MAX);
  }

  private open(): DuplexStream {
    if (this.stream) return this.stream;
    const stream = this.o.transport.duplex(this.o.transport.leader, "Lease", "KeepAlive");
    stream.on("data", (m: Message) => {
      const p = this.pending;
      if (p && safeInt(m["seq"], "seq") === p.seq) p.resolve(m);
    });
    const fail = (e: TenureError): void => {
      // Events of a stream already dropped must not touch the request of its successor.
      if (this.stream !== stream) return;
      this.stream = null;
      this.pending?.reject(e);
    };
    stream.on("error", (err: unknown) => fail(TenureError.from(err)));
    stream.on("end", () => fail(new TenureError("UNAVAILABLE", "keepalive stream ended")));
    this.stream = stream;
    return stream;
  }

  /** Abandons the stream (a reply may still be in flight: its seq is simply never used again). */
  private drop(e: TenureError): void {
    const s = this.stream;
    this.stream = null;
    this.pending?.reject(e);
    if (s) {
      s.removeAllListeners("data");
      s.on("error", () => {}); // the cancel below surfaces as an error event
      s.cancel();
    }
  }
}
