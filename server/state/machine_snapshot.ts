// The state machine's snapshot image: canonical JSON, decoded with full shape checks. PURE.
//
// Canonical: every table is written in its own significant order (lease ids, lock creation,
// session activity, idle deadlines) and every record is rebuilt field by field on decode, so
// restore(snapshot()) re-encodes to the same bytes and stateHash compares replicas.
// A snapshot that does not decode is corruption (storage checksums it), so decode asserts.
//
// Versions: 2 adds each lease's owner (caller.ts). A version 1 image (taken before identities)
// still restores: its leases belong to the anonymous identity "", and its sessions are keyed by
// the bare client id, which is what sessionKey("", clientId) is. 3 adds each session's request
// digest (request_digest.ts); a version 1 or 2 image restores its sessions with digest null (a
// retry of their last seq replays as before, see session_table.ts), and a version 3 image may
// hold null too, for such a session not yet written to since. A member of the older code refuses
// a version 3 image, so upgrade every member together (as for version 2). Right after an upgrade
// a replica that restored a version 2 image and one that applied the same entries under this code
// may differ in one thing: whether a session's digest is null (its stateHash differs) until that
// client's next command stores one; the tables agree, and only a mismatched retry of that one
// seq is answered differently (replayed there, refused here). 4 adds the freeze (frozen: null or
// {reason, by, sinceMs}; Freeze/Thaw, command_handlers.ts) and lets a lock or election record be
// PARKED (no holder, no delay, waiters; only in a frozen image). An image of version 1 to 3 restores
// not frozen. A member of the older code refuses a version 4 image: upgrade every member together.

import { assert } from "../core/assert.ts";
import { isIdentity } from "./caller.ts";
import type { FrozenState } from "./command_handlers.ts";
import type { IdCounters } from "./id_allocator.ts";
import type { LeaseRecord } from "./lease_table.ts";
import type { Delay, Holder, MutexRecord, Waiter } from "./lock_table.ts";
import { REQUEST_DIGEST_PATTERN } from "./request_digest.ts";
import type { CommandResult } from "./results.ts";
import type { IdleEntry, SessionRecord } from "./session_table.ts";

export const SNAPSHOT_VERSION = 4;
const SNAPSHOT_VERSIONS_DECODED: readonly number[] = [1, 2, 3, SNAPSHOT_VERSION];

export interface MachineImage {
  readonly appliedIndex: number;
  readonly nowMs: number;
  readonly timersTerm: number;
  readonly ids: IdCounters;
  readonly leases: readonly LeaseRecord[];
  readonly locks: readonly MutexRecord[];
  readonly elections: readonly MutexRecord[];
  readonly sessions: readonly SessionRecord[];
  readonly idle: readonly IdleEntry[];
  /** Since version 4; absent in an older image: not frozen. */
  readonly frozen?: FrozenState | null;
}

export function encodeImage(image: MachineImage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: SNAPSHOT_VERSION, ...image }));
}

export function decodeImage(bytes: Uint8Array): MachineImage {
  const raw: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  const o = obj(raw, "snapshot");
  const version = o["v"];
  assert(typeof version === "number" && SNAPSHOT_VERSIONS_DECODED.includes(version), `unsupported snapshot version ${String(version)}`);
  const ids = obj(o["ids"], "ids");
  return {
    appliedIndex: uint(o, "appliedIndex"),
    nowMs: uint(o, "nowMs"),
    timersTerm: uint(o, "timersTerm"),
    ids: { lastToken: uint(ids, "lastToken"), lastLeaseId: uint(ids, "lastLeaseId") },
    leases: list(o, "leases").map((l) => decodeLease(l, version)),
    locks: list(o, "locks").map(decodeMutex),
    elections: list(o, "elections").map(decodeMutex),
    sessions: list(o, "sessions").map((s) => decodeSession(s, version)),
    idle: list(o, "idle").map((e) => {
      const r = obj(e, "idle entry");
      return { clientId: str(r, "clientId"), dropAtMs: uint(r, "dropAtMs") };
    }),
    frozen: version < 4 ? null : decodeFrozen(o["frozen"]),
  };
}

function decodeFrozen(value: unknown): FrozenState | null {
  if (value === null) return null;
  const r = obj(value, "frozen");
  const by = str(r, "by");
  assert(by === "" || isIdentity(by), "frozen by must be an identity");
  return { reason: str(r, "reason"), by, sinceMs: uint(r, "sinceMs") };
}

function decodeLease(value: unknown, version: number): LeaseRecord {
  const r = obj(value, "lease");
  const owner = version === 1 ? "" : str(r, "owner");
  assert(owner === "" || isIdentity(owner), "lease owner must be an identity");
  return {
    leaseId: uint(r, "leaseId"),
    clientId: str(r, "clientId"),
    owner,
    ttlMs: uint(r, "ttlMs"),
    grantedAtMs: uint(r, "grantedAtMs"),
    renewedAtMs: uint(r, "renewedAtMs"),
    deadlineMs: uint(r, "deadlineMs"),
    renewSeq: uint(r, "renewSeq"),
  };
}

function decodeMutex(value: unknown): MutexRecord {
  const r = obj(value, "mutex");
  const holderRaw = r["holder"];
  const delayRaw = r["delay"];
  let holder: Holder | null = null;
  if (holderRaw !== null) {
    const h = obj(holderRaw, "holder");
    holder = {
      leaseId: uint(h, "leaseId"),
      token: uint(h, "token"),
      value: str(h, "value"),
      grantedAtMs: uint(h, "grantedAtMs"),
    };
  }
  let delay: Delay | null = null;
  if (delayRaw !== null) {
    const d = obj(delayRaw, "delay");
    delay = { delayId: uint(d, "delayId"), untilMs: uint(d, "untilMs") };
  }
  const waiters: Waiter[] = list(r, "waiters").map((w) => {
    const x = obj(w, "waiter");
    return { leaseId: uint(x, "leaseId"), value: str(x, "value") };
  });
  return { name: str(r, "name"), holder, waiters, delay };
}

function decodeSession(value: unknown, version: number): SessionRecord {
  const r = obj(value, "session");
  const result = obj(r["result"], "session result");
  assert(typeof result["ok"] === "boolean", "session result needs ok");
  const digest = version < 3 ? null : r["digest"];
  const digestOk = digest === null || (typeof digest === "string" && REQUEST_DIGEST_PATTERN.test(digest));
  assert(digestOk, "session digest must be null or 32 hex digits");
  return {
    clientId: str(r, "clientId"),
    lastSeq: uint(r, "lastSeq"),
    lastActiveMs: uint(r, "lastActiveMs"),
    digest: digest as string | null,
    // Stored results are opaque: written by this machine and handed back verbatim on a retry.
    result: result as unknown as CommandResult,
  };
}

function obj(value: unknown, what: string): Record<string, unknown> {
  assert(typeof value === "object" && value !== null && !Array.isArray(value), `${what} must be an object`);
  return value as Record<string, unknown>;
}

function list(o: Record<string, unknown>, key: string): unknown[] {
  const value = o[key];
  assert(Array.isArray(value), `${key} must be an array`);
  return value as unknown[];
}

function uint(o: Record<string, unknown>, key: string): number {
  const value = o[key];
  const ok = typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
  assert(ok, `${key} must be a safe integer >= 0`);
  return value as number;
}

function str(o: Record<string, unknown>, key: string): string {
  const value = o[key];
  assert(typeof value === "string", `${key} must be a string`);
  return value;
}
