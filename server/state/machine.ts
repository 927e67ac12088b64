// LockStateMachine: leases, locks, elections and fencing tokens, applied from the Raft log. PURE.
//
// apply(index, entryData) decodes one committed entry and returns an ApplyResult (expected
// outcomes are values; a broken invariant throws AssertionError). Replicas that apply the same
// entries reach the same state, byte for byte (stateHash).
//
// Time: the machine never reads a clock. Each entry carries the proposing leader's time; the
// machine's time is max(previous, stamp). The node layer must stamp in the machine's time domain:
// on becoming leader, take base = leaderTimeMs() after applying everything, and stamp
// base + (local monotonic now - local monotonic at that moment). Its first proposal must be
// LeaderTimersRestart: every lease and lock-delay then runs at full length from the new leader's
// time, and timer commands (LeaseExpire, LockDelayEnd) of a term without that restart are no-ops.
// timers(now) lists the guarded commands the leader should propose now.

import { assert } from "../core/assert.ts";
import type { ApplyContext } from "./apply_context.ts";
import { callerOf, isIdentity, sessionKey } from "./caller.ts";
import { applyClientCommand, applySystemCommand, type FrozenState, type MachineTables } from "./command_handlers.ts";
import { decodeCommand, isClientCommand, type ClientCommand, type SystemCommand } from "./commands.ts";
import { ElectionTable, type ElectionLeader } from "./election_table.ts";
import { fnv1a64Hex } from "./hash.ts";
import { IdAllocator } from "./id_allocator.ts";
import { LeaseTable } from "./lease_table.ts";
import { DEFAULT_STATE_CONFIG, SESSION_SWEEP_PER_APPLY_MAX, utf8ByteLength, validateStateConfig, type StateConfig } from "./limits.ts";
import { LockTable, type MutexStatus } from "./lock_table.ts";
import { decodeImage, encodeImage, type MachineImage } from "./machine_snapshot.ts";
import { errorResult, okResult, type ApplyResult, type CommandResult, type StateEvent } from "./results.ts";
import { requestDigest } from "./request_digest.ts";
import { SessionTable } from "./session_table.ts";

export interface LeaseInfo {
  readonly leaseId: number;
  readonly clientId: string;
  /** The identity that granted it (caller.ts). */
  readonly owner: string;
  readonly ttlMs: number;
  readonly grantedAtMs: number;
  readonly serverDeadlineMs: number;
  /** Leader time left before the server deadline (0 once it passed). */
  readonly remainingMs: number;
  /** Past its deadline, waiting for its LeaseExpire to commit. */
  readonly expiring: boolean;
  readonly locks: readonly string[];
  readonly elections: readonly string[];
}

export interface TokenCheck {
  /** True iff `token` is the current grant of `name` and its holder's lease is live. */
  readonly current: boolean;
  readonly table: "lock" | "election" | null;
  readonly currentToken: number | null;
}

/** LockStateMachine.usage(): how many of each the tables hold now. */
export interface MachineUsage {
  readonly leases: number;
  readonly locksHeld: number;
  /** Locks in lock-delay (their holder's lease expired; nobody holds them until it ends). */
  readonly locksDelayed: number;
  readonly lockWaiters: number;
  /** Elections with a leader. */
  readonly electionsLed: number;
  readonly electionWaiters: number;
  /** Exactly-once sessions kept (one per client identity and id, bounded by sessionsMax). */
  readonly sessions: number;
  /** The cluster is frozen (Freeze): no new grants until Thaw. */
  readonly frozen: boolean;
}

/** Timer commands proposed per timers() call, at most (the rest come next tick). */
export const TIMER_COMMANDS_MAX = 256;

export class LockStateMachine {
  private readonly s: MachineTables;

  constructor(config: StateConfig = DEFAULT_STATE_CONFIG, image?: MachineImage) {
    validateStateConfig(config);
    const limits = { sessionsMax: config.limits.sessionsMax, sessionIdleMs: config.sessionIdleMs };
    this.s = {
      config,
      ids: new IdAllocator(image !== undefined && config.bugs?.reuseTokenAfterRestore === true ? rewoundIds(image) : image?.ids),
      leases: LeaseTable.restore(config.rho, image?.leases ?? []),
      locks: LockTable.restore("lock", image?.locks ?? []),
      elections: ElectionTable.restore(image?.elections ?? []),
      sessions: SessionTable.restore(limits, { sessions: image?.sessions ?? [], idle: image?.idle ?? [] }),
      appliedIndex: image?.appliedIndex ?? 0,
      nowMs: image?.nowMs ?? 0,
      timersTerm: image?.timersTerm ?? 0,
      frozen: image?.frozen ?? null,
    };
    if (image !== undefined) this.assertRestoredInvariants();
  }

  /** Every holder and waiter names a lease that exists (pair assertion on restore). */
  private assertRestoredInvariants(): void {
    const parked = this.s.locks.parkedCount() + this.s.elections.table.parkedCount();
    assert(parked === 0 || this.s.frozen !== null, "names parked (free with waiters) while not frozen");
    for (const table of [this.s.locks, this.s.elections.table]) {
      for (const record of table.snapshotRecords()) {
        const leaseIds = [...record.waiters.map((w) => w.leaseId), record.holder?.leaseId ?? null];
        for (const leaseId of leaseIds) {
          if (leaseId === null) continue;
          // Lease ids are drawn at random (codec v2): no counter bounds them.
          assert(this.s.leases.get(leaseId) !== undefined, `${record.name} names missing lease ${leaseId}`);
        }
        const token = record.holder?.token ?? 0;
        assert(token <= this.s.ids.counters().lastToken, `${record.name} token beyond the counter`);
      }
    }
  }

  /** Restores a snapshot taken by snapshot() (same cluster: counters continue as they were). */
  static restore(bytes: Uint8Array, config: StateConfig = DEFAULT_STATE_CONFIG): LockStateMachine {
    return new LockStateMachine(config, decodeImage(bytes));
  }

  /**
   * Restores a BACKUP to seed a new cluster: same as restore, then the token and lease-id epoch
   * is raised to max(epoch + 1, epochMin) so no token or lease id of the old cluster is issued
   * again (id_allocator.ts explains epochMin). Seed every member with the result's snapshot().
   */
  static restoreFromBackup(bytes: Uint8Array, options: { readonly epochMin: number; readonly config?: StateConfig }): LockStateMachine {
    const machine = LockStateMachine.restore(bytes, options.config ?? DEFAULT_STATE_CONFIG);
    assert(machine.s.ids.canBump(options.epochMin), `epochMin ${options.epochMin} beyond the epoch space`);
    machine.s.ids.bumpEpoch(options.epochMin);
    // The new cluster counts terms from scratch; its first leader's LeaderTimersRestart re-arms
    // the timers, as on any promotion.
    machine.s.timersTerm = 0;
    return machine;
  }

  apply(index: number, entryData: Uint8Array): ApplyResult {
    const appliedIndex = this.s.appliedIndex;
    assert(Number.isSafeInteger(index) && index > appliedIndex, `apply of index ${index} after ${appliedIndex}`);
    this.s.appliedIndex = index;
    const events: StateEvent[] = [];
    // Empty data: the Raft leader's own no-op (or an entry the node passes without a command).
    if (entryData.length === 0) return { ...okResult({ kind: "Noop" }), index, replayed: false, events };
    const decoded = decodeCommand(entryData);
    if (!decoded.ok) {
      return { ...errorResult("INVALID_ARGUMENT", decoded.reason), index, replayed: false, events };
    }
    const { leaderTimeMs, term, command } = decoded.value;
    this.s.nowMs = Math.max(this.s.nowMs, leaderTimeMs);
    const ids = this.s.ids;
    const nowMs = this.s.nowMs;
    const leases = this.s.leases;
    const ctx: ApplyContext = {
      index,
      nowMs,
      events,
      nextToken: () => ids.nextToken(),
      leaseOwner: (leaseId) => leases.get(leaseId)?.owner ?? "",
      leaseValidity: (leaseId) => {
        const lease = leases.get(leaseId);
        return lease === undefined ? null : leases.validUntil(lease);
      },
      grantsFrozen: () => this.s.frozen !== null,
      leaseLive: (leaseId) => {
        const lease = leases.get(leaseId);
        return lease !== undefined && leases.isLive(lease, nowMs);
      },
    };
    this.s.sessions.sweep(ctx.nowMs, SESSION_SWEEP_PER_APPLY_MAX);
    if (command.kind === "LeaseKeepAliveBatch") {
      // Each renewal exactly as its own entry would apply, in order, at this entry's time.
      const results = command.renewals.map((renewal) => this.applyClient(ctx, renewal));
      return { ...okResult({ kind: "LeaseKeepAliveBatch", results }), index, replayed: false, events };
    }
    if (!isClientCommand(command)) {
      const result = applySystemCommand(this.s, ctx, command, term);
      return { ...result, index, replayed: false, events };
    }
    const { result, replayed } = this.applyClient(ctx, command);
    return { ...result, index, replayed, events };
  }

  private applyClient(ctx: ApplyContext, command: ClientCommand): { result: CommandResult; replayed: boolean } {
    const { clientId, seq } = command;
    const { identity } = callerOf(command);
    const idBytesMax = this.s.config.limits.clientIdBytesMax;
    // No space: it separates identity and client id in the session key (caller.ts).
    if (clientId.length === 0 || utf8ByteLength(clientId) > idBytesMax || clientId.includes(" ")) {
      const result = errorResult("INVALID_ARGUMENT", `clientId must be 1..${idBytesMax} bytes, no space`);
      return { result, replayed: false };
    }
    if (identity !== "" && !isIdentity(identity)) {
      return { result: errorResult("INVALID_ARGUMENT", "identity is malformed"), replayed: false };
    }
    // A seq without a successor (2^53 - 1) is refused by the api (server/api/validate.ts), not
    // here: entries the older code applied with one must still apply the same way on replay.
    const session = sessionKey(identity, clientId);
    const digest = requestDigest(command);
    const check = this.s.sessions.check(session, seq, digest);
    switch (check.kind) {
      case "replay":
        return { result: check.result, replayed: true };
      case "mismatch": {
        // Never another request's result: the caller would believe it holds what it does not.
        const message = `seq ${seq} was first applied to a request with other arguments; this one differs and is refused: use a new seq`;
        return { result: errorResult("STALE_SEQUENCE", message), replayed: false };
      }
      case "stale": {
        const result = errorResult("STALE_SEQUENCE", `seq ${seq} is below ${check.lastSeq}`);
        return { result, replayed: false };
      }
      case "expired": {
        const result = errorResult("SESSION_EXPIRED", `no session for ${clientId} (seq ${seq})`);
        return { result, replayed: false };
      }
      case "new": {
        const result = applyClientCommand(this.s, ctx, command);
        // A taken lease id changed nothing: the leader retries this seq with another draw.
        if (!result.ok && result.code === "LEASE_ID_TAKEN") return { result, replayed: false };
        const hasLeases = this.s.leases.leaseCountOf(session) > 0;
        this.s.sessions.record({ clientId: session, seq, digest, result, nowMs: ctx.nowMs, hasLeases });
        return { result, replayed: false };
      }
    }
  }

  /** The guarded commands the leader should propose at its time nowLeaderMs. */
  timers(nowLeaderMs: number, max: number = TIMER_COMMANDS_MAX): SystemCommand[] {
    const nowMs = Math.max(nowLeaderMs, this.s.nowMs);
    const out: SystemCommand[] = [];
    for (const due of this.s.leases.due(nowMs, max)) out.push({ kind: "LeaseExpire", ...due });
    for (const table of [this.s.locks, this.s.elections.table]) {
      for (const due of table.dueDelays(nowMs, max - out.length)) {
        out.push({ kind: "LockDelayEnd", table: table.table, name: due.name, delayId: due.delayId });
      }
    }
    return out;
  }

  appliedIndex(): number {
    return this.s.appliedIndex;
  }

  /** The machine's time: the largest leader stamp applied. */
  leaderTimeMs(): number {
    return this.s.nowMs;
  }

  timersTerm(): number {
    return this.s.timersTerm;
  }

  /** Table sizes for metrics (server/metrics/state_metrics.ts), each O(1). */
  usage(): MachineUsage {
    const locks = this.s.locks;
    const elections = this.s.elections.table;
    return {
      leases: this.s.leases.size,
      locksHeld: locks.heldCount(),
      locksDelayed: locks.delayedCount(),
      lockWaiters: locks.usage().waiters,
      electionsLed: elections.heldCount(),
      electionWaiters: elections.usage().waiters,
      sessions: this.s.sessions.size,
      frozen: this.s.frozen !== null,
    };
  }

  /** The freeze (Freeze/Thaw), null when not frozen. */
  frozen(): FrozenState | null {
    return this.s.frozen;
  }

  /** The last token issued and the epoch of the next one. */
  tokens(): { readonly lastToken: number; readonly lastLeaseId: number; readonly epoch: number } {
    return { ...this.s.ids.counters(), epoch: this.s.ids.epoch() };
  }

  leaseTimeToLive(leaseId: number, nowLeaderMs: number = this.s.nowMs): LeaseInfo | null {
    const lease = this.s.leases.get(leaseId);
    if (lease === undefined) return null;
    const nowMs = Math.max(nowLeaderMs, this.s.nowMs);
    return {
      leaseId,
      clientId: lease.clientId,
      owner: lease.owner,
      ttlMs: lease.ttlMs,
      grantedAtMs: lease.grantedAtMs,
      serverDeadlineMs: lease.deadlineMs,
      remainingMs: Math.max(0, lease.deadlineMs - nowMs),
      expiring: !this.s.leases.isLive(lease, nowMs),
      locks: this.s.locks.namesOf(leaseId),
      elections: this.s.elections.table.namesOf(leaseId),
    };
  }

  leaseList(): { readonly leaseId: number; readonly clientId: string; readonly owner: string; readonly ttlMs: number }[] {
    return this.s.leases.records().map((l) => ({ leaseId: l.leaseId, clientId: l.clientId, owner: l.owner, ttlMs: l.ttlMs }));
  }

  /** The last request applied on (identity, clientId)'s session, null when there is none. */
  sessionLast(identity: string, clientId: string): { readonly lastSeq: number; readonly digest: string | null } | null {
    const record = this.s.sessions.get(sessionKey(identity, clientId));
    return record === undefined ? null : { lastSeq: record.lastSeq, digest: record.digest };
  }

  /** The identity that owns a lease, null when it does not exist. */
  leaseOwner(leaseId: number): string | null {
    return this.s.leases.get(leaseId)?.owner ?? null;
  }

  lockStatus(name: string): MutexStatus {
    return this.s.locks.status(name);
  }

  electionStatus(name: string): MutexStatus {
    return this.s.elections.status(name);
  }

  electionLeader(name: string): ElectionLeader | null {
    return this.s.elections.leader(name);
  }

  /**
   * CheckSequencer (Chubby): is `token` the current grant of lock (or election) `name`? Tokens are
   * unique cluster-wide, so one name space serves both tables. A holder whose lease is past its
   * deadline is not current: its client has already stopped trusting it. Serve after ReadIndex.
   */
  validateToken(name: string, token: number): TokenCheck {
    let other: TokenCheck = { current: false, table: null, currentToken: null };
    for (const table of [this.s.locks, this.s.elections.table]) {
      const holder = table.holder(name);
      if (holder === null) continue;
      if (holder.token === token) {
        const lease = this.s.leases.get(holder.leaseId);
        assert(lease !== undefined, `holder of ${name} has no lease`);
        return { current: this.s.leases.isLive(lease, this.s.nowMs), table: table.table, currentToken: token };
      }
      if (other.table === null) other = { current: false, table: table.table, currentToken: holder.token };
    }
    return other;
  }

  snapshot(): Uint8Array {
    return encodeImage(this.image());
  }

  /** FNV-1a over the canonical snapshot: equal on replicas that applied the same entries. */
  stateHash(): string {
    return fnv1a64Hex(this.snapshot());
  }

  private image(): MachineImage {
    const sessions = this.s.sessions.image();
    return {
      appliedIndex: this.s.appliedIndex,
      nowMs: this.s.nowMs,
      timersTerm: this.s.timersTerm,
      ids: this.s.ids.counters(),
      leases: this.s.leases.records(),
      locks: this.s.locks.snapshotRecords(),
      elections: this.s.elections.table.snapshotRecords(),
      sessions: sessions.sessions,
      idle: sessions.idle,
      frozen: this.s.frozen,
    };
  }
}

/** The reuseTokenAfterRestore bug switch: the token counter rebuilt from the tokens still held. */
function rewoundIds(image: MachineImage): { lastToken: number; lastLeaseId: number } {
  const held = [...image.locks, ...image.elections].map((r) => r.holder?.token ?? 0);
  return { lastToken: Math.max(0, ...held), lastLeaseId: image.ids.lastLeaseId };
}
