// Loads the tenure.v1 client-API protos (proto/tenure/v1/*.proto) with @grpc/proto-loader, and
// serializes the ErrorDetail carried in trailing metadata. It lives beside the protos so that
// server/api, the witness (which must not import server/api) and tests load the same files
// with the same options; the SDK should use PROTO_LOADER_OPTIONS too (int64 as decimal strings,
// enums as names, camelCase fields).

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as protoLoader from "@grpc/proto-loader";

export const PROTO_ROOT = dirname(fileURLToPath(import.meta.url));

export const PROTO_FILES: readonly string[] = [
  "tenure/v1/errors.proto",
  "tenure/v1/lease.proto",
  "tenure/v1/lock.proto",
  "tenure/v1/election.proto",
  "tenure/v1/cluster.proto",
];

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  // uint64 arrives as a decimal string, so validation sees values beyond 2^53 instead of a
  // silently rounded number.
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export type ServiceName = "Lease" | "Lock" | "Election" | "Cluster";

export const ERROR_DETAIL_METADATA_KEY = "tenure-error-bin";
export const ERROR_REASON_METADATA_KEY = "tenure-error-reason";

let cached: protoLoader.PackageDefinition | null = null;

export function tenurePackage(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync([...PROTO_FILES], PROTO_LOADER_OPTIONS);
  return cached;
}

export function serviceDefinition(name: ServiceName): protoLoader.ServiceDefinition {
  const def = tenurePackage()[`tenure.v1.${name}`];
  if (def === undefined || "format" in def) throw new Error(`tenure.v1.${name} is not a service`);
  return def as protoLoader.ServiceDefinition;
}

function messageType(name: string): protoLoader.MessageTypeDefinition<object, object> {
  const def = tenurePackage()[`tenure.v1.${name}`];
  if (def === undefined || !("format" in def) || def.format !== "Protocol Buffer 3 DescriptorProto") {
    throw new Error(`tenure.v1.${name} is not a message`);
  }
  return def as protoLoader.MessageTypeDefinition<object, object>;
}

export const ERROR_REASONS = [
  "REASON_UNSPECIFIED",
  "NOT_LEADER",
  "NO_LEADER",
  "OUTCOME_UNKNOWN",
  "LEASE_NOT_FOUND",
  "LEASE_EXPIRED",
  "NOT_HOLDER",
  "LOCK_HELD",
  "STALE_SEQUENCE",
  "SESSION_EXPIRED",
  "INVALID_ARGUMENT",
  "LIMIT_EXCEEDED",
  "TIMEOUT",
  "CANCELLED",
  "WAIT_CANCELLED",
  "REFUSED",
  "SLOW_CONSUMER",
  "INTERNAL",
  "IS_WITNESS",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "FROZEN",
  "OVERLOADED",
] as const;

export type ErrorReason = (typeof ERROR_REASONS)[number];

/** tenure.v1.ErrorDetail; empty strings and 0 mean "not set". */
export interface ErrorDetail {
  readonly reason: ErrorReason;
  readonly leaderId: string;
  readonly leaderAddress: string;
  readonly currentToken: number;
  /** OVERLOADED: retry at the same member after this many ms (0 or absent: no hint). */
  readonly retryAfterMs?: number;
}

export function encodeErrorDetail(detail: ErrorDetail): Buffer {
  return messageType("ErrorDetail").serialize(detail);
}

/** Decodes and checks a `tenure-error-bin` value (used by tests; the SDK does the same). */
export function decodeErrorDetail(bytes: Buffer): ErrorDetail {
  const raw: unknown = messageType("ErrorDetail").deserialize(bytes);
  if (typeof raw !== "object" || raw === null) throw new Error("ErrorDetail is not an object");
  const r = raw as Record<string, unknown>;
  // A reason this code does not know (a number: proto3 keeps unknown enum values) comes from a
  // newer server: the detail still carries the leader hint and token, and the status code says
  // what to do, so it reads as REASON_UNSPECIFIED rather than failing the whole trailer.
  const reason = typeof r["reason"] === "number" ? "REASON_UNSPECIFIED" : r["reason"];
  const known = (ERROR_REASONS as readonly unknown[]).includes(reason);
  if (!known || typeof r["leaderId"] !== "string" || typeof r["leaderAddress"] !== "string") {
    throw new Error(`malformed ErrorDetail ${JSON.stringify(raw)}`);
  }
  const currentToken = Number(r["currentToken"]);
  if (!Number.isSafeInteger(currentToken)) throw new Error("ErrorDetail.current_token out of range");
  const retryAfterMs = Number(r["retryAfterMs"] ?? 0);
  if (!Number.isSafeInteger(retryAfterMs) || retryAfterMs < 0) throw new Error("ErrorDetail.retry_after_ms out of range");
  return {
    reason: reason as ErrorReason,
    leaderId: r["leaderId"] as string,
    leaderAddress: r["leaderAddress"] as string,
    currentToken,
    retryAfterMs,
  };
}
