// A simulated lock client that IS the SDK: a production TenureClient (client-sdk/) whose clock is
// this client's drifting simulated clock, whose timers are simulation events on that clock, and
// whose wire is the simulated gRPC of sim_client.ts. The SDK's own code decides everything the
// lease protocol depends on: t0 before the first attempt, expiresAt = t0 + ttl(1-rho) - margin,
// the deadline timer and jeopardy, the coalesced KeepAlive stream and its timeouts, retries with
// the same (client_id, seq), leader discovery, the blocking Acquire, the fenced Release. A timing
// bug in the SDK therefore shows up here as a mutual-exclusion or guard violation.
//
// On top of it, the application a careful SDK user writes (client-sdk/README.md "Safety rules"):
// grant a lease and keep it; acquire one of the locks with it (wait=true, cancelled by the lease's
// signal); while `lock.signal` has not aborted and the clock is before `lock.validUntil`, write to
// the guarded store with the token, checked before every write; stop, then release; sometimes
// revoke the lease (then sometimes probe with the revoked lease id, an out-of-date client). A
// lease in jeopardy is waited out (renewed: acquire again; lost: grant a new one).
//
// What the oracle (lock_checkers.ts) is told, in true time: a belief opens when a lock is granted
// and the client may act on it, its deadline is the SDK's validUntil (followed after every event,
// so renewals extend it), and it closes when the client stops (lock.signal aborts, or release).
//
// Determinism: the SDK is async. Every event of this client (a timer, an arrival) runs its
// callbacks, and the simulation drains the microtask queue before the next event (lock_sim.ts),
// so the SDK's promise continuations run at the simulated instant that caused them, in the same
// order on every run. Random draws come from the seed (the SDK's backoff jitter included).

import { TenureClient, type ClientRuntime } from "../../client-sdk/client.ts";
import { TenureError } from "../../client-sdk/errors.ts";
import type { Lease } from "../../client-sdk/lease.ts";
import type { Lock } from "../../client-sdk/lock.ts";
import type { TimerHandle, Timers } from "../../client-sdk/timers.ts";
import type { Wire } from "../../client-sdk/transport.ts";
import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { LockChecker } from "./lock_checkers.ts";
import { endpointOf } from "./sim_client.ts";
import type { GuardWrite } from "./sim_guard.ts";

export interface SdkClientConfig {
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
  readonly attemptTimeoutMs: number;
  readonly revokeProbability: number;
  /** After a revoke, sometimes acquire with the revoked lease id (an out-of-date client). */
  readonly staleLeaseProbe: boolean;
  /**
   * The application's deadline on one blocking acquire (local ms; Infinity: none, the default).
   * It was a workaround: the api layer's wait (server/api/wait_grant.ts) learnt of its grant only
   * from state-machine events, and a member that catches up by snapshot restore emits none for
   * the entries the snapshot covers, so a waiter queued on it was never answered. The node now
   * tells its waiters of a restore (RaftNode restore listeners) and the wait re-checks the
   * restored state; runLockSeed({ acquireDeadline: true }) still gives 4 TTLs. At a deadline the
   * SDK ends the call with OUTCOME_UNKNOWN and releases a grant it finds in Status (lock.ts).
   */
  readonly acquireTimeoutMs: number;
  /** The SDK's deliberate bug (client.ts ClientRuntime.testOnlyBugLeaseStartAfterReply). */
  readonly bugLeaseStartAfterReply: boolean;
}

export interface SdkClientEnv {
  readonly checker: LockChecker;
  /** True simulated time. */
  nowMs(): number;
  /** Runs fn after trueMs as an event of `client` (deferred while it is paused); fn: did it run anything. */
  schedule(client: string, trueMs: number, fn: () => boolean): void;
  /** The simulated gRPC for this client (sim_client.ts), on its timers. */
  wire(client: string, timers: Timers): Wire;
  sendToGuard(client: string, write: GuardWrite): void;
  /** >0: the client is paused now for that long (true ms) without noticing (negative control). */
  unawarePauseMs(client: string): number;
  /** An exception escaped the client's code: a bug of the simulation or the SDK. */
  fail(error: unknown): void;
}

interface Holding {
  readonly lock: Lock;
  readonly belief: number;
  validUntil: number;
}

/** A timer of this client: fires once unless cleared first. */
interface SimTimer {
  live: boolean;
}

/**
 * Simulated time is a float; a timer due at local time L fires at the true time whose local time
 * is at least L (never a rounding error early, which the SDK's "fired early, re-arm" path would
 * turn into a loop at one instant).
 */
const LATE_BY_MS = 1e-6;

export class SdkSimClient {
  readonly timers: Timers;
  readonly client: TenureClient;
  grantsReceived = 0;
  lastGrantAtMs = -1;
  leasesLost = 0;
  private holding: Holding | null = null;
  private writeNo = 0;

  constructor(
    readonly config: SdkClientConfig,
    private readonly env: SdkClientEnv,
    private readonly random: SeededRandom,
  ) {
    this.timers = {
      setTimeout: (fn, ms) => this.setTimer(fn, ms),
      clearTimeout: (handle) => this.clearTimer(handle),
    };
    const sdkRandom = random.fork();
    // Spread the clients' first guess of the leader over the members, as separate processes would.
    const first = random.nextInt(config.nodes.length);
    const endpoints = [...config.nodes.slice(first), ...config.nodes.slice(0, first)].map(endpointOf);
    const runtime: ClientRuntime = {
      timers: this.timers,
      wire: env.wire(config.id, this.timers),
      testOnlyBugLeaseStartAfterReply: config.bugLeaseStartAfterReply,
    };
    this.client = new TenureClient(
      {
        endpoints,
        clientId: config.id,
        rho: config.rho,
        marginMs: config.marginMs,
        attemptTimeoutMs: config.attemptTimeoutMs,
        random: () => sdkRandom.nextFloat(),
        clock: () => this.localNow(),
      },
      runtime,
    );
  }

  localNow(): number {
    return this.config.offsetMs + this.config.rate * this.env.nowMs();
  }

  private toTrue(local: number): number {
    return (local - this.config.offsetMs) / this.config.rate;
  }

  start(): void {
    this.main().catch((error: unknown) => this.env.fail(error));
  }

  /** It believes it holds a lock now (the simulation aims reply pauses at holders). */
  get holdsLock(): boolean {
    return this.holding !== null;
  }

  /** After each event of this client: the oracle follows the holder's deadline (renewals move it). */
  observe(): void {
    const h = this.holding;
    if (h === null || h.lock.validUntil === h.validUntil) return;
    h.validUntil = h.lock.validUntil;
    this.env.checker.extendBelief(h.lock.name, h.belief, this.toTrue(h.validUntil));
  }

  // ------------------------------------------------------------------ timers on the local clock

  private setTimer(fn: () => void, ms: number): TimerHandle {
    const t: SimTimer = { live: true };
    const localMs = Number.isNaN(ms) ? 0 : Math.max(0, ms);
    if (localMs === Number.POSITIVE_INFINITY) return t; // never (the SDK sets none, but be exact)
    this.env.schedule(this.config.id, localMs / this.config.rate + LATE_BY_MS, () => {
      if (!t.live) return false;
      t.live = false;
      fn();
      return true;
    });
    return t;
  }

  private clearTimer(handle: TimerHandle | undefined): void {
    if (handle !== undefined && handle !== null) (handle as SimTimer).live = false;
  }

  private sleep(localMs: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, localMs));
  }

  private think(): Promise<void> {
    return this.sleep(1 + this.random.nextFloat() * this.config.thinkMsMax);
  }

  // ------------------------------------------------------------------ the application

  private async main(): Promise<void> {
    for (;;) {
      const lease = await this.grant();
      await this.useLease(lease);
    }
  }

  private async grant(): Promise<Lease> {
    for (;;) {
      try {
        return await this.client.grantLease({ ttlMs: this.config.ttlMs });
      } catch {
        // Deadline or OUTCOME_UNKNOWN: a lease granted but never learned of expires on its own.
        await this.think();
      }
    }
  }

  private async useLease(lease: Lease): Promise<void> {
    void lease.lost.then(() => {
      if (lease.state === "lost") this.leasesLost++;
    });
    while (!lease.ended) {
      await this.think();
      if (lease.ended) return;
      if (lease.signal.aborted) {
        await this.renewedOrLost(lease); // jeopardy
        continue;
      }
      if (this.random.nextFloat() < this.config.revokeProbability) return this.revoke(lease);
      const name = this.config.lockNames[this.random.nextInt(this.config.lockNames.length)] ?? "x";
      let lock: Lock;
      try {
        const deadline = Number.isFinite(this.config.acquireTimeoutMs) ? { timeoutMs: this.config.acquireTimeoutMs } : {};
        lock = await this.client.lock(name, { lease, wait: true }, { signal: lease.signal, ...deadline });
      } catch (error) {
        const e = TenureError.from(error);
        if (e.code === "LEASE_EXPIRED" || e.code === "LEASE_NOT_FOUND") {
          // The server no longer has the lease (the keepalive loop would learn it later): drop it.
          this.leasesLost++;
          await lease.revoke().catch(() => {});
          return;
        }
        continue;
      }
      this.grantsReceived++;
      this.lastGrantAtMs = this.env.nowMs();
      await this.hold(lock);
    }
  }

  private renewedOrLost(lease: Lease): Promise<void> {
    return new Promise((resolve) => {
      const off = lease.on("renewed", () => {
        off();
        resolve();
      });
      void lease.lost.then(() => {
        off();
        resolve();
      });
    });
  }

  /** Writes while the SDK says the lock may be used; stops, then releases. */
  private async hold(lock: Lock): Promise<void> {
    if (this.mayAct(lock)) {
      const c = this.config;
      const belief = this.env.checker.openBelief(c.id, lock.name, lock.token, this.toTrue(lock.validUntil));
      const h: Holding = { lock, belief, validUntil: lock.validUntil };
      this.holding = h;
      const stop = (): void => this.endBelief(h);
      lock.signal.addEventListener("abort", stop, { once: true });
      const releaseAt = this.localNow() + 1 + this.random.nextFloat() * c.holdMsMax;
      // A write after every wait, the last one at the release time: whenever the SDK says the
      // lock may be used, the application uses it (after a pause too).
      let holding = await this.write(h);
      while (holding && this.localNow() < releaseAt) {
        await this.sleep(Math.min(c.writeEveryMs, releaseAt - this.localNow()));
        holding = await this.write(h);
      }
      lock.signal.removeEventListener("abort", stop);
      this.endBelief(h);
    }
    // A grant the client may not act on (its deadline passed meanwhile) is handed back too.
    await lock.release().catch(() => {});
  }

  /** The check of every guarded write: the lock's signal, and its deadline on the local clock. */
  private mayAct(lock: Lock): boolean {
    return !lock.signal.aborted && this.localNow() < lock.validUntil;
  }

  private async write(h: Holding): Promise<boolean> {
    if (this.holding !== h || !this.mayAct(h.lock)) return false;
    if (this.env.unawarePauseMs(this.config.id) > 0) {
      // Paused right after the check without noticing (negative control): the write below goes
      // out when the client wakes, unchecked, as a stale write of a real paused process would.
      await this.sleep(0);
    }
    this.env.checker.actOnBelief(h.lock.name, h.belief);
    this.env.sendToGuard(this.config.id, { resource: h.lock.name, token: h.lock.token, clientId: this.config.id, writeNo: ++this.writeNo });
    return true;
  }

  private endBelief(h: Holding): void {
    if (this.holding !== h) return;
    this.observe();
    this.env.checker.closeBelief(h.lock.name, h.belief, this.env.nowMs());
    this.holding = null;
  }

  private async revoke(lease: Lease): Promise<void> {
    try {
      await lease.revoke();
    } catch {
      return;
    }
    if (this.config.staleLeaseProbe && this.random.nextFloat() < 0.5) {
      // The SDK refuses a revoked lease locally, so the out-of-date client goes through the SDK's
      // retry engine directly; the server must answer LEASE_NOT_FOUND.
      const name = this.config.lockNames[0] ?? "x";
      await this.client.rpc.mutate("Lock", "Acquire", { name, leaseId: String(lease.id), wait: false, timeoutMs: 0 }).catch(() => {});
    }
  }
}
