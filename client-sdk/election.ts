// Leader elections: campaign (blocking, FIFO), the leadership token bound to a signal, proclaim,
// resign, a linearizable leader() read, and observe(): an async iterator of leader changes that
// follows Raft failovers by reconnecting to the new leader (Observe is served by the Raft leader
// and starts with the current leader, so a reconnect re-reads it; repeats are filtered out).

import { backoffDelayMs, type RandomSource } from "./backoff.ts";
import { TenureError } from "./errors.ts";
import { safeInt, type Lease } from "./lease.ts";
import { cleanupAfterFailedGrant, leaseFor, type GrantHost } from "./lock.ts";
import { linkSignals, sleep, type CallOptions } from "./signals.ts";
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
        { blocking: true, ...(opts.signal ? { signal: opts.signal } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) },
      );
    } catch (error) {
      const e = TenureError.from(error);
      await cleanupAfterFailedGrant(this.host.rpc, lease, owned, e, "Election", this.name);
      throw e;
    }
    const leader = (res["leader"] ?? {}) as Message;
    return new Leadership(this.host, this.name, safeInt(leader["token"], "token"), lease, owned);
  }

  /** Linearizable read of the current leader (null: nobody leads). */
  async leader(opts: CallOptions = {}): Promise<LeaderInfo | null> {
    return decodeLeader(await this.host.rpc.read("Election", "Leader", { name: this.name }, opts));
  }

  /**
   * Every leader change (null: nobody leads), starting with the current leader, until `signal`
   * aborts, `timeoutMs` passes or the client closes (then the iteration just ends).
   */
  async *observe(opts: CallOptions = {}): AsyncGenerator<LeaderInfo | null, void, undefined> {
    const timers = this.host.rpc.timers;
    const linked = linkSignals([opts.signal, this.host.closed], opts.timeoutMs, timers);
    const t = this.host.transport;
    let last: string | undefined;
    try {
      for (let failures = 0; !linked.signal.aborted; ) {
        const endpoint = t.leader;
        const stream = t.serverStream(endpoint, "Election", "Observe", { name: this.name });
        const onAbort = (): void => stream.cancel();
        linked.signal.addEventListener("abort", onAbort, { once: true });
        try {
          for await (const m of stream as AsyncIterable<Message>) {
            failures = 0;
            const info = decodeLeader(m);
            // A reconnect starts with the current leader again: yield changes only.
            const key = info ? `${info.token}/${info.value}` : "none";
            if (key === last) continue;
            last = key;
            yield info;
          }
        } catch (error) {
          if (linked.signal.aborted) return;
          const e = TenureError.from(error);
          if (e.code === "NOT_LEADER" && e.leaderHint && e.leaderHint !== endpoint) {
            t.setLeader(e.leaderHint);
            continue;
          }
          t.rotate(endpoint);
        } finally {
          linked.signal.removeEventListener("abort", onAbort);
          stream.cancel();
        }
        await sleep(backoffDelayMs(failures++, this.host.random), linked.signal, timers).catch(() => {});
      }
    } finally {
      linked.cleanup();
    }
  }
}
