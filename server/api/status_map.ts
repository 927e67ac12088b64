// The one place where internal outcomes become gRPC statuses (see README.md for the table).
//
// Handlers throw ApiError for expected failures. Anything else that escapes a handler is a bug,
// and which kind decides what happens:
//   - an invariant violation (isFatal: AssertionError, StorageCorruptError) stops the process
//     through server/fatal.ts: the node's state is broken, so no answer from it can be trusted;
//   - any other exception is answered with INTERNAL, logged as one JSON line on stderr, and the
//     server carries on. etcd panics here instead; we don't, because a handler only parses,
//     submits commands and reads the machine: a TypeError in an encoder has not touched
//     replicated state, while a broken invariant in the core or the machine throws AssertionError.
// Every error carries an ErrorDetail in trailing metadata (`tenure-error-bin`).

import * as grpc from "@grpc/grpc-js";
import { fatal, isFatal } from "../fatal.ts";
import type { LeaderHint, NodeApi, ReadOutcome, SubmitOutcome } from "../node/node_api.ts";
import type { ErrorCode } from "../state/results.ts";
import { ERROR_DETAIL_METADATA_KEY, ERROR_REASON_METADATA_KEY, encodeErrorDetail, type ErrorDetail, type ErrorReason } from "./protos.ts";

const Status = grpc.status;

/** Status code of every reason: the table documented in errors.proto and README.md. */
export const REASON_STATUS: Readonly<Record<ErrorReason, grpc.status>> = {
  REASON_UNSPECIFIED: Status.UNKNOWN,
  NOT_LEADER: Status.UNAVAILABLE,
  NO_LEADER: Status.UNAVAILABLE,
  OUTCOME_UNKNOWN: Status.UNAVAILABLE,
  LEASE_NOT_FOUND: Status.NOT_FOUND,
  LEASE_EXPIRED: Status.FAILED_PRECONDITION,
  NOT_HOLDER: Status.FAILED_PRECONDITION,
  // A try-lock is a test-and-set that lost: ABORTED ("retry at a higher level"), and distinct
  // from the lease problems that use FAILED_PRECONDITION.
  LOCK_HELD: Status.ABORTED,
  STALE_SEQUENCE: Status.FAILED_PRECONDITION,
  SESSION_EXPIRED: Status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  LIMIT_EXCEEDED: Status.RESOURCE_EXHAUSTED,
  TIMEOUT: Status.DEADLINE_EXCEEDED,
  CANCELLED: Status.CANCELLED,
  WAIT_CANCELLED: Status.ABORTED,
  REFUSED: Status.FAILED_PRECONDITION,
  SLOW_CONSUMER: Status.RESOURCE_EXHAUSTED,
  INTERNAL: Status.INTERNAL,
  // Only the witness process answers it (witness/client_stub.ts); retry at the hinted leader.
  IS_WITNESS: Status.UNAVAILABLE,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  // Cluster.Freeze: no new grants until Thaw (renewals, releases and reads are served).
  FROZEN: Status.FAILED_PRECONDITION,
  // The leader's queue of requests awaiting commit is full: back off and retry at the same member
  // (retry_after_ms in the detail). Not NO_LEADER, which sends a client to another member.
  OVERLOADED: Status.RESOURCE_EXHAUSTED,
};

/** State machine error codes are a subset of the wire reasons, with the same names. */
const CODE_REASON: Readonly<Record<ErrorCode, ErrorReason>> = {
  LEASE_NOT_FOUND: "LEASE_NOT_FOUND",
  LEASE_EXPIRED: "LEASE_EXPIRED",
  NOT_HOLDER: "NOT_HOLDER",
  LOCK_HELD: "LOCK_HELD",
  STALE_SEQUENCE: "STALE_SEQUENCE",
  SESSION_EXPIRED: "SESSION_EXPIRED",
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  LIMIT_EXCEEDED: "LIMIT_EXCEEDED",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  // The handler draws another lease id and retries (lease_service.ts); seen only if it gives up.
  LEASE_ID_TAKEN: "INTERNAL",
  FROZEN: "FROZEN",
};

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: grpc.status;
  readonly detail: ErrorDetail;

  constructor(reason: ErrorReason, message: string, extra: Partial<Omit<ErrorDetail, "reason">> = {}) {
    super(message);
    this.code = REASON_STATUS[reason];
    this.detail = {
      reason,
      leaderId: extra.leaderId ?? "",
      leaderAddress: extra.leaderAddress ?? "",
      currentToken: extra.currentToken ?? 0,
      ...(extra.retryAfterMs ? { retryAfterMs: extra.retryAfterMs } : {}),
    };
  }

  get reason(): ErrorReason {
    return this.detail.reason;
  }

  withCurrentToken(currentToken: number): ApiError {
    return new ApiError(this.reason, this.message, { ...this.detail, currentToken });
  }
}

/**
 * LOCK_HELD with the refusing grant's token from the state machine's result (CommandError
 * currentToken): the handler answers it as it is, without a read for the token.
 */
export class LockHeldError extends ApiError {
  constructor(message: string, currentToken: number) {
    super("LOCK_HELD", message, { currentToken });
  }
}

export function invalidArgument(message: string): ApiError {
  return new ApiError("INVALID_ARGUMENT", message);
}

/** A state machine error result. */
export function errorFromCode(code: ErrorCode, message: string): ApiError {
  return new ApiError(CODE_REASON[code], message);
}

type NotApplied = Exclude<SubmitOutcome, { kind: "applied" }> | Exclude<ReadOutcome<unknown>, { kind: "read" }>;

/** A submit or read that did not produce a state machine answer. */
export function errorFromOutcome(outcome: NotApplied, node: NodeApi): ApiError {
  switch (outcome.kind) {
    case "notLeader":
      return notLeaderError(outcome.hint, node);
    case "unavailable":
      return new ApiError("NO_LEADER", `not serving: ${outcome.reason}; retry with the same seq`);
    case "overloaded":
      return new ApiError(
        "OVERLOADED",
        `overloaded: ${outcome.reason}; nothing was proposed, retry here after ${outcome.retryAfterMs} ms with the same seq`,
        {
          retryAfterMs: outcome.retryAfterMs,
        },
      );
    case "outcomeUnknown":
      return new ApiError("OUTCOME_UNKNOWN", `the request may or may not have been applied (${outcome.reason}); retry with the same seq`);
  }
}

export function notLeaderError(hint: LeaderHint | null, node: NodeApi): ApiError {
  if (hint === null || hint.leaderId === "") {
    return new ApiError("NO_LEADER", "this node is not the leader and knows no leader; retry later");
  }
  const leaderAddress = hint.leaderAddress ?? node.memberAddresses().get(hint.leaderId) ?? "";
  const where = leaderAddress === "" ? hint.leaderId : `${hint.leaderId} at ${leaderAddress}`;
  return new ApiError("NOT_LEADER", `not the leader; the leader is ${where}`, {
    leaderId: hint.leaderId,
    leaderAddress,
  });
}

/** The status object grpc-js sends for `error`: code, message and the detail trailers. */
export function toStatusObject(error: unknown, rpc: string): grpc.StatusObject {
  const apiError = error instanceof ApiError ? error : internalError(error, rpc);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_DETAIL_METADATA_KEY, encodeErrorDetail(apiError.detail));
  metadata.set(ERROR_REASON_METADATA_KEY, apiError.reason);
  return { code: apiError.code, details: apiError.message, metadata };
}

function internalError(error: unknown, rpc: string): ApiError {
  // logError stops the process on an invariant violation; INTERNAL is then seen only in tests.
  logError("unexpected exception in handler", rpc, error);
  return new ApiError("INTERNAL", `internal error in ${rpc} (logged on the server)`);
}

/** One JSON line on stderr; never throws. An invariant violation goes to fatal() instead. */
export function logError(msg: string, rpc: string, error: unknown): void {
  if (isFatal(error)) {
    fatal(error, `client call ${rpc}`);
    return;
  }
  try {
    const line = {
      timeMs: Date.now(),
      level: "error",
      component: "api",
      rpc,
      msg,
      error: error instanceof Error ? error.message : String(error),
      stack: error instanceof Error ? error.stack : undefined,
    };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  } catch {
    // Logging must not turn a handled failure into a crash.
  }
}
