// The lock service's oracle (DESIGN.md §7.3; research notes §4 items 8-11): it sees every grant
// on every replica, every replica's state hash, every outcome a node hands a client, every write
// the guard accepts and every client's belief that it holds a lock, in TRUE simulated time.
//
//   token-not-increasing  per lock, and over the whole cluster, tokens strictly increase in grant
//                         (log) order; the grant at a log position is identical on every replica
//   applied-diverged      replicas at the same applied index have the same stateHash
//   guard-accepted-stale  the guard never accepts a token below one it accepted (own record, so a
//                         guard that corrupts its own max is caught too); holds even when clock
//                         bounds are broken
//   exactly-once          a (clientId, seq) yields one result (same token) however often it is
//                         retried, and is applied as new at most once
//   mutual-exclusion      two holders' belief intervals for one lock never overlap in true time;
//                         under the negative control an overlap is an expected OBSERVATION
//   grant-without-lease   a lock is granted only to a lease the replica holds; a grant to a lease
//                         that does not exist can never be released by expiry (the lock is lost)

import type { CheckName } from "./checkers.ts";
import type { GuardWrite } from "./sim_guard.ts";
import type { ApplyResult } from "../../server/state/results.ts";

export interface GrantSeen {
  readonly name: string;
  readonly leaseId: number;
  readonly token: number;
}

interface Belief {
  readonly id: number;
  readonly client: string;
  readonly lock: string;
  readonly token: number;
  readonly start: number;
  /** Set when the client stopped believing (true time). */
  end: number | null;
  /** While open: when the client's own deadline falls, in true time. */
  deadline: number;
  /** Latest true time the client acted on this belief (a write sent). */
  actedUntil: number;
}

const beliefsPerLockMax = 400;

export class LockChecker {
  nowMs = 0;
  overlapsObserved = 0;
  readonly observations: string[] = [];
  private readonly grantAt = new Map<string, GrantSeen>();
  /** Per lock (and "*" for the whole cluster): [position, token] in log order. */
  private readonly tokenOrder = new Map<string, { pos: number; token: number }[]>();
  private readonly hashAt = new Map<number, string>();
  private readonly guardMax = new Map<string, number>();
  private readonly outcomes = new Map<string, { result: string; fresh: number }>();
  private readonly beliefs = new Map<string, Belief[]>();
  private readonly reported = new Set<string>();
  private beliefNext = 1;
  grantsSeen = 0;
  beliefsOpened = 0;
  staleRejected = 0;

  constructor(
    private readonly fail: (check: CheckName, detail: string) => void,
    /** Negative control: clock bounds are broken on purpose, so overlap is expected. */
    private readonly overlapExpected: boolean,
  ) {}

  // ------------------------------------------------------------------ replicas

  /** A replica applied entry `index`, whose k-th grant event is `g`. */
  onGrant(node: string, index: number, k: number, g: GrantSeen, leaseExists: boolean): void {
    if (!leaseExists) this.fail("grant-without-lease", `${node} granted ${g.name} token ${g.token} at ${index} to missing lease ${g.leaseId}`);
    const key = `${index}/${k}`;
    const known = this.grantAt.get(key);
    if (known !== undefined) {
      if (known.name !== g.name || known.token !== g.token || known.leaseId !== g.leaseId) {
        this.fail("token-not-increasing", `${node} grant at ${key} is ${fmt(g)}, another replica's is ${fmt(known)}`);
      }
      return;
    }
    this.grantAt.set(key, g);
    this.grantsSeen++;
    const pos = index * 64 + Math.min(k, 63);
    this.expectIncreasing(g.name, pos, g.token, `${node} at ${key}`);
    this.expectIncreasing("*", pos, g.token, `${node} at ${key} (${g.name})`);
  }

  private expectIncreasing(series: string, pos: number, token: number, where: string): void {
    let list = this.tokenOrder.get(series);
    if (list === undefined) this.tokenOrder.set(series, (list = []));
    let at = list.length;
    while (at > 0 && (list[at - 1]?.pos ?? 0) > pos) at--;
    const before = list[at - 1];
    const after = list[at];
    if (before !== undefined && before.token >= token) {
      this.fail("token-not-increasing", `${series === "*" ? "cluster" : `lock ${series}`}: token ${token} ${where} after ${before.token}`);
    }
    if (after !== undefined && after.token <= token) {
      this.fail("token-not-increasing", `${series === "*" ? "cluster" : `lock ${series}`}: token ${token} ${where} before ${after.token}`);
    }
    list.splice(at, 0, { pos, token });
  }

  /** A replica's state machine reached `appliedIndex` with this stateHash. */
  onStateHash(node: string, appliedIndex: number, hash: string): void {
    const known = this.hashAt.get(appliedIndex);
    if (known === undefined) this.hashAt.set(appliedIndex, hash);
    else if (known !== hash) this.fail("applied-diverged", `${node} state at ${appliedIndex} is ${hash}, another replica's is ${known}`);
  }

  // ------------------------------------------------------------------ clients and guard

  /** A node handed this outcome for (clientId, seq) to the network (it may be lost on the way). */
  onApplied(clientId: string, seq: number, result: ApplyResult): void {
    const key = `${clientId}/${seq}`;
    const { index: _index, replayed, events: _events, ...rest } = result;
    const canonical = JSON.stringify(rest);
    const known = this.outcomes.get(key);
    // A late duplicate of a request the client already finished (it only sends seq + 1 after an
    // answer to seq) is refused, not re-executed: that is exactly-once, unless seq never applied.
    if (!result.ok && result.code === "STALE_SEQUENCE") {
      if (known === undefined) this.fail("exactly-once", `${key} refused as stale but never applied`);
      return;
    }
    if (known === undefined) {
      this.outcomes.set(key, { result: canonical, fresh: replayed ? 0 : 1 });
      return;
    }
    if (known.result !== canonical) this.fail("exactly-once", `${key} answered ${canonical} after ${known.result}`);
    if (!replayed && ++known.fresh > 1) this.fail("exactly-once", `${key} applied as new twice (second at ${result.index})`);
  }

  onGuardAccepted(write: GuardWrite): void {
    const max = this.guardMax.get(write.resource) ?? 0;
    if (write.token < max) {
      this.fail("guard-accepted-stale", `guard accepted ${write.clientId}'s token ${write.token} on ${write.resource} after ${max}`);
    }
    this.guardMax.set(write.resource, Math.max(max, write.token));
  }

  onGuardRejected(): void {
    this.staleRejected++;
  }

  /** The client starts believing it holds `lock` with `token` (true time now). */
  openBelief(client: string, lock: string, token: number, deadline: number): number {
    const b: Belief = { id: this.beliefNext++, client, lock, token, start: this.nowMs, end: null, deadline, actedUntil: this.nowMs };
    let list = this.beliefs.get(lock);
    if (list === undefined) this.beliefs.set(lock, (list = []));
    list.push(b);
    if (list.length > beliefsPerLockMax) list.splice(0, list.length - beliefsPerLockMax);
    this.beliefsOpened++;
    this.checkOverlap(b);
    return b.id;
  }

  /** A renewal moved the holder's deadline (true time). */
  extendBelief(lock: string, id: number, deadline: number): void {
    const b = this.find(lock, id);
    if (b && b.end === null) b.deadline = Math.max(b.deadline, deadline);
  }

  /** The client acted on its belief now (sent a guarded write). */
  actOnBelief(lock: string, id: number): void {
    const b = this.find(lock, id);
    if (!b) return;
    // A correct client acts only inside its belief, so this moves nothing; a holder that was
    // paused without noticing acts after its deadline, and its interval stretches to now.
    b.actedUntil = Math.max(b.actedUntil, this.nowMs);
    this.checkOverlap(b);
  }

  /** The client stopped believing at true time `at` (its deadline, or now). */
  closeBelief(lock: string, id: number, at: number): void {
    const b = this.find(lock, id);
    // A belief ends at the client's deadline at the latest, unless it acted later (an unnoticed
    // pause): a client that wakes from a noticed pause past its deadline did nothing after it.
    if (b && b.end === null) b.end = Math.max(b.start, b.actedUntil, Math.min(at, this.nowMs, b.deadline));
  }

  private endOf(b: Belief): number {
    if (b.end !== null) return b.end;
    return Math.max(b.actedUntil, Math.min(this.nowMs, b.deadline));
  }

  private find(lock: string, id: number): Belief | undefined {
    return this.beliefs.get(lock)?.find((b) => b.id === id);
  }

  private checkOverlap(b: Belief): void {
    const bEnd = this.endOf(b);
    for (const other of this.beliefs.get(b.lock) ?? []) {
      if (other.id === b.id || other.token === b.token) continue;
      const overlaps = other.start < bEnd && b.start < this.endOf(other);
      if (!overlaps) continue;
      const pair = other.id < b.id ? `${other.id}-${b.id}` : `${b.id}-${other.id}`;
      if (this.reported.has(pair)) continue;
      this.reported.add(pair);
      const [first, second] = other.start <= b.start ? [other, b] : [b, other];
      const detail =
        `lock ${b.lock}: ${first.client} (token ${first.token}) believed until ${this.endOf(first).toFixed(1)} ` +
        `but ${second.client} (token ${second.token}) believed from ${second.start.toFixed(1)}`;
      if (this.overlapExpected) {
        this.overlapsObserved++;
        if (this.observations.length < 10) this.observations.push(detail);
      } else this.fail("mutual-exclusion", detail);
    }
  }
}

function fmt(g: GrantSeen): string {
  return `${g.name}#${g.token}@lease${g.leaseId}`;
}
