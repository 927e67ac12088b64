// Named locks with fencing tokens. A Lock handle is valid while its `signal` is not aborted: the
// signal aborts when the holding lease passes its client deadline (jeopardy), is lost or revoked,
// or the lock is released. Pass `token` to every write on the protected resource; the resource
// (or the storage guard) rejects tokens lower than one it has seen.

import { TenureError } from "./errors.ts";
import { safeInt, type Lease } from "./lease.ts";
import type { BlockingWithdrawal, Rpc } from "./rpc.ts";
import { linkSignals, type CallOptions } from "./signals.ts";
import type { Message } from "./transport.ts";

export interface LockOptions {
  /** TTL of the lease the SDK grants for this lock when `lease` is not given (default 10000). */
  readonly ttlMs?: number;
  /** Queue FIFO behind the holder instead of failing with LOCK_HELD (default true). */
  readonly wait?: boolean;
  /** With wait: give up after this long; the server withdraws the wait (TIMEOUT -> DEADLINE_EXCEEDED). */
  readonly timeoutMs?: number;
  /** Hold the lock with this lease (the caller keeps it); otherwise the SDK grants and revokes one. */
  readonly lease?: Lease;
}

export interface GrantHost {
  readonly rpc: Rpc;
  grantLease(options: { readonly ttlMs: number }, opts?: CallOptions): Promise<Lease>;
}

export const DEFAULT_LOCK_TTL_MS = 10_000;
/** Lets the server's own TIMEOUT answer arrive before the client's deadline cuts the call. */
const SERVER_TIMEOUT_SLACK_MS = 2_000;

export class Lock {
  readonly #controller: { readonly signal: AbortSignal; readonly cleanup: () => void };
  readonly #abort = new AbortController();
  #release: Promise<boolean> | null = null;

  constructor(
    private readonly rpc: Rpc,
    readonly name: string,
    readonly token: number,
    readonly lease: Lease,
    private readonly ownsLease: boolean,
  ) {
    this.#controller = linkSignals([lease.signal, this.#abort.signal]);
  }

  /** Aborts when the lock may no longer be held: stop fenced work at once. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Monotonic ms (the client's clock: performance.now() by default) until which the lock is safe to use. */
  get validUntil(): number {
    return this.lease.expiresAt;
  }

  /**
   * Releases the lock (fenced by its token: a late retry never frees a newer grant) and, when the
   * SDK granted the lease, revokes it. Idempotent; resolves true if this call freed the lock.
   */
  release(opts: CallOptions = {}): Promise<boolean> {
    this.#release ??= this.doRelease(opts);
    return this.#release;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  private async doRelease(opts: CallOptions): Promise<boolean> {
    this.#abort.abort(new TenureError("CANCELLED", `lock ${this.name} released`));
    this.#controller.cleanup();
    try {
      const res = await this.rpc.mutate("Lock", "Release", { name: this.name, token: String(this.token) }, opts);
      return res["released"] === true;
    } finally {
      if (this.ownsLease) await this.lease.revoke(opts).catch(() => {});
    }
  }
}

/** The caller's lease, or one granted for this call (then `owned` and revoked on failure). */
export async function leaseFor(
  host: GrantHost,
  given: Lease | undefined,
  ttlMs: number | undefined,
  opts: CallOptions,
): Promise<{ lease: Lease; owned: boolean }> {
  if (given) {
    if (given.signal.aborted) throw new TenureError("LEASE_LOST", `lease ${given.id} is ${given.state}`, { cause: given.signal.reason });
    return { lease: given, owned: false };
  }
  return { lease: await host.grantLease({ ttlMs: ttlMs ?? DEFAULT_LOCK_TTL_MS }, opts), owned: true };
}

export async function acquireLock(host: GrantHost, name: string, options: LockOptions, opts: CallOptions): Promise<Lock> {
  const wait = options.wait ?? true;
  const { lease, owned } = await leaseFor(host, options.lease, options.ttlMs, opts);
  const serverTimeoutMs = wait ? (options.timeoutMs ?? 0) : 0;
  const timeoutMs = opts.timeoutMs ?? (wait && serverTimeoutMs > 0 ? serverTimeoutMs + SERVER_TIMEOUT_SLACK_MS : undefined);
  let res: Message;
  try {
    res = await host.rpc.mutate(
      "Lock",
      "Acquire",
      { name, leaseId: String(lease.id), wait, timeoutMs: serverTimeoutMs },
      {
        blocking: wait,
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        withdraw: withdrawal(host.rpc, "Lock", name, { name, leaseId: String(lease.id), wait: true }),
      },
    );
  } catch (error) {
    const e = TenureError.from(error);
    await cleanupAfterFailedGrant(host.rpc, lease, owned, e, "Lock", name);
    throw e;
  }
  return new Lock(host.rpc, name, safeInt(res["token"], "token"), lease, owned);
}

/** Time the settling attempt of a given-up blocking call may take (Rpc BlockingWithdrawal). */
const WITHDRAW_TIMEOUT_MS = 5_000;

/**
 * How a given-up blocking Acquire or Campaign settles its wait: asked again with a 1 ms server
 * timeout, the server withdraws a wait still queued; a grant it answers instead is released.
 */
export function withdrawal(rpc: Rpc, kind: "Lock" | "Election", name: string, request: Message): BlockingWithdrawal {
  return {
    fields: { ...request, timeoutMs: 1 },
    timeoutMs: WITHDRAW_TIMEOUT_MS,
    onGranted: async (res) => {
      const granted = (kind === "Lock" ? res : res["leader"]) as Message | undefined;
      const token = granted?.["token"];
      if (token === undefined) return;
      const method = kind === "Lock" ? "Release" : "Resign";
      await rpc.mutate(kind, method, { name, token: String(token) }, { timeoutMs: WITHDRAW_TIMEOUT_MS });
    },
  };
}

/**
 * A blocking call that did not end with a definitive answer may have left the lease queued or
 * even holding the grant (errors.proto, blocking-call contract). An SDK-owned lease is revoked,
 * which settles it; for the caller's lease, a grant found in Status is released (fenced).
 */
export async function cleanupAfterFailedGrant(
  rpc: Rpc,
  lease: Lease,
  owned: boolean,
  e: TenureError,
  kind: "Lock" | "Election",
  name: string,
): Promise<void> {
  if (owned) {
    await lease.revoke({ timeoutMs: 5_000 }).catch(() => {});
    return;
  }
  if (e.code !== "OUTCOME_UNKNOWN" && e.code !== "CANCELLED" && e.code !== "DEADLINE_EXCEEDED") return;
  try {
    const status =
      kind === "Lock"
        ? await rpc.read("Lock", "Status", { name }, { timeoutMs: 5_000 })
        : await rpc.read("Election", "Leader", { name }, { timeoutMs: 5_000 });
    const holder = (kind === "Lock" ? status["holder"] : status["leader"]) as Message | null | undefined;
    if (!holder || safeInt(holder["leaseId"], "leaseId") !== lease.id) return;
    const method = kind === "Lock" ? "Release" : "Resign";
    await rpc.mutate(kind, method, { name, token: String(holder["token"]) }, { timeoutMs: 5_000 });
  } catch {
    // Best effort: the caller was told the outcome is unknown and can revoke the lease.
  }
}

export interface LockScope {
  readonly token: number;
  readonly signal: AbortSignal;
  readonly lock: Lock;
}

/** Runs fn while holding the lock and always releases it afterwards. */
export async function withLock<T>(
  host: GrantHost,
  name: string,
  fn: (scope: LockScope) => Promise<T> | T,
  options: LockOptions,
  opts: CallOptions,
): Promise<T> {
  const lock = await acquireLock(host, name, options, opts);
  let result: T;
  try {
    result = await fn({ token: lock.token, signal: lock.signal, lock });
  } catch (error) {
    // fn's error is the one the caller needs; a release failure here would hide it.
    await lock.release().catch(() => {});
    throw error;
  }
  await lock.release();
  return result;
}
