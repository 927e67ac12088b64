// The simulator's oracle: it sees every node, every message and every applied entry, and checks
// Raft's safety properties after every step (TigerBeetle's state_checker; the invariants of
// ../shared/DESIGN.md §7.3 that concern the Raft core).

import { allMembers, applyConfChange, decodeConfChange } from "../../server/core/conf_change.ts";
import type { Message } from "../../server/core/messages.ts";
import type { ConfState, Entry, Index, NodeId, Term } from "../../server/core/types.ts";
import type { SimNodeObserver } from "./sim_node.ts";

export type CheckName =
  | "election-safety"
  | "double-vote"
  | "term-regressed"
  | "commit-regressed"
  | "commit-beyond-log"
  | "committed-overwritten"
  | "leader-completeness"
  | "applied-diverged"
  | "acked-lost"
  | "conf-quorums-disjoint"
  | "commit-not-durable"
  // The disk lies (sim_disk_lies.ts): a member recovering lost data neither votes nor is counted.
  | "recovering-voted"
  | "recovering-counted"
  | "liveness"
  | "assertion"
  // The witness invariants (research/witness-and-raft-safety.md §1.6; witness_checks.ts).
  | "IW1-truncated-not-durable"
  | "IW2-witness-applied"
  | "IW3-witness-client-entry"
  | "IW4-witness-cap"
  | "IW6-witness-snapshot"
  // The lock simulation's checks (lock_checkers.ts, DESIGN.md §7.3).
  | "token-not-increasing"
  | "guard-accepted-stale"
  | "exactly-once"
  | "mutual-exclusion"
  | "grant-without-lease";

/** What checkNode reads of a node: a SimNode fits as is; the lock simulation adapts a RaftNode. */
export interface CheckedNode {
  readonly id: NodeId;
  readonly incarnation: number;
  readonly core: CheckedCore | null;
}

export interface CheckedCore {
  status(): {
    readonly role: string;
    readonly term: Term;
    readonly commit: Index;
    readonly lastIndex: Index;
    readonly firstIndex: Index;
    /** The configuration the core counts its quorums in (commit-not-durable needs it). */
    readonly confState?: ConfState;
    /**
     * The term on the node's disk, synced. A restart must come back at least there. Absent: the
     * in-memory term stands in, which is stricter than Raft needs: a term the core took but had
     * not yet written (a pass bound, a background write holding the next Ready) promised nothing
     * and may go with a crash; a message sent in it is what the sent-term check covers.
     */
    readonly durableTerm?: Term;
  };
  termAt(index: Index): Term | undefined;
}

export interface Violation {
  readonly check: CheckName;
  readonly atMs: number;
  readonly detail: string;
}

/** The simulation's own reactions to what the checker observes. */
export interface CheckerHooks {
  onSend(m: Message): void;
  onApply(node: NodeId, entry: Entry): void;
  /** The configuration a node's core is in now (before the config entry being applied takes effect). */
  confOf?(node: NodeId): ConfState | null;
  /**
   * The term of `node`'s entry at `index` in its SYNCED disk state (SimDisk's durable part, never
   * unsynced writes): "snapshot" if its durable snapshot covers the index, undefined if it holds
   * none. Without this hook commit-not-durable is off.
   */
  durableTermAt?(node: NodeId, index: Index): Term | "snapshot" | undefined;
  /**
   * For a member whose disk lied and that has not caught up since: the term at `index` in what its
   * disk held just before the lie (what its acknowledgements sent before then stood on). Its
   * lost entries still count for commit-not-durable, which asks whether every acknowledgement was
   * durable when it was sent; whether the member may be counted or vote after the loss is the
   * recovering-* checks' question.
   */
  damagedTermAt?(node: NodeId, index: Index): Term | "snapshot" | undefined;
  /**
   * recovering-counted's commit side: a leader's commit must be backed by acknowledgements of its
   * term from a quorum, none of them sent while recovering. Needs every message through onSend.
   */
  checkCommitAcks?: boolean;
}

interface NodeBaseline {
  incarnation: number;
  commit: Index;
  term: Term;
  /** The synced term last seen on the node's disk (CheckedCore durableTerm), or null when not given. */
  durableTerm: Term | null;
  checkedCommit: Index;
  leaderTerm: Term;
  /** The term this process was last seen leading, and its configuration then (commit-not-durable). */
  ledTerm: Term;
  conf: ConfState | null;
}

export class SafetyChecker implements SimNodeObserver {
  readonly violations: Violation[] = [];
  nowMs = 0;
  /** Commit advances of a leader checked by commit-not-durable (a run that checks none proves nothing). */
  durableCommitChecks = 0;
  /** Checks whose violations are not recorded (a run that shows what else a bug breaks). */
  disabledChecks: ReadonlySet<CheckName> = new Set();
  /** term -> the one node that led it. */
  private readonly leaderOfTerm = new Map<Term, NodeId>();
  /** `${voter}/${term}` -> the candidate it voted for. */
  private readonly voteOf = new Map<string, NodeId>();
  /** node -> the highest term it sent a message at (pre-votes aside): durable before it left. */
  private readonly sentTermOf = new Map<NodeId, Term>();
  /** index -> term of the entry committed there (as first observed). */
  private readonly committedTerm = new Map<Index, Term>();
  /** index -> term of the leader that committed it (seen on that leader). Leader completeness
   *  binds only leaders of LATER terms: a leader of an older term can still be elected by nodes
   *  that never heard of the newer one, and it cannot commit anything over them. */
  private readonly commitTermOf = new Map<Index, Term>();
  /** index -> state-machine hash after applying it (as first observed). */
  private readonly appliedHash = new Map<Index, number>();
  private readonly baselines = new Map<NodeId, NodeBaseline>();
  private committedMax = 0;
  /** Per node: the core's configuration object at its last config entry, and what that entry made of it. */
  private readonly confChained = new Map<NodeId, { core: ConfState; after: ConfState }>();
  /** Config entry indexes already checked (every replica applies the same entry there). */
  private readonly confChecked = new Set<Index>();
  /**
   * node -> the index it must catch up to (RaftConfig.recovery), while recovering. The checker's
   * own oracle, not the core's word: it ends when the member sends a leader of its term an
   * acknowledgement without the recovering flag at or above that index (the core's rule).
   */
  private readonly recoveringUntil = new Map<NodeId, Index>();
  /** leader -> term -> follower -> the highest index it acknowledged to that leader in that term, not recovering. */
  private readonly countableAcks = new Map<NodeId, Map<Term, Map<NodeId, Index>>>();
  recoveriesStarted = 0;
  recoveriesCompleted = 0;

  constructor(private readonly hooks: CheckerHooks) {}

  ok(): boolean {
    return this.violations.length === 0;
  }

  fail(check: CheckName, detail: string): void {
    if (this.disabledChecks.has(check)) return;
    if (this.violations.length < 20) this.violations.push({ check, atMs: this.nowMs, detail });
  }

  /** A member starts (again) recovering lost data up to `untilIndex` (sim_startup.ts). */
  onRecoveryStart(node: NodeId, untilIndex: Index): void {
    const prior = this.recoveringUntil.get(node);
    if (prior === undefined) this.recoveriesStarted++;
    this.recoveringUntil.set(node, Math.max(prior ?? 0, untilIndex));
  }

  isRecovering(node: NodeId): boolean {
    return this.recoveringUntil.has(node);
  }

  onSend(m: Message): void {
    // A pre-vote (and its answer) carries a term the sender never adopts; every other message
    // carries the sender's term, which ready.ts requires to be durable before the message leaves.
    const preVote = (m.kind === "vote" || m.kind === "voteResponse") && m.preVote;
    if (!preVote && m.term > (this.sentTermOf.get(m.from) ?? 0)) this.sentTermOf.set(m.from, m.term);
    if (this.recoveringUntil.size > 0) this.checkRecovering(m);
    if (m.kind === "appendResponse" && !m.reject && m.recovering !== true && this.hooks.checkCommitAcks === true) {
      if (!this.recoveringUntil.has(m.from)) this.noteCountableAck(m.to, m.term, m.from, m.index);
    }
    if (m.kind === "voteResponse" && !m.preVote && !m.reject) {
      const key = `${m.from}/${m.term}`;
      const prior = this.voteOf.get(key);
      if (prior !== undefined && prior !== m.to) {
        this.fail("double-vote", `${m.from} voted for ${prior} and ${m.to} in term ${m.term}`);
      }
      this.voteOf.set(key, m.to);
    }
    this.hooks.onSend(m);
  }

  /**
   * recovering-voted: no vote or pre-vote granted, no campaign started, while recovering.
   * recovering-counted: every answer to a leader carries the recovering flag until the one that
   * ends the recovery (an acknowledgement at or above the target), or the leader would count it.
   */
  private checkRecovering(m: Message): void {
    const until = this.recoveringUntil.get(m.from);
    if (until === undefined) return;
    if (m.kind === "voteResponse" && !m.reject) {
      this.fail(
        "recovering-voted",
        `${m.from} grants a ${m.preVote ? "pre-vote" : "vote"} to ${m.to} in term ${m.term} while recovering until ${until}`,
      );
    } else if (m.kind === "vote") {
      this.fail(
        "recovering-voted",
        `${m.from} campaigns (${m.preVote ? "pre-vote" : "vote"}) in term ${m.term} while recovering until ${until}`,
      );
    } else if (m.kind === "appendResponse" || m.kind === "heartbeatResponse") {
      if (m.recovering === true) return;
      if (m.kind === "appendResponse" && !m.reject && m.index >= until) {
        this.recoveringUntil.delete(m.from);
        this.recoveriesCompleted++;
        return;
      }
      const what = m.kind === "appendResponse" ? `${m.reject ? "a rejection" : "an acknowledgement"} at ${m.index}` : "a heartbeat answer";
      this.fail(
        "recovering-counted",
        `${m.from} sends ${m.to} ${what} without the recovering flag in term ${m.term}, recovering until ${until}`,
      );
    }
  }

  onApply(node: NodeId, entry: Entry, hashAfter: number): void {
    if (entry.type === "config") this.onConfApplied(node, entry);
    this.expectAppliedHash(node, entry.index, hashAfter);
    this.hooks.onApply(node, entry);
    const committed = this.committedTerm.get(entry.index);
    if (committed !== undefined && committed !== entry.term) {
      this.fail("applied-diverged", `${node} applied ${entry.term}/${entry.index}, committed term is ${committed}`);
    }
  }

  onRestoreSnapshot(node: NodeId, index: Index, hash: number): void {
    if (index > 0) this.expectAppliedHash(node, index, hash);
  }

  /**
   * conf-quorums-disjoint: a configuration change must leave no two disjoint quorums of the
   * configuration before and the one after (joint consensus: C_old -> C_old,new -> C_new, each
   * step sharing a whole half), or the old and the new majority could decide apart. The change's
   * result is computed with the core's own applyConfChange from the configuration the node is in;
   * config entries of one Ready are applied before the core advances, so they are chained.
   */
  private onConfApplied(node: NodeId, e: Entry): void {
    const core = this.hooks.confOf?.(node);
    if (!core) return;
    const chained = this.confChained.get(node);
    const before = chained && chained.core === core ? chained.after : core;
    const r = applyConfChange(before, decodeConfChange(e.data));
    if (!r.ok) return; // the core skips it too
    this.confChained.set(node, { core, after: r.confState });
    if (this.confChecked.has(e.index)) return;
    this.confChecked.add(e.index);
    const split = disjointQuorums(before, r.confState);
    if (split) {
      this.fail(
        "conf-quorums-disjoint",
        `config entry ${e.term}/${e.index} on ${node}: ${describeHalves(before)} -> ${describeHalves(r.confState)}; quorums ${split[0]} and ${split[1]} are disjoint`,
      );
    }
  }

  /** A node may rewrite uncommitted entries, never one at or below its own commit index. */
  onDiskEntries(node: NodeId, entries: readonly Entry[], nodeCommit: Index): void {
    for (const e of entries) {
      if (e.index > nodeCommit) continue;
      const committed = this.committedTerm.get(e.index);
      if (committed !== undefined && committed !== e.term) {
        this.fail("committed-overwritten", `${node} writes ${e.term}/${e.index} over committed term ${committed}`);
      }
    }
  }

  private expectAppliedHash(node: NodeId, index: Index, hash: number): void {
    const known = this.appliedHash.get(index);
    if (known === undefined) this.appliedHash.set(index, hash);
    else if (known !== hash) this.fail("applied-diverged", `${node} state at ${index} differs from another replica's`);
  }

  /** Checks one node's visible state; call after every event that touched it. */
  checkNode(node: CheckedNode): void {
    const core = node.core;
    if (!core) return;
    const s = core.status();
    let b = this.baselines.get(node.id);
    if (!b || b.incarnation !== node.incarnation) {
      // A restart may lower the in-memory commit to the persisted one, but never the term it had
      // synced (or, for a view without durableTerm, the term it was seen at).
      const before = b?.durableTerm ?? b?.term ?? 0;
      if (b && s.term < before) this.fail("term-regressed", `${node.id} restarted at term ${s.term} after ${before}`);
      b = {
        incarnation: node.incarnation,
        commit: s.commit,
        term: s.term,
        durableTerm: s.durableTerm ?? null,
        checkedCommit: Math.min(b?.checkedCommit ?? 0, s.commit),
        leaderTerm: b?.leaderTerm ?? 0,
        ledTerm: 0,
        conf: s.confState ?? null,
      };
      this.baselines.set(node.id, b);
    }
    if (s.term < b.term) this.fail("term-regressed", `${node.id} term ${s.term} after ${b.term}`);
    const sentTerm = this.sentTermOf.get(node.id) ?? 0;
    if (s.term < sentTerm) this.fail("term-regressed", `${node.id} at term ${s.term} after sending at term ${sentTerm}`);
    if (s.commit < b.commit) this.fail("commit-regressed", `${node.id} commit ${s.commit} after ${b.commit}`);
    if (s.commit > s.lastIndex) this.fail("commit-beyond-log", `${node.id} commit ${s.commit} > last index ${s.lastIndex}`);
    if (s.role === "leader" && b.ledTerm === s.term && s.commit > b.commit) {
      this.checkCommitDurable(node, b.conf, s);
      if (this.hooks.checkCommitAcks === true) this.checkCommitAcked(node, b.conf, s);
    }
    b.term = s.term;
    b.durableTerm = s.durableTerm ?? null;
    b.commit = s.commit;
    b.conf = s.confState ?? null;
    b.ledTerm = s.role === "leader" ? s.term : 0;
    this.recordCommitted(node, b, s.commit, s.role === "leader" ? s.term : 0);
    if (s.role === "leader" && b.leaderTerm !== s.term) {
      b.leaderTerm = s.term;
      this.onNewLeader(node, s.term);
    }
  }

  /**
   * commit-not-durable: a leader that advanced its commit index to N (seen leading this term, in
   * this process, at its last observation too) must have N, with its term, on the SYNCED disks
   * of a quorum of its configuration (joint: of both halves), itself included only if its own
   * write is synced. A quorum's acknowledgement means the entry survives any crash; an
   * acknowledgement sent before the sync (or a leader counting its own unsynced write) breaks that
   * without any crash having to happen. The configuration may change between two observations (a
   * config entry applied in the same pass), so a quorum of the one before or the one after
   * suffices.
   */
  private checkCommitDurable(node: CheckedNode, before: ConfState | null, s: ReturnType<CheckedCore["status"]>): void {
    const durableTermAt = this.hooks.durableTermAt;
    const core = node.core;
    if (!durableTermAt || !core) return;
    const index = s.commit;
    if (index < s.firstIndex) return; // under the leader's own snapshot: committed long ago
    const confs = [before, s.confState ?? null].filter((c): c is ConfState => c !== null);
    if (confs.length === 0) return;
    const members = [...new Set(confs.flatMap((c) => allMembers(c)))];
    this.durableCommitChecks++;
    const terms = new Map(members.map((id) => [id, durableTermAt(id, index)]));
    // The leader's entry (a lock-simulation leader's view is its durable log: if its own write is
    // not synced, the term most members hold durably).
    const term = core.termAt(index) ?? mostCommon([...terms.values()].filter((t): t is Term => typeof t === "number"));
    const held = (t: Term | "snapshot" | undefined): boolean => t === "snapshot" || (term !== undefined && t === term);
    const damaged = this.hooks.damagedTermAt;
    const holders = new Set(members.filter((id) => held(terms.get(id)) || (damaged !== undefined && held(damaged(id, index)))));
    if (confs.some((c) => isQuorum(c, holders))) return;
    this.fail(
      "commit-not-durable",
      `${node.id} leads term ${s.term} and committed ${term ?? "?"}/${index}, held durably only by {${[...holders].join(",")}} of ${confs.map(describeHalves).join(" / ")}`,
    );
  }

  /**
   * recovering-counted, the leader's side: a commit to N needs, in each configuration half, a
   * majority of the leader and followers that acknowledged N or above to it in this term, each
   * acknowledgement sent without the recovering flag and while not recovering (the core resets
   * every match when it becomes leader, so acknowledgements of other terms never count).
   */
  private checkCommitAcked(node: CheckedNode, before: ConfState | null, s: ReturnType<CheckedCore["status"]>): void {
    const acks = this.countableAcks.get(node.id)?.get(s.term);
    const acked = (id: NodeId): boolean => id === node.id || (acks?.get(id) ?? 0) >= s.commit;
    const quorum = (c: ConfState | null): boolean => c !== null && halves(c).every((h) => isMajority(h, acked));
    if (quorum(before) || quorum(s.confState ?? null)) return;
    const confs = [before, s.confState ?? null].filter((c): c is ConfState => c !== null);
    if (confs.length === 0) return;
    const members = [...new Set(confs.flatMap((c) => allMembers(c)))];
    const recovering = members.filter((id) => this.recoveringUntil.has(id));
    this.fail(
      "recovering-counted",
      `${node.id} leads term ${s.term} and committed ${s.commit} with acknowledgements only from {${members.filter(acked).join(",")}} of ${confs.map(describeHalves).join(" / ")} (recovering: {${recovering.join(",")}})`,
    );
  }

  private noteCountableAck(leader: NodeId, term: Term, follower: NodeId, index: Index): void {
    let terms = this.countableAcks.get(leader);
    if (terms === undefined) {
      terms = new Map();
      this.countableAcks.set(leader, terms);
    }
    // (An answer of a later term than the leader's, to a deposed leader, is keyed by its own term and never counted.)
    let acks = terms.get(term);
    if (acks === undefined) {
      acks = new Map();
      terms.set(term, acks);
    }
    if (index > (acks.get(follower) ?? 0)) acks.set(follower, index);
  }

  private recordCommitted(node: CheckedNode, b: NodeBaseline, commit: Index, leaderTerm: Term): void {
    const core = node.core;
    if (!core) return;
    for (let i = b.checkedCommit + 1; i <= commit; i++) {
      if (leaderTerm > 0 && !this.commitTermOf.has(i)) this.commitTermOf.set(i, leaderTerm);
      const t = core.termAt(i);
      if (t === undefined) continue; // covered by a snapshot: checked through the applied hash
      const known = this.committedTerm.get(i);
      if (known === undefined) this.committedTerm.set(i, t);
      else if (known !== t) this.fail("committed-overwritten", `${node.id} has ${t}/${i} committed; committed term is ${known}`);
    }
    b.checkedCommit = Math.max(b.checkedCommit, commit);
    this.committedMax = Math.max(this.committedMax, commit);
  }

  private onNewLeader(node: CheckedNode, term: Term): void {
    const prior = this.leaderOfTerm.get(term);
    if (prior !== undefined && prior !== node.id) {
      this.fail("election-safety", `${prior} and ${node.id} both led term ${term}`);
    }
    this.leaderOfTerm.set(term, node.id);
    const core = node.core;
    if (!core) return;
    const first = core.status().firstIndex;
    for (let i = first; i <= this.committedMax; i++) {
      const want = this.committedTerm.get(i);
      const commitTerm = this.commitTermOf.get(i);
      if (want === undefined || commitTerm === undefined || commitTerm >= term) continue;
      const have = core.termAt(i);
      if (have !== want) {
        this.fail("leader-completeness", `${node.id} leads term ${term} without committed entry ${want}/${i} (has ${have ?? "none"})`);
        return;
      }
    }
  }

  /** An entry acknowledged to a client must still be committed in the same place. */
  checkAcked(index: Index, term: Term): void {
    const committed = this.committedTerm.get(index);
    if (committed !== undefined && committed !== term) {
      this.fail("acked-lost", `acknowledged entry ${term}/${index} replaced by term ${committed}`);
    }
  }

  committedIndexMax(): Index {
    return this.committedMax;
  }
}

function mostCommon(terms: readonly Term[]): Term | undefined {
  const counts = new Map<Term, number>();
  for (const t of terms) counts.set(t, (counts.get(t) ?? 0) + 1);
  let best: Term | undefined;
  for (const [t, n] of counts) if (best === undefined || n > (counts.get(best) ?? 0)) best = t;
  return best;
}

/** The voter halves of a configuration: incoming, and outgoing while joint. */
function halves(cs: ConfState): (readonly NodeId[])[] {
  return cs.votersOutgoing.length > 0 ? [cs.voters, cs.votersOutgoing] : [cs.voters];
}

function describeHalves(cs: ConfState): string {
  return halves(cs)
    .map((h) => `(${h.join(" ")})`)
    .join("&&");
}

/** More than half of `half` (an empty half is no constraint). */
function isMajority(half: readonly NodeId[], has: (id: NodeId) => boolean): boolean {
  if (half.length === 0) return true;
  let n = 0;
  for (const id of half) if (has(id)) n++;
  return 2 * n > half.length;
}

function isQuorum(cs: ConfState, set: ReadonlySet<NodeId>): boolean {
  return halves(cs).every((h) => h.length === 0 || 2 * h.filter((id) => set.has(id)).length > h.length);
}

/** Two disjoint sets, a quorum of `a` and one of `b`, if such exist (exhaustive: at most 2^10 sets). */
export function disjointQuorums(a: ConfState, b: ConfState): [string, string] | null {
  const ids = [...new Set([...allMembers(a), ...allMembers(b)])];
  if (ids.length > 16) throw new Error("too many members to check quorum intersection exhaustively");
  for (let mask = 0; mask < 1 << ids.length; mask++) {
    const inA = new Set(ids.filter((_, i) => (mask & (1 << i)) !== 0));
    const rest = new Set(ids.filter((id) => !inA.has(id)));
    if (isQuorum(a, inA) && isQuorum(b, rest)) return [`{${[...inA].join(",")}}`, `{${[...rest].join(",")}}`];
  }
  return null;
}
