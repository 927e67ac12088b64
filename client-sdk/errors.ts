// The SDK's one error type (connect-es's ConnectError model): a stable `code`, whether the SDK's
// retry loop may send the same request again, the leader hint and current token from the server's
// ErrorDetail, and the original error as `cause`. Callers switch on `code`, never on `message`.

import * as grpc from "@grpc/grpc-js";
import { decodeErrorDetail, ERROR_DETAIL_METADATA_KEY, type ErrorReason } from "../proto/tenure_protos.ts";

export const ERROR_CODES = [
  // gRPC-aligned
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "FAILED_PRECONDITION",
  "ABORTED",
  "RESOURCE_EXHAUSTED",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  // Tenure reasons (errors.proto) that a caller acts on differently
  "NOT_LEADER",
  "NO_LEADER",
  "OUTCOME_UNKNOWN",
  "LEASE_NOT_FOUND",
  "LEASE_EXPIRED",
  "NOT_HOLDER",
  "LOCK_HELD",
  "STALE_SEQUENCE",
  "SESSION_EXPIRED",
  "WAIT_CANCELLED",
  "REFUSED",
  /** An admin froze the cluster (tenurectl freeze): no new grants until thaw; not retried. */
  "FROZEN",
  /** The leader's request queue is full (gRPC RESOURCE_EXHAUSTED): nothing was proposed. The SDK
   *  retries at the same member after `retryAfterMs`; a caller sees it only when the deadline
   *  leaves no time for that. */
  "OVERLOADED",
  // SDK-side
  "LEASE_LOST",
  "CLOSED",
] as const;

export type TenureErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes the SDK retries with the SAME seq (errors.proto: never proposed, or deduplicated by the
 * session table). Everything else is definitive for that request.
 */
const RETRYABLE: ReadonlySet<TenureErrorCode> = new Set<TenureErrorCode>([
  "UNAVAILABLE",
  "NOT_LEADER",
  "NO_LEADER",
  "OUTCOME_UNKNOWN",
  "INTERNAL",
  "OVERLOADED",
]);

export interface TenureErrorInit {
  readonly reason?: ErrorReason;
  readonly grpcCode?: number;
  readonly leaderHint?: string;
  readonly currentToken?: number;
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
  /** The request never left this process (no connection to the endpoint); see notSent. */
  readonly notSent?: boolean;
}

export class TenureError extends Error {
  override readonly name = "TenureError";
  readonly code: TenureErrorCode;
  /** The SDK may send the same request again (same seq) and expect a correct answer. */
  readonly retryable: boolean;
  /** The server's reason when it sent one (errors.proto ErrorReason). */
  readonly reason: ErrorReason | undefined;
  readonly grpcCode: number | undefined;
  /** Client-API address of the member the server believes leads ("" when unknown). */
  readonly leaderHint: string;
  /** NOT_HOLDER, LOCK_HELD: the current grant's token (0: none or unknown). */
  readonly currentToken: number;
  /** OVERLOADED: the server's hint, in ms, of when to retry at the same member (0: none). */
  readonly retryAfterMs: number;
  /**
   * The request never left this process: no connection to the endpoint could be made (refused,
   * unresolvable name, failed TLS handshake). Such a failure cannot have applied anything, so it
   * is never turned into OUTCOME_UNKNOWN.
   */
  readonly notSent: boolean;

  constructor(code: TenureErrorCode, message: string, init: TenureErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.reason = init.reason;
    this.grpcCode = init.grpcCode;
    this.leaderHint = init.leaderHint ?? "";
    this.currentToken = init.currentToken ?? 0;
    this.retryAfterMs = init.retryAfterMs ?? 0;
    this.notSent = init.notSent === true;
  }

  /** Wraps anything thrown into a TenureError (a TenureError is returned as it is). */
  static from(error: unknown, fallback: TenureErrorCode = "UNKNOWN"): TenureError {
    if (error instanceof TenureError) return error;
    if (isServiceError(error)) return fromServiceError(error);
    if (error instanceof Error && error.name === "AbortError") {
      return new TenureError("CANCELLED", error.message, { cause: error });
    }
    if (error instanceof Error && error.name === "TimeoutError") {
      return new TenureError("DEADLINE_EXCEEDED", error.message, { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new TenureError(fallback, message, { cause: error });
  }
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<grpc.ServiceError>).code === "number" &&
    (error as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata
  );
}

/** Reason -> SDK code: a reason keeps its name unless a gRPC code already says it all. */
function codeForReason(reason: ErrorReason): TenureErrorCode | null {
  switch (reason) {
    case "REASON_UNSPECIFIED":
      return null;
    case "IS_WITNESS":
      return "NOT_LEADER"; // same handling: go to the hint or another member
    case "TIMEOUT":
      return "DEADLINE_EXCEEDED";
    case "LIMIT_EXCEEDED":
    case "SLOW_CONSUMER":
      return "RESOURCE_EXHAUSTED";
    default:
      return reason;
  }
}

const GRPC_CODES: Readonly<Record<number, TenureErrorCode>> = {
  [grpc.status.CANCELLED]: "CANCELLED",
  [grpc.status.UNKNOWN]: "UNKNOWN",
  [grpc.status.INVALID_ARGUMENT]: "INVALID_ARGUMENT",
  [grpc.status.DEADLINE_EXCEEDED]: "DEADLINE_EXCEEDED",
  [grpc.status.NOT_FOUND]: "NOT_FOUND",
  [grpc.status.FAILED_PRECONDITION]: "FAILED_PRECONDITION",
  [grpc.status.ABORTED]: "ABORTED",
  [grpc.status.RESOURCE_EXHAUSTED]: "RESOURCE_EXHAUSTED",
  [grpc.status.UNIMPLEMENTED]: "UNIMPLEMENTED",
  [grpc.status.INTERNAL]: "INTERNAL",
  [grpc.status.UNAVAILABLE]: "UNAVAILABLE",
  [grpc.status.UNAUTHENTICATED]: "UNAUTHENTICATED",
  [grpc.status.PERMISSION_DENIED]: "PERMISSION_DENIED",
};

/**
 * grpc-js's words for a call that failed before any connection carried it: the subchannel never
 * connected ("No connection established. Last error: connect ECONNREFUSED ...", also a failed
 * TLS handshake) or the name did not resolve. Pinned by client-sdk/not_sent.test.ts against real
 * refused and unresolvable endpoints, so a grpc-js upgrade that rewords them fails that test.
 */
const NOT_SENT_DETAILS = ["No connection established", "Name resolution failed"];

export function isNotSent(error: grpc.ServiceError): boolean {
  return error.code === grpc.status.UNAVAILABLE && NOT_SENT_DETAILS.some((d) => (error.details ?? "").startsWith(d));
}

/** Decodes a grpc-js error and its `tenure-error-bin` trailer. */
export function fromServiceError(error: grpc.ServiceError): TenureError {
  const raw = error.metadata.get(ERROR_DETAIL_METADATA_KEY)[0];
  let detail = null;
  if (Buffer.isBuffer(raw)) {
    try {
      detail = decodeErrorDetail(raw);
    } catch {
      detail = null; // a malformed trailer must not hide the status itself
    }
  }
  const reasonCode = detail ? codeForReason(detail.reason) : null;
  const code = reasonCode ?? GRPC_CODES[error.code] ?? "UNKNOWN";
  const init: TenureErrorInit = {
    grpcCode: error.code,
    cause: error,
    notSent: detail === null && isNotSent(error),
    ...(detail && detail.reason !== "REASON_UNSPECIFIED" ? { reason: detail.reason } : {}),
    ...(detail ? { leaderHint: detail.leaderAddress, currentToken: detail.currentToken, retryAfterMs: detail.retryAfterMs ?? 0 } : {}),
  };
  return new TenureError(code, error.details || error.message, init);
}
