import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { describe, it } from "node:test";
import { encodeErrorDetail, ERROR_DETAIL_METADATA_KEY, type ErrorReason } from "../proto/tenure_protos.ts";
import { TenureError } from "./errors.ts";

function serviceError(
  code: grpc.status,
  reason: ErrorReason | null,
  extra: { leaderAddress?: string; currentToken?: number } = {},
): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (reason) {
    metadata.set(
      ERROR_DETAIL_METADATA_KEY,
      encodeErrorDetail({ reason, leaderId: "b", leaderAddress: extra.leaderAddress ?? "", currentToken: extra.currentToken ?? 0 }),
    );
  }
  return Object.assign(new Error(`${code}: boom`), { code, details: "boom", metadata });
}

describe("TenureError.from", () => {
  it("decodes NOT_LEADER with its hint; retryable", () => {
    const e = TenureError.from(serviceError(grpc.status.UNAVAILABLE, "NOT_LEADER", { leaderAddress: "127.0.0.1:7002" }));
    assert.equal(e.code, "NOT_LEADER");
    assert.equal(e.reason, "NOT_LEADER");
    assert.equal(e.leaderHint, "127.0.0.1:7002");
    assert.equal(e.retryable, true);
    assert.equal(e.grpcCode, grpc.status.UNAVAILABLE);
    assert.ok(e.cause instanceof Error);
  });

  it("decodes OVERLOADED with its retry-after; retryable (same seq, same member)", () => {
    const metadata = new grpc.Metadata();
    metadata.set(
      ERROR_DETAIL_METADATA_KEY,
      encodeErrorDetail({ reason: "OVERLOADED", leaderId: "", leaderAddress: "", currentToken: 0, retryAfterMs: 120 }),
    );
    const e = TenureError.from(Object.assign(new Error("busy"), { code: grpc.status.RESOURCE_EXHAUSTED, details: "busy", metadata }));
    assert.deepEqual(
      [e.code, e.reason, e.retryAfterMs, e.retryable, e.grpcCode],
      ["OVERLOADED", "OVERLOADED", 120, true, grpc.status.RESOURCE_EXHAUSTED],
    );
  });

  it("a reason newer than this SDK (an unknown enum number) keeps the detail and falls back to the status code", () => {
    const metadata = new grpc.Metadata();
    const future = 99 as unknown as ErrorReason; // what a newer server may send
    metadata.set(
      ERROR_DETAIL_METADATA_KEY,
      encodeErrorDetail({ reason: future, leaderId: "c", leaderAddress: "127.0.0.1:7003", currentToken: 5 }),
    );
    const e = TenureError.from(Object.assign(new Error("new"), { code: grpc.status.UNAVAILABLE, details: "new", metadata }));
    assert.deepEqual([e.code, e.reason, e.leaderHint, e.currentToken, e.retryable], ["UNAVAILABLE", undefined, "127.0.0.1:7003", 5, true]);
  });

  it("decodes LOCK_HELD and NOT_HOLDER with the current token; not retryable with the same seq", () => {
    const held = TenureError.from(serviceError(grpc.status.ABORTED, "LOCK_HELD", { currentToken: 42 }));
    assert.deepEqual([held.code, held.currentToken, held.retryable], ["LOCK_HELD", 42, false]);
    const nh = TenureError.from(serviceError(grpc.status.FAILED_PRECONDITION, "NOT_HOLDER", { currentToken: 7 }));
    assert.deepEqual([nh.code, nh.currentToken], ["NOT_HOLDER", 7]);
  });

  it("decodes FROZEN (tenurectl freeze): its own code, FAILED_PRECONDITION, not retryable", () => {
    const e = TenureError.from(serviceError(grpc.status.FAILED_PRECONDITION, "FROZEN"));
    assert.deepEqual([e.code, e.reason, e.grpcCode, e.retryable], ["FROZEN", "FROZEN", grpc.status.FAILED_PRECONDITION, false]);
  });

  it("maps reasons onto codes: OUTCOME_UNKNOWN retryable, TIMEOUT -> DEADLINE_EXCEEDED, LIMIT_EXCEEDED -> RESOURCE_EXHAUSTED, IS_WITNESS -> NOT_LEADER", () => {
    const table: [grpc.status, ErrorReason, string, boolean][] = [
      [grpc.status.UNAVAILABLE, "OUTCOME_UNKNOWN", "OUTCOME_UNKNOWN", true],
      [grpc.status.UNAVAILABLE, "NO_LEADER", "NO_LEADER", true],
      [grpc.status.DEADLINE_EXCEEDED, "TIMEOUT", "DEADLINE_EXCEEDED", false],
      [grpc.status.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED", false],
      [grpc.status.UNAVAILABLE, "IS_WITNESS", "NOT_LEADER", true],
      [grpc.status.NOT_FOUND, "LEASE_NOT_FOUND", "LEASE_NOT_FOUND", false],
      [grpc.status.FAILED_PRECONDITION, "LEASE_EXPIRED", "LEASE_EXPIRED", false],
      [grpc.status.FAILED_PRECONDITION, "SESSION_EXPIRED", "SESSION_EXPIRED", false],
      [grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT", "INVALID_ARGUMENT", false],
    ];
    for (const [status, reason, code, retryable] of table) {
      const e = TenureError.from(serviceError(status, reason));
      assert.equal(e.code, code, reason);
      assert.equal(e.retryable, retryable, reason);
      assert.equal(e.reason, reason);
    }
  });

  it("without a trailer, falls back to the gRPC status (a refused connection is UNAVAILABLE, retryable)", () => {
    const e = TenureError.from(serviceError(grpc.status.UNAVAILABLE, null));
    assert.deepEqual([e.code, e.reason, e.retryable, e.leaderHint], ["UNAVAILABLE", undefined, true, ""]);
    assert.equal(TenureError.from(serviceError(grpc.status.DEADLINE_EXCEEDED, null)).code, "DEADLINE_EXCEEDED");
  });

  it("a malformed trailer does not hide the status", () => {
    const err = serviceError(grpc.status.ABORTED, null);
    err.metadata.set(ERROR_DETAIL_METADATA_KEY, Buffer.from([0xff, 0xff, 0xff]));
    assert.equal(TenureError.from(err).code, "ABORTED");
  });

  it("wraps other errors and returns a TenureError as it is", () => {
    const t = new TenureError("LEASE_LOST", "gone");
    assert.equal(TenureError.from(t), t);
    assert.equal(TenureError.from(new Error("x")).code, "UNKNOWN");
    assert.equal(TenureError.from("str").message, "str");
    assert.equal(TenureError.from(new DOMException("aborted", "AbortError")).code, "CANCELLED");
    assert.ok(t instanceof Error && t.name === "TenureError");
  });
});
