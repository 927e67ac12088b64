// TenureClient: the SDK's entry point. Owns the channels, the session pool (one client_id per
// concurrent mutating call, errors.proto), the retry engine and the coalesced keepalive stream.
// Every call takes { signal?, timeoutMs? }; close() aborts them all and stops renewing (leases are
// then left to expire on the server: a closing process cannot promise a revoke arrives).

import { setMaxListeners } from "node:events";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type * as grpc from "@grpc/grpc-js";
import type { BackoffOptions, MonotonicClock, RandomSource } from "./backoff.ts";
import { BearerToken, bearerInterceptor, type BearerTokenOptions } from "./bearer_token.ts";
import { Election } from "./election.ts";
import { checkEndpoints } from "./endpoints.ts";
import { TenureError } from "./errors.ts";
import { followLeaderStream } from "./leader_stream.ts";
import { KeepAlive } from "./keepalive.ts";
import { Lease, safeInt, type LeaseHost } from "./lease.ts";
import { acquireLock, withLock, type Lock, type LockOptions, type LockScope } from "./lock.ts";
import { Rpc } from "./rpc.ts";
import { SessionPool, type Session } from "./sessions.ts";
import type { CallOptions } from "./signals.ts";
import { SYSTEM_TIMERS, type Timers } from "./timers.ts";
import { GrpcWire, type Message, Transport, type TlsOptions, type Wire } from "./transport.ts";

/**
 * A lock's state: "free"; "held" (holderLeaseId and token say by whom); "delayed" (its holder's
 * lease expired and the lock-delay keeps it from being granted yet: the old holder may still be
 * finishing a write that a guard will refuse).
 */
export type LockState = "free" | "held" | "delayed";

export interface LockStatus {
  readonly state: LockState;
  /** 0 when free. */
  readonly holderLeaseId: number;
  /** The holder's fencing token; 0 when free. */
  readonly token: number;
  /** The queued acquirers' leases, first in line first. */
  readonly waiterLeaseIds: number[];
}

const LOCK_STATES: Readonly<Record<string, LockState>> = {
  MUTEX_STATE_FREE: "free",
  MUTEX_STATE_HELD: "held",
  MUTEX_STATE_DELAYED: "delayed",
};

/** The wire's MutexState name as a LockState; a value this SDK does not know is an error, not a guess. */
export function lockStateOf(wire: unknown): LockState {
  const state = LOCK_STATES[String(wire)];
  if (state === undefined) throw new TenureError("INTERNAL", `the server answered lock state ${String(wire)}, unknown to this SDK version`);
  return state;
}

/** A LockStatusResponse (Lock.Status, or one Lock.Watch update's status). */
function decodeLockStatus(res: Message): LockStatus {
  const holder = (res["holder"] ?? null) as Record<string, unknown> | null;
  return {
    state: lockStateOf(res["state"]),
    holderLeaseId: holder ? safeInt(holder["leaseId"], "leaseId") : 0,
    token: holder ? safeInt(holder["token"], "token") : 0,
    waiterLeaseIds: ((res["waiterLeaseIds"] ?? []) as unknown[]).map((x) => safeInt(x, "leaseId")),
  };
}

export interface TenureClientOptions {
  /** Client-API addresses ("host:port") of the members; the leader is discovered. */
  readonly endpoints: readonly string[];
  /** Mutual TLS to the members (transport.ts, tls.ts): the CA, this client's certificate and
   *  key, as PEM or files (re-read for new connections when they change). Required unless
   *  `insecure` is set. */
  readonly tls?: TlsOptions;
  /** Plaintext, for a cluster started with --insecure only; never together with `tls`. */
  readonly insecure?: boolean;
  /**
   * A bearer token sent on every call (`authorization: Bearer <token>`), for clusters started
   * with --auth-tokens: the token itself or a file holding it (re-read when it changes). With
   * tls it may replace the client certificate; over `insecure` it crosses the network in plaintext.
   */
  readonly bearerToken?: BearerTokenOptions;
  /** Prefix of this client's session ids (visible ASCII, at most 100 bytes). Default: random. */
  readonly clientId?: string;
  /** Clock-rate error bound assumed by the client (default 0.01); the larger of it and the server's is used. */
  readonly rho?: number;
  /** Safety margin subtracted from every client deadline (default 100 ms). */
  readonly marginMs?: number;
  /** How long a lease in jeopardy keeps trying to renew before it is lost (default: its TTL). */
  readonly graceMs?: number;
  /** Bound on one attempt of a non-blocking call (default 2000 ms). */
  readonly attemptTimeoutMs?: number;
  /** Whole-call deadline of non-blocking calls without timeoutMs (default 30000 ms). */
  readonly defaultTimeoutMs?: number;
  /**
   * Which leader hints to follow. A member that is not the leader names the leader's advertised
   * address; "follow" (the default) dials it even if it is not in `endpoints`. "listed" follows
   * a hint only to a listed endpoint and otherwise tries the next listed one: for clients that
   * reach the cluster through proxies, port forwards or NAT, where the members' own addresses
   * are unreachable (or must not be used, e.g. to bypass a proxy).
   */
  readonly leaderHints?: "follow" | "listed";
  readonly backoff?: BackoffOptions;
  /** Injected for tests: [0, 1) random source and monotonic clock (default Math.random, performance.now). */
  readonly random?: RandomSource;
  readonly clock?: MonotonicClock;
}

export interface GrantLeaseOptions {
  readonly ttlMs: number;
}

/**
 * @internal The SDK's environment below its own logic, for the deterministic lock simulation
 * (testing/sim/sdk_client.ts); not exported by index.ts and not part of TenureClientOptions. With
 * `timers` on the simulated clock (options.clock) and a `wire` over the simulated network, every
 * line of lease, keepalive, lock, retry and session code runs as in production. Defaults: the
 * global timers and grpc-js.
 */
export interface ClientRuntime {
  readonly timers?: Timers;
  readonly wire?: Wire;
  /**
   * TEST-ONLY DELIBERATE BUG, off unless set here: take a lease's t0 when the answer to its grant
   * or renewal ARRIVES instead of before its first attempt is sent (DESIGN.md §3 "Client view"),
   * so expiresAt is late by the round trip, a lost attempt's timeout and any pause in between.
   * Exists only to prove the lock simulation catches it (testing/sim/README.md, bug table).
   */
  readonly testOnlyBugLeaseStartAfterReply?: boolean;
}

/** The wire options for `bearerToken` (validated here: a bad token is the caller's error at construction). */
function bearerOptions(options: TenureClientOptions): { readonly interceptors?: readonly grpc.Interceptor[] } {
  return options.bearerToken === undefined ? {} : { interceptors: [bearerInterceptor(new BearerToken(options.bearerToken))] };
}

const CLIENT_ID_RE = /^[\x21-\x7e]{1,100}$/;
/** Sessions a grant tries after refusals for the per-client lease limit before it gives up. */
const GRANT_SESSIONS_TRIED_MAX = 8;

/**
 * LIMIT_EXCEEDED for the per-client_id lease count: the server's message names the limit
 * (errors.proto, LIMIT_EXCEEDED). Other limits (leasesMax: the cluster is full) are the caller's.
 */
function isPerClientLeaseLimit(e: TenureError): boolean {
  return e.reason === "LIMIT_EXCEEDED" && e.message.includes("leasesPerClientMax");
}

export class TenureClient {
  /** @internal */ readonly rpc: Rpc;
  /** @internal */ readonly transport: Transport;
  /** @internal */ readonly random: RandomSource;
  readonly clientId: string;
  readonly #closer = new AbortController();
  readonly #keepAlive: KeepAlive;
  readonly #leases = new Set<Lease>();
  /** The session each held lease was granted on (its count against leasesPerClientMax). */
  readonly #grantedBy = new WeakMap<Lease, Session>();
  readonly #leaseHost: LeaseHost;
  readonly #leaseStartAfterReply: boolean;

  constructor(options: TenureClientOptions);
  /** @internal The deterministic lock simulation's environment (ClientRuntime). */
  constructor(options: TenureClientOptions, runtime: ClientRuntime);
  constructor(options: TenureClientOptions, runtime: ClientRuntime = {}) {
    // Every call in flight listens on the client's closed signal until it ends (rpc.ts
    // linkSignals): a burst of concurrent calls is not a listener leak (Node warns past 10).
    setMaxListeners(0, this.#closer.signal);
    const clientId = options.clientId ?? `tenure-${randomBytes(8).toString("hex")}`;
    if (!CLIENT_ID_RE.test(clientId)) throw new TenureError("INVALID_ARGUMENT", "clientId must be 1..100 visible ASCII characters");
    const rho = options.rho ?? 0.01;
    if (!(rho >= 0 && rho < 0.5)) throw new TenureError("INVALID_ARGUMENT", "rho must be in [0, 0.5)");
    this.clientId = clientId;
    this.random = options.random ?? Math.random;
    this.#leaseStartAfterReply = runtime.testOnlyBugLeaseStartAfterReply === true;
    // The simulation's wire names members its own way; the production wire needs host:port.
    if (runtime.wire === undefined) checkEndpoints(options.endpoints);
    this.transport = new Transport(
      options.endpoints,
      runtime.wire ?? new GrpcWire(options, bearerOptions(options)),
      options.leaderHints ?? "follow",
    );
    const pool = new SessionPool(clientId);
    const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000;
    this.rpc = new Rpc({
      transport: this.transport,
      pool,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      random: this.random,
      clock: options.clock ?? (() => performance.now()),
      timers: runtime.timers ?? SYSTEM_TIMERS,
      attemptTimeoutMs,
      defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
      closed: this.#closer.signal,
    });
    this.#keepAlive = new KeepAlive({
      rpc: this.rpc,
      transport: this.transport,
      pool,
      random: this.random,
      attemptTimeoutMs,
      closed: this.#closer.signal,
      testOnlyBugLeaseStartAfterReply: this.#leaseStartAfterReply,
    });
    this.#leaseHost = {
      rpc: this.rpc,
      rho,
      marginMs: options.marginMs ?? 100,
      graceMs: options.graceMs,
      forget: (lease) => {
        this.#leases.delete(lease);
        this.#keepAlive.remove(lease);
        const session = this.#grantedBy.get(lease);
        if (session !== undefined) session.grantedLeases -= 1;
        this.#grantedBy.delete(lease);
      },
    };
  }

  /** @internal Aborted by close(). */
  get closed(): AbortSignal {
    return this.#closer.signal;
  }

  /**
   * Grants a lease and keeps it alive until revoke(), loss or close(). Its deadline counts from
   * the send time of the FIRST attempt of the grant (a retry may return the stored grant).
   */
  async grantLease(options: GrantLeaseOptions, opts: CallOptions = {}): Promise<Lease> {
    let t0 = Number.NaN;
    let granter: Session | null = null;
    let res: Record<string, unknown>;
    // The server holds at most leasesPerClientMax leases per client_id; a client holding more
    // grants them on sessions below their cap, and a session the server refused for that limit
    // is capped at what it holds (it still carries other calls). So one TenureClient can hold
    // every lease the cluster allows (leasesMax).
    for (let refused = 0; ; refused++) {
      try {
        res = await this.rpc.mutate(
          "Lease",
          "Grant",
          { ttlMs: options.ttlMs },
          {
            ...opts,
            onFirstSend: (t) => (t0 = t),
            eligible: (s) => s.grantedLeases < s.leaseGrantCap,
            onAnswered: (s) => (granter = s),
          },
        );
        break;
      } catch (error) {
        const e = TenureError.from(error);
        const answered = granter as Session | null;
        if (!isPerClientLeaseLimit(e) || answered === null || refused >= GRANT_SESSIONS_TRIED_MAX) throw e;
        answered.leaseGrantCap = answered.grantedLeases;
        granter = null;
      }
    }
    if (this.#leaseStartAfterReply) t0 = this.rpc.clock(); // the deliberate bug (ClientRuntime)
    const v = (res["validUntil"] ?? {}) as Record<string, unknown>;
    const lease = new Lease(this.#leaseHost, {
      id: safeInt(res["leaseId"], "leaseId"),
      ttlMs: safeInt(v["ttlMs"] ?? options.ttlMs, "ttlMs"),
      t0Ms: t0,
      serverRho: Number(v["rho"] ?? 0),
    });
    if (this.#closer.signal.aborted) {
      lease.abandon(new TenureError("CLOSED", "client closed"));
      return lease;
    }
    const session = granter as Session | null;
    if (session !== null) {
      session.grantedLeases += 1;
      this.#grantedBy.set(lease, session);
    }
    this.#leases.add(lease);
    this.#keepAlive.add(lease);
    return lease;
  }

  /** Acquires `name` (waits FIFO by default). See LockOptions. */
  lock(name: string, options: LockOptions = {}, opts: CallOptions = {}): Promise<Lock> {
    return acquireLock(this, name, options, opts);
  }

  /** Runs fn({ token, signal }) holding `name`; releases afterwards, even when fn throws. */
  withLock<T>(name: string, fn: (scope: LockScope) => Promise<T> | T, options: LockOptions = {}, opts: CallOptions = {}): Promise<T> {
    return withLock(this, name, fn, options, opts);
  }

  election(name: string): Election {
    return new Election(this, name);
  }

  /** Linearizable: is `token` the current grant of lock or election `name`, held by a live lease? */
  async validateToken(name: string, token: number, opts: CallOptions = {}): Promise<{ current: boolean; currentToken: number }> {
    const res = await this.rpc.read("Lock", "ValidateToken", { name, token: String(token) }, opts);
    return { current: res["current"] === true, currentToken: safeInt(res["currentToken"] ?? 0, "currentToken") };
  }

  /** Linearizable read of a lock's holder and waiters. */
  async lockStatus(name: string, opts: CallOptions = {}): Promise<LockStatus> {
    return decodeLockStatus(await this.rpc.read("Lock", "Status", { name }, opts));
  }

  /**
   * The lock's status now, then each change of its state or holder (granted, freed, delayed), as
   * etcd users watch a lock key: follows leader changes (a reconnect re-reads the status; repeats
   * are skipped). Ends when `signal` aborts, `timeoutMs` passes or the client closes.
   */
  watchLock(name: string, opts: CallOptions = {}): AsyncGenerator<LockStatus & { readonly appliedIndex: number }, void, undefined> {
    return followLeaderStream(
      { transport: this.transport, random: this.random, closed: this.closed, timers: this.rpc.timers },
      { service: "Lock", method: "Watch", request: { name } },
      (m) => ({ ...decodeLockStatus((m["status"] ?? {}) as Message), appliedIndex: safeInt(m["appliedIndex"] ?? 0, "appliedIndex") }),
      (s) => `${s.state}/${s.token}`,
      opts,
    );
  }

  /**
   * Aborts every call, stops renewing and aborts every lease's signal (LEASE_LOST semantics: the
   * holder must stop). Does not revoke: revoke leases first for a prompt hand-off.
   */
  close(): void {
    if (this.#closer.signal.aborted) return;
    this.#closer.abort(new TenureError("CLOSED", "client closed"));
    this.#keepAlive.close();
    for (const lease of [...this.#leases]) lease.abandon(new TenureError("CLOSED", "client closed"));
    this.transport.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
