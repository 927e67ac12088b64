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
//   read-linearizable     (ReadHistory, once at the end of a run) the readers' answered Status and
//                         ValidateToken reads, with the log's grants and releases, linearize
//                         against the token register of testing/chaos/checker (same model, same
//                         search as the chaos harness)

import type { Operation } from "../chaos/checker/history.ts";
import { checkLinearizability } from "../chaos/checker/linearizability.ts";
import type { CheckName } from "./checkers.ts";
import type { GuardWrite } from "./sim_guard.ts";
import type { ReadRecord } from "./sim_reader.ts";
import type { ApplyResult, StateEvent } from "../../server/state/results.ts";

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
    if (!leaseExists)
      this.fail("grant-without-lease", `${node} granted ${g.name} token ${g.token} at ${index} to missing lease ${g.leaseId}`);
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

// ------------------------------------------------------------------ reads (read-linearizable)

type LockEvent = Extract<StateEvent, { kind: "granted" | "freed" | "delayed" }>;

export interface ReadCheckResult {
  readonly verdict: "ok" | "illegal" | "unknown";
  readonly explanation: string;
  readonly ops: number;
  readonly steps: number;
}

/**
 * The history the read check searches. Writes come from the log, exactly as replicas applied it:
 * the lock events of every entry (recorded at its first apply; every replica applies the same,
 * which applied-diverged checks), each a grant (acquire -> token) or the end of a holder
 * (release -> released: true, for a release, a revoke, an expiry or a hand-off to a waiter). An
 * entry takes effect at ONE instant: when its index first became committed on any node
 * (invocation = completion = that instant). That is exact for ReadIndex: a correct read returns
 * the state after some applied index j >= its read index r; j was committed before the answer
 * left, and j + 1 was not committed anywhere when r was fixed, after the read was sent (a leader
 * that confirmed its term holds every committed entry and has committed one of its own). A read
 * that misses an entry committed before it was sent is a stale read: illegal in the model.
 */
export class ReadHistory {
  /** commitAt[i]: true time at which some node's commit index first reached i. */
  private readonly commitAt: number[] = [0];
  private readonly events = new Map<number, { readonly atMs: number; readonly events: readonly LockEvent[] }>();
  private readonly granted = new Map<string, number[]>();
  private readonly reads: ReadRecord[] = [];

  /** A node's commit index, seen at true time `nowMs`. */
  observeCommit(commit: number, nowMs: number): void {
    while (this.commitAt.length <= commit) this.commitAt.push(nowMs);
  }

  /** A replica applied entry `index` with these state-machine events (the first one counts). */
  onApplied(index: number, events: readonly StateEvent[], nowMs: number): void {
    if (this.events.has(index)) return;
    const lockEvents = events.filter(
      (e): e is LockEvent => (e.kind === "granted" || e.kind === "freed" || e.kind === "delayed") && e.table === "lock",
    );
    if (lockEvents.length === 0) return;
    this.events.set(index, { atMs: nowMs, events: lockEvents });
    for (const e of lockEvents) {
      if (e.kind !== "granted") continue;
      let list = this.granted.get(e.name);
      if (list === undefined) this.granted.set(e.name, (list = []));
      list.push(e.token);
    }
  }

  /** Tokens granted on `lock` so far, in log order (first applies come in index order). */
  tokensOf(lock: string): readonly number[] {
    return this.granted.get(lock) ?? [];
  }

  record(read: ReadRecord): void {
    this.reads.push(read);
  }

  /** The chaos checker's history: the log's writes, then the answered reads. */
  history(): Operation[] {
    const ops: Operation[] = [];
    const holder = new Map<string, number>();
    let id = 0;
    for (const index of [...this.events.keys()].sort((a, b) => a - b)) {
      const entry = this.events.get(index);
      if (entry === undefined) continue;
      const at = this.commitAt[index] ?? entry.atMs;
      const base = { client: "log", invokeMs: at, completeMs: at };
      for (const e of entry.events) {
        const held = holder.get(e.name);
        if (held !== undefined) {
          ops.push({ ...base, id: `w${id++}@${index}`, kind: "release", input: { name: e.name, token: held }, output: { released: true } });
          holder.delete(e.name);
        }
        if (e.kind === "granted") {
          ops.push({ ...base, id: `w${id++}@${index}`, kind: "acquire", input: { name: e.name }, output: { token: e.token } });
          holder.set(e.name, e.token);
        }
      }
    }
    this.reads.forEach((r, i) => {
      const base = { id: `r${i}@${r.node}`, client: r.reader, invokeMs: r.invokeMs, completeMs: r.completeMs };
      if (r.kind === "read-holder") ops.push({ ...base, kind: "read-holder", input: { name: r.lock }, output: { token: r.token } });
      else ops.push({ ...base, kind: "validate", input: { name: r.lock, token: r.token }, output: { current: r.current } });
    });
    return ops;
  }

  check(budget = 2_000_000): ReadCheckResult {
    const history = this.history();
    // Every way a holder ends is in the log, hence in this history: no internal expiry step.
    const lin = checkLinearizability(history, { budget, lockExpiry: "recorded" });
    const steps = lin.partitions.reduce((n, p) => n + p.steps, 0);
    return { verdict: lin.verdict, explanation: lin.explanation, ops: history.length, steps };
  }
}
