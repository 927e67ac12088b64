// Exactly-once sessions: the last result per client. PURE.
//
// Every client command carries (clientId, seq). The table keeps, per client, the last seq applied,
// the digest of its request (request_digest.ts) and its result:
//   seq == last, same request -> the stored result again (a retry after a lost reply: no second
//                   grant)
//   seq == last, other request -> MISMATCH, refused as STALE_SEQUENCE: a reused seq never gets
//                   another request's result (a token for a lock it does not hold)
//   seq <  last  -> STALE_SEQUENCE (an old duplicate; the client has moved on)
//   seq >  last  -> apply, then store
//   unknown client with seq > 1 -> SESSION_EXPIRED: its session was dropped, so a retry can no
//                   longer be told from a new request (Raft thesis 6.3); the SDK reports the
//                   pending call as OUTCOME_UNKNOWN and starts a new clientId.
// So a client keeps at most one mutating request in flight per clientId.
// A session restored from a snapshot older than digests (version 2, machine_snapshot.ts) has
// digest null: its last seq replays to any request, as before, until the client's next command
// stores a digest. Only that one seq per such session is affected.
//
// Bounded, deterministically (leader time only):
//   - idle expiry: a client with no leases is dropped sessionIdleMs after the later of its last
//     command and the loss of its last lease. `idle` holds such clients ordered by that deadline
//     (time never decreases, so appending keeps the order); each apply drops at most
//     SESSION_SWEEP_PER_APPLY_MAX of them.
//   - a global max: a new client beyond sessionsMax evicts the least recently active session
//     (`sessions` is kept in activity order: touched entries move to the end).
//   - what a session stores is bounded too: an error's message by ERROR_MESSAGE_BYTES_MAX
//     (asserted), every other result by its shape, except a KeepAlive answer, which lists each of
//     up to keepAliveLeaseIdsMax ids. Those ids are counted over all sessions (`keepAliveIds`, in
//     activity order) and kept within keepAliveLeaseIdsStoredMax by makeRoomForKeepAlive: before
//     a KeepAlive applies, the least recently active other sessions holding such answers are
//     evicted until its answer fits, as sessionsMax evicts. So sessions x stored result is
//     bounded (limits.ts stateImageBytesAtMaxima).

import { assert } from "../core/assert.ts";
import { ERROR_MESSAGE_BYTES_MAX, utf8ByteLength } from "./limits.ts";
import { REQUEST_DIGEST_PATTERN } from "./request_digest.ts";
import type { CommandResult } from "./results.ts";

export interface SessionRecord {
  readonly clientId: string;
  readonly lastSeq: number;
  readonly lastActiveMs: number;
  /** requestDigest of the request applied as lastSeq; null: restored from before digests. */
  readonly digest: string | null;
  readonly result: CommandResult;
}

export interface IdleEntry {
  readonly clientId: string;
  readonly dropAtMs: number;
}

export type SessionCheck =
  | { readonly kind: "new" }
  | { readonly kind: "replay"; readonly result: CommandResult }
  /** seq == lastSeq, but the request is not the one applied under it. */
  | { readonly kind: "mismatch" }
  | { readonly kind: "stale"; readonly lastSeq: number }
  | { readonly kind: "expired" };

/** Lease ids a stored result lists: a KeepAlive answer's renewed and failed ids; else 0. */
export function storedKeepAliveIds(result: CommandResult): number {
  return result.ok && result.kind === "LeaseKeepAlive" ? result.renewed.length + result.failed.length : 0;
}

export class SessionTable {
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly idle = new Map<string, number>();
  /** Sessions whose stored result lists lease ids, with their count, in activity order. */
  private readonly keepAliveIds = new Map<string, number>();
  private keepAliveIdsTotal = 0;

  constructor(private readonly options: { readonly sessionsMax: number; readonly sessionIdleMs: number }) {}

  static restore(
    options: { readonly sessionsMax: number; readonly sessionIdleMs: number },
    image: { readonly sessions: readonly SessionRecord[]; readonly idle: readonly IdleEntry[] },
  ): SessionTable {
    const table = new SessionTable(options);
    for (const s of image.sessions) {
      assert(!table.sessions.has(s.clientId), `session ${s.clientId} restored twice`);
      table.sessions.set(s.clientId, s);
      table.countKeepAliveIds(s);
    }
    for (const e of image.idle) {
      assert(table.sessions.has(e.clientId), `idle entry for unknown session ${e.clientId}`);
      table.idle.set(e.clientId, e.dropAtMs);
    }
    return table;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Lease ids in the stored KeepAlive answers of every session. */
  get keepAliveIdsStored(): number {
    return this.keepAliveIdsTotal;
  }

  /** What (clientId, seq) with a request of `digest` is: new, a retry, a mismatch, stale, expired. */
  check(clientId: string, seq: number, digest: string): SessionCheck {
    const session = this.sessions.get(clientId);
    if (session === undefined) return seq === 1 ? { kind: "new" } : { kind: "expired" };
    if (seq === session.lastSeq) {
      const same = session.digest === null || session.digest === digest;
      return same ? { kind: "replay", result: session.result } : { kind: "mismatch" };
    }
    if (seq < session.lastSeq) return { kind: "stale", lastSeq: session.lastSeq };
    return { kind: "new" };
  }

  /** Stores the result of (clientId, seq); `hasLeases` decides whether the idle clock runs. */
  record(options: { clientId: string; seq: number; digest: string; result: CommandResult; nowMs: number; hasLeases: boolean }): void {
    const { clientId, nowMs, result } = options;
    const previous = this.sessions.get(clientId);
    assert(previous === undefined || options.seq > previous.lastSeq, "session seq must grow");
    if (!result.ok) {
      const messageBytes = utf8ByteLength(JSON.stringify(result.message)) - 2;
      assert(messageBytes <= ERROR_MESSAGE_BYTES_MAX, `stored error message of ${messageBytes} bytes: ${result.message}`);
    }
    if (previous === undefined && this.sessions.size >= this.options.sessionsMax) this.evictOldest();
    this.forget(clientId);
    assert(REQUEST_DIGEST_PATTERN.test(options.digest), `malformed request digest ${options.digest}`);
    const session = { clientId, lastSeq: options.seq, lastActiveMs: nowMs, digest: options.digest, result };
    this.sessions.set(clientId, session);
    this.countKeepAliveIds(session);
    if (!options.hasLeases) this.idle.set(clientId, nowMs + this.options.sessionIdleMs);
    assert(this.sessions.size <= this.options.sessionsMax, "sessions over sessionsMax");
  }

  /**
   * Before `clientId` stores a KeepAlive answer of `ids` lease ids: evicts the least recently
   * active OTHER sessions holding KeepAlive answers until the total, with this answer in place of
   * the client's own, is at most `max`. Returns how many sessions were evicted.
   */
  makeRoomForKeepAlive(clientId: string, ids: number, max: number): number {
    assert(ids <= max, `a KeepAlive answer of ${ids} ids cannot fit ${max}`);
    const own = this.keepAliveIds.get(clientId) ?? 0;
    let evicted = 0;
    for (const [other] of this.keepAliveIds) {
      if (this.keepAliveIdsTotal - own + ids <= max) break;
      if (other === clientId) continue;
      this.forget(other);
      evicted += 1;
    }
    assert(this.keepAliveIdsTotal - own + ids <= max, "no room for a KeepAlive answer after evicting");
    return evicted;
  }

  /** The client's last lease is gone: its idle clock starts now. */
  onLeasesGone(clientId: string, nowMs: number): void {
    if (!this.sessions.has(clientId)) return;
    this.idle.delete(clientId);
    this.idle.set(clientId, nowMs + this.options.sessionIdleMs);
  }

  /** Drops idle sessions whose time has come, oldest first, at most `max`. */
  sweep(nowMs: number, max: number): number {
    let dropped = 0;
    for (const [clientId, dropAtMs] of this.idle) {
      if (dropped >= max || dropAtMs > nowMs) break;
      this.forget(clientId);
      dropped += 1;
    }
    return dropped;
  }

  get(clientId: string): SessionRecord | undefined {
    return this.sessions.get(clientId);
  }

  /** Both maps in their own (significant) order. */
  image(): { sessions: SessionRecord[]; idle: IdleEntry[] } {
    return {
      sessions: [...this.sessions.values()],
      idle: [...this.idle].map(([clientId, dropAtMs]) => ({ clientId, dropAtMs })),
    };
  }

  private evictOldest(): void {
    const oldest = this.sessions.keys().next();
    assert(oldest.done !== true, "evict from an empty session table");
    this.forget(oldest.value);
  }

  /** Drops a session from every index (a no-op for an unknown client). */
  private forget(clientId: string): void {
    this.sessions.delete(clientId);
    this.idle.delete(clientId);
    const ids = this.keepAliveIds.get(clientId);
    if (ids === undefined) return;
    this.keepAliveIds.delete(clientId);
    this.keepAliveIdsTotal -= ids;
    assert(this.keepAliveIdsTotal >= 0, "stored KeepAlive ids went negative");
  }

  private countKeepAliveIds(session: SessionRecord): void {
    const ids = storedKeepAliveIds(session.result);
    if (ids === 0) return;
    this.keepAliveIds.set(session.clientId, ids);
    this.keepAliveIdsTotal += ids;
  }
}
