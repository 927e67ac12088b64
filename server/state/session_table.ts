// Exactly-once sessions: the last result per client. PURE.
//
// Every client command carries (clientId, seq). The table keeps, per client, the last seq applied
// and its result:
//   seq == last  -> the stored result again (a retry after a lost reply: no second grant)
//   seq <  last  -> STALE_SEQUENCE (an old duplicate; the client has moved on)
//   seq >  last  -> apply, then store
//   unknown client with seq > 1 -> SESSION_EXPIRED: its session was dropped, so a retry can no
//                   longer be told from a new request (Raft thesis 6.3); the SDK reports the
//                   pending call as OUTCOME_UNKNOWN and starts a new clientId.
// So a client keeps at most one mutating request in flight per clientId.
//
// Bounded, deterministically (leader time only):
//   - idle expiry: a client with no leases is dropped sessionIdleMs after the later of its last
//     command and the loss of its last lease. `idle` holds such clients ordered by that deadline
//     (time never decreases, so appending keeps the order); each apply drops at most
//     SESSION_SWEEP_PER_APPLY_MAX of them.
//   - a global max: a new client beyond sessionsMax evicts the least recently active session
//     (`sessions` is kept in activity order: touched entries move to the end).

import { assert } from "../core/assert.ts";
import type { CommandResult } from "./results.ts";

export interface SessionRecord {
  readonly clientId: string;
  readonly lastSeq: number;
  readonly lastActiveMs: number;
  readonly result: CommandResult;
}

export interface IdleEntry {
  readonly clientId: string;
  readonly dropAtMs: number;
}

export type SessionCheck =
  | { readonly kind: "new" }
  | { readonly kind: "replay"; readonly result: CommandResult }
  | { readonly kind: "stale"; readonly lastSeq: number }
  | { readonly kind: "expired" };

export class SessionTable {
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly idle = new Map<string, number>();

  constructor(private readonly options: { readonly sessionsMax: number; readonly sessionIdleMs: number }) {}

  static restore(
    options: { readonly sessionsMax: number; readonly sessionIdleMs: number },
    image: { readonly sessions: readonly SessionRecord[]; readonly idle: readonly IdleEntry[] },
  ): SessionTable {
    const table = new SessionTable(options);
    for (const s of image.sessions) table.sessions.set(s.clientId, s);
    for (const e of image.idle) {
      assert(table.sessions.has(e.clientId), `idle entry for unknown session ${e.clientId}`);
      table.idle.set(e.clientId, e.dropAtMs);
    }
    return table;
  }

  get size(): number {
    return this.sessions.size;
  }

  check(clientId: string, seq: number): SessionCheck {
    const session = this.sessions.get(clientId);
    if (session === undefined) return seq === 1 ? { kind: "new" } : { kind: "expired" };
    if (seq === session.lastSeq) return { kind: "replay", result: session.result };
    if (seq < session.lastSeq) return { kind: "stale", lastSeq: session.lastSeq };
    return { kind: "new" };
  }

  /** Stores the result of (clientId, seq); `hasLeases` decides whether the idle clock runs. */
  record(options: {
    clientId: string;
    seq: number;
    result: CommandResult;
    nowMs: number;
    hasLeases: boolean;
  }): void {
    const { clientId, nowMs } = options;
    const previous = this.sessions.get(clientId);
    assert(previous === undefined || options.seq > previous.lastSeq, "session seq must grow");
    if (previous === undefined && this.sessions.size >= this.options.sessionsMax) this.evictOldest();
    this.sessions.delete(clientId);
    const session = { clientId, lastSeq: options.seq, lastActiveMs: nowMs, result: options.result };
    this.sessions.set(clientId, session);
    this.idle.delete(clientId);
    if (!options.hasLeases) this.idle.set(clientId, nowMs + this.options.sessionIdleMs);
    assert(this.sessions.size <= this.options.sessionsMax, "sessions over sessionsMax");
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
      this.idle.delete(clientId);
      this.sessions.delete(clientId);
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
    this.sessions.delete(oldest.value);
    this.idle.delete(oldest.value);
  }
}
