// The retry engine every SDK call goes through. Leader discovery: try the endpoint believed to
// lead, follow NOT_LEADER hints at once, otherwise move to the next endpoint after a backoff with
// full jitter. A mutating call keeps its (client_id, seq) across every retry, so the server's
// session table answers a retry of an applied command with the stored result (errors.proto).
// When the caller's deadline or signal ends a mutating call after a request may have reached the
// server, the call fails with OUTCOME_UNKNOWN, never with a false "it failed".

import type { ServiceName } from "../proto/tenure_protos.ts";
import { DEFAULT_BACKOFF, retryDelayMs, type BackoffOptions, type MonotonicClock, type RandomSource } from "./backoff.ts";
import { TenureError } from "./errors.ts";
import type { SessionPool, Session } from "./sessions.ts";
import { abortError, linkSignals, sleep, type CallOptions } from "./signals.ts";
import type { Timers } from "./timers.ts";
import type { Message, Transport } from "./transport.ts";

export interface RpcOptions {
  readonly transport: Transport;
  readonly pool: SessionPool;
  readonly backoff?: BackoffOptions;
  readonly random: RandomSource;
  readonly clock: MonotonicClock;
  /** Every wait of the SDK (deadlines, backoff, lease timers) is set on these, on `clock`'s time base. */
  readonly timers: Timers;
  /** Bound on one attempt of a non-blocking call (a hung member must not eat the whole budget). */
  readonly attemptTimeoutMs: number;
  /** Whole-call deadline when the caller gives no timeoutMs (blocking calls have none). */
  readonly defaultTimeoutMs: number;
  /** Aborted by TenureClient.close(). */
  readonly closed: AbortSignal;
}

type Kind = "read" | "mutate" | "blocking";

/** Errors that are the server's definitive answer to this exact request. */
const definitive = new WeakSet<TenureError>();

/** Answers that say the request was never proposed (so it cannot have been applied). */
const NEVER_PROPOSED: ReadonlySet<string> = new Set(["NOT_LEADER", "NO_LEADER", "OVERLOADED"]);

/** Hint hops allowed before a backoff (two members pointing at each other during an election). */
const HINT_HOPS_MAX = 3;
/** New seqs one blocking call may queue under after the server withdrew its wait (bounds a loop). */
const WAIT_REQUEUES_MAX = 8;

/** How a blocking call given up with its outcome unknown settles its wait (Rpc.mutate `withdraw`). */
export interface BlockingWithdrawal {
  /** The request's fields for the settling attempt: the same request, a server timeout of 1 ms. */
  readonly fields: object;
  /** Bound on the settling attempt and its retries. */
  readonly timeoutMs: number;
  /** The settling attempt found the wait granted: give the grant back. */
  readonly onGranted: (response: Message) => Promise<void>;
}

export class Rpc {
  constructor(private readonly o: RpcOptions) {}

  get clock(): MonotonicClock {
    return this.o.clock;
  }

  get timers(): Timers {
    return this.o.timers;
  }

  /** A linearizable read (or any call that is safe to repeat as it is). */
  async read(service: ServiceName, method: string, request: object, opts: CallOptions = {}): Promise<Message> {
    const linked = linkSignals([opts.signal, this.o.closed], opts.timeoutMs ?? this.o.defaultTimeoutMs, this.o.timers);
    try {
      return await this.invoke(
        "read",
        service,
        method,
        () => request,
        linked.signal,
        this.deadline(opts.timeoutMs ?? this.o.defaultTimeoutMs),
      );
    } finally {
      linked.cleanup();
    }
  }

  /**
   * A deduplicated command: runs on a session of its own, with one seq for all its retries.
   * `blocking` (waiting Acquire, Campaign) reserves seq + 1 and has no per-attempt bound.
   * `onFirstSend` gets the monotonic time just before the first attempt (a lease's t0).
   */
  async mutate(
    service: ServiceName,
    method: string,
    fields: object,
    opts: CallOptions & {
      readonly blocking?: boolean;
      readonly onFirstSend?: (t0Ms: number) => void;
      /** Sessions this call may run on (a Grant: one below its lease cap); any free one if absent. */
      readonly eligible?: (session: Session) => boolean;
      /** The session the call ended on, when it ended with an answer from the server. */
      readonly onAnswered?: (session: Session) => void;
      /** A blocking call that ends OUTCOME_UNKNOWN: settle its wait (BlockingWithdrawal). */
      readonly withdraw?: BlockingWithdrawal;
    } = {},
  ): Promise<Message> {
    const kind: Kind = opts.blocking ? "blocking" : "mutate";
    const timeoutMs = opts.timeoutMs ?? (opts.blocking ? undefined : this.o.defaultTimeoutMs);
    const linked = linkSignals([opts.signal, this.o.closed], timeoutMs, this.o.timers);
    const deadline = this.deadline(timeoutMs);
    let session = this.o.pool.take(opts.eligible);
    let requeues = 0;
    try {
      for (let fresh = 0; ; fresh++) {
        const seq = session.seqs.next({ blocking: kind === "blocking" });
        const s: Session = session;
        let first = true;
        const build = (): object => {
          if (first) opts.onFirstSend?.(this.o.clock());
          first = false;
          return { ...fields, clientId: s.clientId, seq };
        };
        try {
          const res = await this.invoke(kind, service, method, build, linked.signal, deadline);
          opts.onAnswered?.(session);
          this.o.pool.give(session);
          return res;
        } catch (error) {
          const e = TenureError.from(error);
          // The server forgot this client id before the command was applied: a new id is safe.
          if (e.code === "SESSION_EXPIRED" && definitive.has(e) && fresh === 0) {
            session = this.o.pool.fresh();
            continue;
          }
          // A blocking call's wait withdrawn by the server itself (an attempt's call was cut, e.g.
          // its connection reset) with nothing granted under this seq: the caller still waits,
          // so queue again under a new seq (the same session: its request ended definitively).
          if (
            e.code === "WAIT_CANCELLED" &&
            kind === "blocking" &&
            definitive.has(e) &&
            !linked.signal.aborted &&
            requeues < WAIT_REQUEUES_MAX
          ) {
            requeues += 1;
            continue;
          }
          if (e.code === "OUTCOME_UNKNOWN" && kind === "blocking" && opts.withdraw !== undefined) {
            await this.settleWait(service, method, s, seq, opts.withdraw);
          }
          if (definitive.has(e)) opts.onAnswered?.(session);
          // Only a session whose request ended definitively may carry the next one.
          if (definitive.has(e) && e.code !== "STALE_SEQUENCE" && e.code !== "SESSION_EXPIRED") this.o.pool.give(session);
          throw e;
        }
      }
    } finally {
      linked.cleanup();
    }
  }

  /**
   * The same request again, under the same (client_id, seq), with `w.fields` (a server timeout of
   * a millisecond): the server answers it from the session (errors.proto, blocking-call contract):
   * a wait still queued is withdrawn (WaitCancel, seq + 1) and DEADLINE_EXCEEDED says nothing was
   * granted; a grant that came meanwhile is answered and goes to `w.onGranted` (release it).
   * Without this a caller's lease stayed queued after the call was given up, was granted later,
   * and held the lock unknown to its owner for as long as it kept the lease alive (the lock
   * simulation's seeds 1953 and 3967 at 10,000 seeds: two clients each holding the lock the other
   * waited for). Best effort: a settle that fails leaves the caller's own Status check.
   */
  private async settleWait(service: ServiceName, method: string, s: Session, seq: number, w: BlockingWithdrawal): Promise<void> {
    const linked = linkSignals([this.o.closed], w.timeoutMs, this.o.timers);
    try {
      const res = await this.invoke(
        "blocking",
        service,
        method,
        () => ({ ...w.fields, clientId: s.clientId, seq }),
        linked.signal,
        this.deadline(w.timeoutMs),
      );
      await w.onGranted(res);
    } catch {
      // Withdrawn (DEADLINE_EXCEEDED TIMEOUT, WAIT_CANCELLED), the lease gone, or still unknown.
    } finally {
      linked.cleanup();
    }
  }

  private deadline(timeoutMs: number | undefined): number {
    return timeoutMs === undefined ? Infinity : this.o.clock() + timeoutMs;
  }

  private async invoke(
    kind: Kind,
    service: ServiceName,
    method: string,
    build: () => object,
    signal: AbortSignal,
    deadline: number,
  ): Promise<Message> {
    const t = this.o.transport;
    let mayHaveApplied = false; // some attempt may have reached the state machine
    let hops = 0;
    // Endpoints that refused a connection since the last answer from any member: when every one
    // has, nothing is reachable and nothing was sent, so the call fails at once as UNAVAILABLE
    // instead of backing off until its deadline.
    const unreachable = new Map<string, string>();
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw this.ended(kind, signal, mayHaveApplied);
      const endpoint = t.leader;
      const remaining = deadline - this.o.clock();
      const attemptMs = kind === "blocking" ? remaining : Math.min(remaining, this.o.attemptTimeoutMs);
      let e: TenureError;
      try {
        return await t.unary(endpoint, service, method, build(), attemptMs, signal);
      } catch (error) {
        e = TenureError.from(error);
      }
      if (signal.aborted) throw this.ended(kind, signal, mayHaveApplied || (kind !== "read" && !e.notSent));
      if (e.notSent) {
        unreachable.set(endpoint, e.message);
        if (!mayHaveApplied && t.endpoints.every((ep) => unreachable.has(ep))) {
          const why = [...unreachable].map(([ep, m]) => `${ep} (${m})`).join("; ");
          const err = new TenureError("UNAVAILABLE", `${method}: no endpoint reachable, nothing was sent: ${why}`, {
            cause: e,
            notSent: true,
          });
          definitive.add(err); // never sent: the session (and its seq) may carry the next request
          throw err;
        }
      } else unreachable.clear();
      const fromServer = e.reason !== undefined;
      if (e.code === "NOT_LEADER" && e.leaderHint && e.leaderHint !== endpoint && hops < HINT_HOPS_MAX) {
        hops += 1;
        t.setLeader(e.leaderHint, endpoint);
        continue; // never proposed: go straight to the leader
      }
      hops = 0;
      const transportTimeout = e.code === "DEADLINE_EXCEEDED" && !fromServer;
      if (!e.retryable && !transportTimeout) {
        if (mayHaveApplied && e.code === "SESSION_EXPIRED") {
          throw new TenureError("OUTCOME_UNKNOWN", "the session was dropped after an attempt whose outcome is unknown", { cause: e });
        }
        // A retry answered STALE_SEQUENCE: the session moved past this seq (a blocking call's
        // cancel takes seq + 1), so the stored answer of an earlier attempt that may have been
        // applied (a grant) is gone. Found by the chaos harness: reporting it as a definite
        // failure would hide a grant the caller never learned of.
        if (mayHaveApplied && e.code === "STALE_SEQUENCE") {
          throw new TenureError(
            "OUTCOME_UNKNOWN",
            "a retry found the session past this request; an earlier attempt may have been applied",
            { cause: e },
          );
        }
        // A retried blocking call that finds its lease gone: an earlier attempt may have been
        // granted before the lease ended (the server can no longer tell, the lease's record is
        // gone), so "not granted" would be a guess; an election's observers may have seen it lead.
        if (mayHaveApplied && kind === "blocking" && (e.code === "LEASE_NOT_FOUND" || e.code === "LEASE_EXPIRED")) {
          throw new TenureError(
            "OUTCOME_UNKNOWN",
            "a retry found the lease gone; an earlier attempt may have been granted before it ended",
            { cause: e },
          );
        }
        if (fromServer) definitive.add(e);
        throw e;
      }
      // UNAVAILABLE without a reason (connection failure, reset) or a lost reply: the request may
      // have been proposed; OUTCOME_UNKNOWN and INTERNAL say so explicitly.
      if (!NEVER_PROPOSED.has(e.code) && !e.notSent) mayHaveApplied = true;
      // OVERLOADED: the leader is busy, not gone; another member would only send us back.
      if (e.code !== "OUTCOME_UNKNOWN" && e.code !== "OVERLOADED") t.rotate(endpoint);
      const wait = retryDelayMs(e, attempt, this.o.random, this.o.backoff ?? DEFAULT_BACKOFF);
      // Another endpoint not yet tried after a refused connection: no need to wait for it.
      if (e.notSent && !t.endpoints.every((ep) => unreachable.has(ep))) continue;
      if (this.o.clock() + wait >= deadline) {
        if (mayHaveApplied && kind !== "read") {
          throw new TenureError("OUTCOME_UNKNOWN", `deadline exceeded after ${method} may have been applied`, { cause: e });
        }
        if (e.code === "OVERLOADED") {
          definitive.add(e); // never proposed: the session (and its seq) may carry the next request
          throw e;
        }
        throw new TenureError("DEADLINE_EXCEEDED", `${method}: deadline exceeded (last error: ${e.message})`, { cause: e });
      }
      try {
        await sleep(wait, signal, this.o.timers);
      } catch {
        throw this.ended(kind, signal, mayHaveApplied);
      }
    }
  }

  /** The error for a call ended by its signal: OUTCOME_UNKNOWN if a command may have been applied. */
  private ended(kind: Kind, signal: AbortSignal, mayHaveApplied: boolean): TenureError {
    const reason = abortError(signal);
    if (kind === "read" || !mayHaveApplied) return reason;
    return new TenureError("OUTCOME_UNKNOWN", `${reason.message}; the command may have been applied`, { cause: reason });
  }
}
