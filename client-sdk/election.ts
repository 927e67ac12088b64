// Leader elections: campaign (blocking, FIFO), the leadership token bound to a signal, proclaim,
// resign, a linearizable leader() read, and observe(): an async iterator of leader changes that
// follows Raft failovers by reconnecting to the new leader (Observe is served by the Raft leader
// and starts with the current leader, so a reconnect re-reads it; repeats are filtered out).

import { backoffDelayMs, type RandomSource } from "./backoff.ts";
import { TenureError } from "./errors.ts";
import { safeInt, type Lease } from "./lease.ts";
import { followLeaderStream } from "./leader_stream.ts";
import { cleanupAfterFailedGrant, leaseFor, withdrawal, type GrantHost } from "./lock.ts";
import { linkSignals, sleep, type CallOptions } from "./signals.ts";
import type { Timers } from "./timers.ts";
import type { Message, Transport } from "./transport.ts";

export interface LeaderInfo {
  readonly name: string;
  readonly leaseId: number;
  readonly token: number;
  readonly value: string;
}

export interface CampaignOptions {
  /** Campaign with this lease (the caller keeps it); otherwise the SDK grants and revokes one. */
  readonly lease?: Lease;
  /** TTL of the SDK-granted lease (default 10000). */
  readonly ttlMs?: number;
  /** Give up after this long (server-side; the campaign is withdrawn). 0: no limit. */
  readonly timeoutMs?: number;
}

/** election.run(): Curator's LeaderSelector. */
export interface RunOptions {
  /** TTL of the lease granted for each campaign (default 10000). */
  readonly ttlMs?: number;
  /** Campaign again after the work returns or leadership is lost (default true); false: lead once. */
  readonly requeue?: boolean;
  /** Stops the loop: the current campaign is withdrawn, the work's leadership signal aborts. */
  readonly signal?: AbortSignal;
}

/** Codes after which a campaign is tried again (with backoff) instead of ending run(). */
const CAMPAIGN_RETRY: ReadonlySet<string> = new Set([
  "UNAVAILABLE",
  "NO_LEADER",
  "NOT_LEADER",
  "OUTCOME_UNKNOWN",
  "LEASE_LOST",
  "LEASE_EXPIRED",
  "LEASE_NOT_FOUND",
  "DEADLINE_EXCEEDED",
  "INTERNAL",
]);

export interface ElectionHost extends GrantHost {
  readonly transport: Transport;
  readonly random: RandomSource;
  readonly closed: AbortSignal;
}

export class Leadership {
  readonly #abort = new AbortController();
  readonly #linked: { readonly signal: AbortSignal; readonly cleanup: () => void };
  #resign: Promise<boolean> | null = null;

  constructor(
    private readonly host: ElectionHost,
    readonly name: string,
    readonly token: number,
    readonly lease: Lease,
    private readonly ownsLease: boolean,
  ) {
    this.#linked = linkSignals([lease.signal, this.#abort.signal]);
  }

  /** Aborts when leadership may be lost (lease jeopardy, loss, revoke) or after resign(). */
  get signal(): AbortSignal {
    return this.#linked.signal;
  }

  /** Replaces the leader's value under the same token (NOT_HOLDER if no longer leader). */
  async proclaim(value: string, opts: CallOptions = {}): Promise<void> {
    await this.host.rpc.mutate("Election", "Proclaim", { name: this.name, token: String(this.token), value }, opts);
  }

  /** Fenced and idempotent; the next campaigner leads at once. Resolves true if this resigned. */
  resign(opts: CallOptions = {}): Promise<boolean> {
    this.#resign ??= (async () => {
      this.#abort.abort(new TenureError("CANCELLED", `resigned from ${this.name}`));
      this.#linked.cleanup();
      try {
        const res = await this.host.rpc.mutate("Election", "Resign", { name: this.name, token: String(this.token) }, opts);
        return res["resigned"] === true;
      } finally {
        if (this.ownsLease) await this.lease.revoke(opts).catch(() => {});
      }
    })();
    return this.#resign;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.resign();
  }
}

function decodeLeader(m: Message): LeaderInfo | null {
  if (m["hasLeader"] === false) return null;
  const l = (m["leader"] ?? {}) as Message;
  return {
    name: String(l["name"] ?? ""),
    leaseId: safeInt(l["leaseId"] ?? 0, "leaseId"),
    token: safeInt(l["token"] ?? 0, "token"),
    value: String(l["value"] ?? ""),
  };
}

export class Election {
  constructor(
    private readonly host: ElectionHost,
    readonly name: string,
  ) {}

  /** Blocks until this lease leads; returns the leadership with its token. */
  async campaign(value: string, options: CampaignOptions = {}, opts: CallOptions = {}): Promise<Leadership> {
    const { lease, owned } = await leaseFor(this.host, options.lease, options.ttlMs, opts);
    const serverTimeoutMs = options.timeoutMs ?? 0;
    const timeoutMs = opts.timeoutMs ?? (serverTimeoutMs > 0 ? serverTimeoutMs + 2_000 : undefined);
    let res: Message;
    try {
      res = await this.host.rpc.mutate(
        "Election",
        "Campaign",
        { name: this.name, leaseId: String(lease.id), value, timeoutMs: serverTimeoutMs },
        {
          blocking: true,
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          withdraw: withdrawal(this.host.rpc, "Election", this.name, { name: this.name, leaseId: String(lease.id), value }),
        },
      );
    } catch (error) {
      const e = TenureError.from(error);
      await cleanupAfterFailedGrant(this.host.rpc, lease, owned, e, "Election", this.name);
      throw e;
    }
    const leader = (res["leader"] ?? {}) as Message;
    return new Leadership(this.host, this.name, safeInt(leader["token"], "token"), lease, owned);
  }

  /**
   * Leads again and again (Curator's LeaderSelector): campaigns, runs `work` with the
   * leadership once this member leads (its `signal` aborts when leadership may be lost: stop
   * writing then; pass its `token` to every guarded write), resigns when `work` settles, and
   * with `requeue` (the default) campaigns again, until `options.signal` aborts or the client
   * closes. A campaign that fails for a passing reason (no leader, unreachable, the lease lost)
   * is retried after a backoff. Resolves when stopped; rejects with what `work` threw (after
   * resigning) or with a campaign error that is not passing (PERMISSION_DENIED, ...).
   */
  async run(value: string, work: (leadership: Leadership) => Promise<void> | void, options: RunOptions = {}): Promise<void> {
    const linked = linkSignals([options.signal, this.host.closed]);
    try {
      for (let failures = 0; !linked.signal.aborted; ) {
        let leadership: Leadership;
        try {
          leadership = await this.campaign(value, options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }, { signal: linked.signal });
          failures = 0;
        } catch (error) {
          if (linked.signal.aborted) return;
          const e = TenureError.from(error);
          if (!CAMPAIGN_RETRY.has(e.code)) throw e;
          await sleep(backoffDelayMs(failures++, this.host.random), linked.signal, this.host.rpc.timers).catch(() => {});
          continue;
        }
        const stop = (): void => void leadership.resign().catch(() => {});
        linked.signal.addEventListener("abort", stop, { once: true });
        try {
          await work(leadership);
        } finally {
          linked.signal.removeEventListener("abort", stop);
          await leadership.resign().catch(() => {}); // lost leadership cannot be resigned: fine
        }
        if (options.requeue === false) return;
      }
    } finally {
      linked.cleanup();
    }
  }

  /**
   * Curator's LeaderLatch: campaigns in the background (again after each loss) until close();
   * isLeader() says whether this process holds a leadership whose signal has not aborted.
   */
  latch(value: string, options: Omit<RunOptions, "requeue" | "signal"> = {}): LeaderLatch {
    return new LeaderLatch(this, value, options, this.host.rpc.timers);
  }

  /** Linearizable read of the current leader (null: nobody leads). */
  async leader(opts: CallOptions = {}): Promise<LeaderInfo | null> {
    return decodeLeader(await this.host.rpc.read("Election", "Leader", { name: this.name }, opts));
  }

  /**
   * Every leader change (null: nobody leads), starting with the current leader, until `signal`
   * aborts, `timeoutMs` passes or the client closes (then the iteration just ends).
   */
  observe(opts: CallOptions = {}): AsyncGenerator<LeaderInfo | null, void, undefined> {
    return followLeaderStream(
      { ...this.host, timers: this.host.rpc.timers },
      { service: "Election", method: "Observe", request: { name: this.name } },
      decodeLeader,
      (info) => (info ? `${info.token}/${info.value}` : "none"),
      opts,
    );
  }
}

/**
 * election.latch(): holds leadership whenever it can, via run(). `isLeader()` is a local answer
 * from the leadership's signal (conservative: false as soon as the lease may have been lost);
 * `leadership` is the current one (its token for guarded writes), `whenLeader()` waits for one.
 */
export class LeaderLatch {
  readonly #stop = new AbortController();
  #current: Leadership | null = null;
  #waiters: ((l: Leadership) => void)[] = [];
  /** Settles when the latch has stopped (close(), the client closed, or a non-passing error). */
  readonly done: Promise<void>;

  constructor(
    election: Election,
    value: string,
    options: Omit<RunOptions, "requeue" | "signal">,
    private readonly timers: Timers,
  ) {
    this.done = election.run(
      value,
      async (leadership) => {
        this.#current = leadership;
        for (const w of this.#waiters.splice(0)) w(leadership);
        if (!leadership.signal.aborted) {
          await new Promise<void>((resolve) => leadership.signal.addEventListener("abort", () => resolve(), { once: true }));
        }
        if (this.#current === leadership) this.#current = null;
      },
      { ...options, signal: this.#stop.signal },
    );
    this.done.catch(() => {}); // observed through done; never an unhandled rejection
  }

  /** True while this latch holds a leadership whose signal has not aborted. */
  isLeader(): boolean {
    return this.#current !== null && !this.#current.signal.aborted;
  }

  get leadership(): Leadership | null {
    return this.isLeader() ? this.#current : null;
  }

  /** Resolves with the leadership once this latch leads (at once if it does). */
  whenLeader(opts: CallOptions = {}): Promise<Leadership> {
    const now = this.leadership;
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const linked = linkSignals([opts.signal, this.#stop.signal], opts.timeoutMs, this.timers);
      const waiter = (l: Leadership): void => {
        linked.cleanup();
        resolve(l);
      };
      this.#waiters.push(waiter);
      linked.signal.addEventListener(
        "abort",
        () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          linked.cleanup();
          reject(TenureError.from(linked.signal.reason, "CANCELLED"));
        },
        { once: true },
      );
    });
  }

  /** Stops campaigning and resigns a held leadership; resolves when the latch has stopped. */
  async close(): Promise<void> {
    this.#stop.abort(new TenureError("CANCELLED", "latch closed"));
    await this.done.catch(() => {});
  }
}
