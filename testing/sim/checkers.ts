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
}

interface NodeBaseline {
  incarnation: number;
  commit: Index;
  term: Term;
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

  constructor(private readonly hooks: CheckerHooks) {}

  ok(): boolean {
    return this.violations.length === 0;
  }

  fail(check: CheckName, detail: string): void {
    if (this.disabledChecks.has(check)) return;
    if (this.violations.length < 20) this.violations.push({ check, atMs: this.nowMs, detail });
  }

  onSend(m: Message): void {
    // A pre-vote (and its answer) carries a term the sender never adopts; every other message
    // carries the sender's term, which ready.ts requires to be durable before the message leaves.
    const preVote = (m.kind === "vote" || m.kind === "voteResponse") && m.preVote;
    if (!preVote && m.term > (this.sentTermOf.get(m.from) ?? 0)) this.sentTermOf.set(m.from, m.term);
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
      // A restart may lower the in-memory commit to the persisted one, but never the term.
      if (b && s.term < b.term) this.fail("term-regressed", `${node.id} restarted at term ${s.term} after ${b.term}`);
      b = {
        incarnation: node.incarnation,
        commit: s.commit,
        term: s.term,
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
    if (s.role === "leader" && b.ledTerm === s.term && s.commit > b.commit) this.checkCommitDurable(node, b.conf, s);
    b.term = s.term;
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
    const holders = new Set(members.filter((id) => terms.get(id) === "snapshot" || (term !== undefined && terms.get(id) === term)));
    if (confs.some((c) => isQuorum(c, holders))) return;
    this.fail(
      "commit-not-durable",
      `${node.id} leads term ${s.term} and committed ${term ?? "?"}/${index}, held durably only by {${[...holders].join(",")}} of ${confs.map(describeHalves).join(" / ")}`,
    );
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
