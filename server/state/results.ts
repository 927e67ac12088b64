// Results and events of applying a command. PURE.
//
// Expected outcomes are values (style anchors 5.4): ApplyResult = {ok:true, kind, ...} |
// {ok:false, code, message}. The api layer is the one place that maps codes to gRPC statuses.
// A client command's CommandResult is stored in its session, and a retry gets that same value.

export type ErrorCode =
  | "LEASE_NOT_FOUND"
  | "LEASE_EXPIRED"
  | "NOT_HOLDER"
  | "LOCK_HELD"
  | "STALE_SEQUENCE"
  | "SESSION_EXPIRED"
  | "INVALID_ARGUMENT"
  | "LIMIT_EXCEEDED"
  /** The object belongs to another identity and the caller is not admin (caller.ts). */
  | "PERMISSION_DENIED"
  /**
   * LeaseGrant with a lease id that already exists. Never stored in the session and changes
   * nothing: the leader draws another id and proposes again with the same (clientId, seq).
   */
  | "LEASE_ID_TAKEN"
  /** The cluster is frozen (Freeze): no new lease, lock or leadership until Thaw. */
  | "FROZEN";

/**
 * What a holder needs to know when to stop. Times are leader time (the machine's time domain).
 * The client does not use serverDeadlineMs directly: it records t0 (its own monotonic clock)
 * before sending the FIRST attempt and stops at t0 + ttlMs * (1 - rho) - margin, which in real
 * time is before serverDeadlineMs = appliedAtMs + ttlMs * (1 + rho) (rounded up).
 */
export interface ValidUntil {
  readonly ttlMs: number;
  readonly rho: number;
  readonly appliedAtMs: number;
  readonly serverDeadlineMs: number;
}

export interface KeepAliveFailure {
  readonly leaseId: number;
  readonly code: "LEASE_NOT_FOUND" | "LEASE_EXPIRED" | "PERMISSION_DENIED";
}

export type OkBody =
  | { readonly kind: "LeaseGrant"; readonly leaseId: number; readonly validUntil: ValidUntil }
  | {
      readonly kind: "LeaseKeepAlive";
      readonly renewed: readonly { readonly leaseId: number; readonly validUntil: ValidUntil }[];
      readonly failed: readonly KeepAliveFailure[];
    }
  | { readonly kind: "LeaseRevoke"; readonly leaseId: number }
  | {
      readonly kind: "LockAcquire";
      readonly status: "granted";
      readonly token: number;
      readonly validUntil: ValidUntil;
    }
  | { readonly kind: "LockAcquire"; readonly status: "queued"; readonly position: number }
  | { readonly kind: "LockRelease"; readonly released: boolean }
  | {
      readonly kind: "ElectionCampaign";
      readonly status: "elected";
      readonly token: number;
      readonly validUntil: ValidUntil;
    }
  | { readonly kind: "ElectionCampaign"; readonly status: "queued"; readonly position: number }
  | { readonly kind: "ElectionProclaim"; readonly token: number }
  | { readonly kind: "ElectionResign"; readonly resigned: boolean }
  | { readonly kind: "WaitCancel"; readonly cancelled: boolean }
  | { readonly kind: "Freeze"; readonly alreadyFrozen: boolean }
  /** granted: waiters granted at the thaw (names freed while frozen). */
  | { readonly kind: "Thaw"; readonly alreadyThawed: boolean; readonly granted: number }
  | { readonly kind: "LeaseExpire"; readonly applied: boolean }
  | { readonly kind: "LockDelayEnd"; readonly applied: boolean }
  | { readonly kind: "LeaderTimersRestart"; readonly leases: number; readonly delays: number }
  | { readonly kind: "RestoreEpochBump"; readonly epoch: number }
  | { readonly kind: "Noop" }
  /** One result per renewal of a LeaseKeepAliveBatch, in its order (each also stored in its session). */
  | { readonly kind: "LeaseKeepAliveBatch"; readonly results: readonly RenewalResult[] };

/** A renewal's own outcome inside a LeaseKeepAliveBatch: what its LeaseKeepAlive entry would answer. */
export interface RenewalResult {
  readonly result: CommandResult;
  /** True when its (clientId, seq) got its stored result back; nothing was re-applied. */
  readonly replayed: boolean;
}

export interface CommandError {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly message: string;
  /**
   * LOCK_HELD only: the token of the grant that refused the try-lock, as of its apply (0: none,
   * the name was in lock-delay). Stored with the result, so a retry sees the same value. Absent
   * in results stored by older code: the api layer then reads the current token.
   */
  readonly currentToken?: number;
}

export type CommandResult = ({ readonly ok: true } & OkBody) | CommandError;

/**
 * Side effects the api layer turns into replies and streams: a queued acquire or campaign learns
 * of its grant from these (they may come from another client's command or a timer command).
 */
export type StateEvent =
  | {
      readonly kind: "granted";
      readonly table: "lock" | "election";
      readonly name: string;
      readonly leaseId: number;
      /** The identity owning the lease (caller.ts): Observe shows the lease id only to it. */
      readonly owner: string;
      readonly token: number;
      readonly value: string;
      /**
       * The holding lease's validity as of this grant (null: no such lease, only under a test bug).
       * A waiter's answer carries it without a read: a later renewal only lengthens the lease.
       */
      readonly validUntil: ValidUntil | null;
    }
  | { readonly kind: "freed"; readonly table: "lock" | "election"; readonly name: string }
  | {
      readonly kind: "delayed";
      readonly table: "lock" | "election";
      readonly name: string;
      readonly untilMs: number;
    }
  | { readonly kind: "proclaimed"; readonly name: string; readonly token: number; readonly value: string }
  | {
      readonly kind: "leaseGone";
      readonly leaseId: number;
      readonly clientId: string;
      readonly expired: boolean;
    }
  /**
   * An admin acted on an object of another identity (caller.ts): the api writes the audit line.
   * `name` is the lock or election, null for a lease.
   */
  | {
      readonly kind: "actedForOwner";
      readonly command: string;
      readonly identity: string;
      readonly owner: string;
      readonly leaseId: number;
      readonly name: string | null;
    };

export type ApplyResult = CommandResult & {
  /** Raft index of the entry. */
  readonly index: number;
  /** True when a retried (clientId, seq) got its stored result back; nothing was re-applied. */
  readonly replayed: boolean;
  readonly events: readonly StateEvent[];
};

export function errorResult(code: ErrorCode, message: string): CommandError {
  return { ok: false, code, message };
}

export function okResult(body: OkBody): { readonly ok: true } & OkBody {
  return { ok: true, ...body };
}
