// Membership churn for both simulations (vopr.ts: the Raft and witness topologies; lock_sim.ts:
// the lock service): while the nemesis injects its faults, an operator adds, removes and replaces
// members the way tenured's Cluster API does it (server/api/cluster_service.ts): every change is
// ONE joint-consensus step with auto-leave (enterJoint ... autoLeave=true), proposed at the
// leader, retried until it is seen in force. A new member starts as a process with an empty
// disk and a never-used id, joins as a learner, is promoted to voter once it has caught up (its
// log reaches the leader's commit index), and only then replaces the member it stands in for. A
// removed member keeps running until every remaining full voter has applied its removal (the
// operator's rule: before that, a voter still in the joint configuration needs it), then for a
// drawn while, so its late messages still arrive and must be ignored or be harmless; then its
// process stops for good (it is retired, never restarted). Ids are never reused (DESIGN.md §2: a wiped node must not rejoin
// under its old id).
//
// Plain topology: the ids a..j, the first nodeCount bootstrapped, the rest spares; voters stay
// between 3 and 5 (an add, a remove, or a replace of a voter; the leader is a victim as often as
// anyone). Witness topology (DESIGN.md §4 W6): sites keep their roles, so the operator only
// replaces: site A's voter (a -> a2 -> a3), site B's (b -> b2 -> b3) or the witness (w -> w2 ->
// w3), a lost site's member included (that is what W6 is for).
//
// Determinism: the churn draws from its own stream (membershipRandom, derived from the seed), so
// a seed without churn replays exactly as before churn existed, and a seed with churn replays
// itself. It polls the cluster on a 5 ms grid of the simulation's own event times.
//
// Configuration in force: the configuration of the node with the highest applied index ever seen
// among the nodes that are full (non-witness) members of the configuration they applied (what is
// applied is committed, and the committed log is one sequence, so this never goes back; neither a
// removed node's own view nor a witness's counts).
// The simulations ask it who is a member: liveness after healing is required of the members in
// force, not of removed ones.

import { allMembers, isJoint, type ConfChange, type ConfChangeSingle } from "../../server/core/conf_change.ts";
import { SeededRandom } from "../../server/core/random.ts";
import type { ConfState, NodeId } from "../../server/core/types.ts";

/** What the churn reads of one process (running or not). */
export interface MemberView {
  readonly id: NodeId;
  /** The process runs and is not paused (a paused process takes no proposal). */
  readonly up: boolean;
  readonly role: string;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly confState: ConfState;
}

/** What a simulation gives the churn. */
export interface MembershipHost {
  /** Every process the simulation started and has not retired, in a fixed order; null views for down ones. */
  views(): readonly (MemberView | null)[];
  /** Proposes `cc` at `leader` and lets it process; returns null, or why it was refused. */
  propose(leader: NodeId, cc: ConfChange): string | null;
  /** Starts a new process with an empty disk (a witness process if `witness`). */
  startMember(id: NodeId, witness: boolean, random: SeededRandom): void;
  /** Stops a removed member's process for good. */
  retire(id: NodeId): void;
}

export interface MembershipOptions {
  /** Mean time between membership operations (0: no churn in this run). */
  readonly churnIntervalMs: number;
  /** A removed member is retired after a time drawn in [0, this]. */
  readonly retireDelayMsMax: number;
}

export interface MembershipStats {
  /** Operations started and completed, by kind. */
  churnStarted: number;
  membersAdded: number;
  membersRemoved: number;
  membersReplaced: number;
  learnersPromoted: number;
  confChangesProposed: number;
  confChangesRefused: number;
  retired: number;
}

export const newMembershipStats = (): MembershipStats => ({
  churnStarted: 0,
  membersAdded: 0,
  membersRemoved: 0,
  membersReplaced: 0,
  learnersPromoted: 0,
  confChangesProposed: 0,
  confChangesRefused: 0,
  retired: 0,
});

/** The churn's own stream, derived from the seed (salted per simulation). */
export function membershipRandom(seed: number, salt: number): SeededRandom {
  return new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ salt) >>> 0);
}

/** Draws whether this seed churns, and how (the first draws of the churn's stream). */
export function drawMembership(r: SeededRandom): MembershipOptions {
  const churns = r.nextFloat() < CHURN_PROBABILITY;
  const interval = r.pick([150, 400, 1000]);
  const retire = r.pick([0, 100, 500, 2000]);
  return { churnIntervalMs: churns ? interval : 0, retireDelayMsMax: retire };
}

/** Share of seeds that change membership (the others replay as they did before churn existed). */
export const CHURN_PROBABILITY = 0.75;

const pollEveryMs = 5;
/** A refused or lost proposal is tried again after this long. */
const retryMs = 40;
/** An operation that has not completed by then is abandoned (a learner it added may stay). */
const opTimeoutMs = 4000;

type Topology = "plain" | "witness";

type Op = { readonly startedAtMs: number } & (
  | { readonly kind: "add"; readonly fresh: NodeId; phase: Phase }
  | { readonly kind: "replace"; readonly fresh: NodeId; readonly old: NodeId; readonly witness: boolean; phase: Phase }
  | { readonly kind: "remove"; readonly old: NodeId; phase: "change" }
);

/** start: launch the process; learner: until it is a learner in force; catchUp; change: the voter step. */
type Phase = "start" | "learner" | "catchUp" | "change";

type Lifecycle = "joining" | "member" | "removed";

export class MembershipNemesis {
  readonly stats: MembershipStats = newMembershipStats();
  private readonly lifecycle = new Map<NodeId, Lifecycle>();
  private readonly retireAt = new Map<NodeId, number>();
  /** Removed members whose removal some remaining full voter has not applied yet (not retired yet). */
  private readonly retirePending = new Set<NodeId>();
  private readonly retiredIds = new Set<NodeId>();
  private readonly spares: NodeId[];
  /** Witness topology: the site of every id (A, B, C), for the A-B link cut and replacements. */
  private readonly siteOf = new Map<NodeId, string>();
  private inForce: { applied: number; confState: ConfState };
  private inForceMembers: Set<NodeId>;
  private op: Op | null = null;
  private nextOpAtMs: number;
  private nextPollMs = 0;
  private lastProposalMs = -Infinity;
  private healed = false;

  constructor(
    private readonly host: MembershipHost,
    private readonly random: SeededRandom,
    private readonly options: MembershipOptions,
    private readonly topology: Topology,
    initial: ConfState,
    /** Ids that are (or will be started as) witness processes. */
    private readonly isWitnessProcess: (id: NodeId) => boolean,
  ) {
    this.inForce = { applied: 0, confState: initial };
    this.inForceMembers = new Set(allMembers(initial));
    for (const id of allMembers(initial)) this.lifecycle.set(id, "member");
    if (topology === "witness") {
      this.spares = ["a2", "b2", "w2", "a3", "b3", "w3"];
      for (const [id, site] of [
        ["a", "A"],
        ["b", "B"],
        ["w", "C"],
        ["a2", "A"],
        ["a3", "A"],
        ["b2", "B"],
        ["b3", "B"],
        ["w2", "C"],
        ["w3", "C"],
      ] as const) {
        this.siteOf.set(id, site);
      }
    } else {
      this.spares = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"].filter((id) => !this.inForceMembers.has(id));
    }
    this.nextOpAtMs = options.churnIntervalMs * (0.5 + this.random.nextFloat());
  }

  get enabled(): boolean {
    return this.options.churnIntervalMs > 0;
  }

  /** Whether `id` is a member of the configuration in force (always, for a run without churn). */
  isMember(id: NodeId): boolean {
    return !this.enabled || this.inForceMembers.has(id);
  }

  /** Members whose retirement is decided but not yet carried out. */
  retiresPending(): number {
    return this.retireAt.size;
  }

  isRetired(id: NodeId): boolean {
    return this.retiredIds.has(id);
  }

  /** The configuration in force (the run's initial one without churn). */
  confInForce(): ConfState {
    return this.inForce.confState;
  }

  /** Witness topology: the current full voter of site A or B (for the A-B link cut). */
  siteVoter(site: "A" | "B"): NodeId {
    const original = site === "A" ? "a" : "b";
    if (!this.enabled) return original;
    const voters = this.inForce.confState.voters.filter((id) => this.siteOf.get(id) === site);
    return voters[voters.length - 1] ?? original;
  }

  /** Call after every event: acts at most once per poll interval, drawing only when it acts. */
  poll(nowMs: number): void {
    if (!this.enabled || nowMs < this.nextPollMs) return;
    this.nextPollMs = nowMs + pollEveryMs;
    const views = this.host.views().filter((v): v is MemberView => v !== null);
    this.learn(views, nowMs);
    for (const [id, at] of this.retireAt) if (at <= nowMs) this.retire(id);
    if (this.healed) return;
    if (this.op && nowMs - this.op.startedAtMs > opTimeoutMs) this.op = null; // abandoned: a learner may stay
    if (this.op) this.advance(this.op, views, nowMs);
    else if (nowMs >= this.nextOpAtMs) {
      this.op = this.drawOp(nowMs);
      if (this.op) this.stats.churnStarted++;
      this.nextOpAtMs = nowMs + this.options.churnIntervalMs * (0.5 + this.random.nextFloat());
      if (this.op) this.advance(this.op, views, nowMs);
    }
  }

  /**
   * Healing: no new operation, no more proposals, and every member whose removal is in force and
   * known to every remaining full voter is retired now (a removed node that never learned of its
   * removal would keep campaigning); the others as soon as it is known. Call before the
   * simulation restarts its crashed processes.
   */
  onHeal(nowMs: number): void {
    if (!this.enabled) return;
    this.poll(Math.max(nowMs, this.nextPollMs));
    this.healed = true;
    // Those whose removal every remaining full voter knows (below, learn); the others are retired
    // once it does (the poll goes on learning after the heal).
    for (const id of [...this.retireAt.keys()]) this.retire(id);
  }

  // ------------------------------------------------------------------ knowledge

  private learn(views: readonly MemberView[], nowMs: number): void {
    // Only a FULL member of the configuration it applied counts: a removed leader applies its
    // removal first (it leads on and hands over, raft.ts onRemovedWhileLeading), and a witness
    // that applied it cannot lead with a log equal to a full voter's (W4).
    for (const v of views) {
      const full = allMembers(v.confState).includes(v.id) && !v.confState.witnesses.includes(v.id);
      if (v.applied > this.inForce.applied && full) this.inForce = { applied: v.applied, confState: v.confState };
    }
    const members = new Set(allMembers(this.inForce.confState));
    this.inForceMembers = members;
    for (const id of members) if (this.lifecycle.get(id) === "joining") this.lifecycle.set(id, "member");
    for (const [id, life] of this.lifecycle) {
      if (life !== "member" || members.has(id)) continue;
      // Ids are never reused: a member missing from the newest configuration is gone for good.
      this.lifecycle.set(id, "removed");
      this.retirePending.add(id);
    }
    // The operator shuts a removed member down only once every remaining full voter has applied
    // its removal. Until a voter knows the leave-joint committed it is still joint, and the
    // outgoing half counts the removed member: witness seed 883 retired b2 once a3 alone had
    // applied it, then lost site A, and b3 (joint, without the commit) could never be elected.
    const fullVoters = this.inForce.confState.voters.filter((v) => !this.inForce.confState.witnesses.includes(v));
    for (const id of this.retirePending) {
      const known = fullVoters.every((voter) => {
        const view = views.find((v) => v.id === voter);
        return view !== undefined && !allMembers(view.confState).includes(id);
      });
      if (!known) continue;
      this.retirePending.delete(id);
      this.retireAt.set(id, nowMs + (this.healed ? 0 : this.random.nextFloat() * this.options.retireDelayMsMax));
    }
  }

  private retire(id: NodeId): void {
    this.retireAt.delete(id);
    if (this.retiredIds.has(id)) return;
    this.retiredIds.add(id);
    this.stats.retired++;
    this.host.retire(id);
  }

  // ------------------------------------------------------------------ operations

  private drawOp(nowMs: number): Op | null {
    const cs = this.inForce.confState;
    if (isJoint(cs)) return null;
    const full = cs.voters.filter((id) => !cs.witnesses.includes(id));
    const roll = this.random.nextFloat();
    const victim = this.random.pick([...cs.voters]);
    if (this.topology === "witness") {
      const site = this.siteOf.get(victim);
      const fresh = this.spares.find((id) => this.siteOf.get(id) === site);
      if (!fresh) return null;
      this.spares.splice(this.spares.indexOf(fresh), 1);
      return { kind: "replace", fresh, old: victim, witness: cs.witnesses.includes(victim), phase: "start", startedAtMs: nowMs };
    }
    const leftover = cs.learners.find((id) => this.lifecycle.get(id) === "member");
    const remove = (old: NodeId): Op => ({ kind: "remove", old, phase: "change", startedAtMs: nowMs });
    if (leftover !== undefined && roll < 0.1) return remove(leftover);
    if (roll < 0.35 && full.length > 3) return remove(victim);
    const fresh = this.spares.shift();
    if (fresh === undefined) return full.length > 3 ? remove(victim) : null;
    if (roll < 0.6 && full.length < 5) return { kind: "add", fresh, phase: "start", startedAtMs: nowMs };
    return { kind: "replace", fresh, old: victim, witness: false, phase: "start", startedAtMs: nowMs };
  }

  private advance(op: Op, views: readonly MemberView[], nowMs: number): void {
    const cs = this.inForce.confState;
    if (op.kind !== "remove" && op.phase === "start") {
      this.lifecycle.set(op.fresh, "joining");
      this.host.startMember(op.fresh, op.kind === "replace" && op.witness, this.random.fork());
      op.phase = "learner";
    }
    if (op.kind !== "remove" && op.phase === "learner") {
      if (!cs.learners.includes(op.fresh) || isJoint(cs)) {
        const witness = op.kind === "replace" && op.witness;
        return this.proposeAtLeader(views, nowMs, [{ op: "addLearner", nodeId: op.fresh, witness }]);
      }
      op.phase = "catchUp";
    }
    if (op.kind !== "remove" && op.phase === "catchUp") {
      const leader = this.leader(views);
      const fresh = views.find((v) => v.id === op.fresh);
      if (!leader || !fresh || fresh.lastIndex < leader.commit) return;
      op.phase = "change";
    }
    // The voter step, done once the configuration in force has its shape.
    const done = this.changeDone(op, cs);
    if (done) {
      this.finish(op);
      return;
    }
    const changes: ConfChangeSingle[] = [];
    if (op.kind !== "remove") changes.push({ op: "addVoter", nodeId: op.fresh, witness: op.kind === "replace" && op.witness });
    if (op.kind !== "add") changes.push({ op: "removeNode", nodeId: op.old, witness: false });
    this.proposeAtLeader(views, nowMs, changes);
  }

  private changeDone(op: Op, cs: ConfState): boolean {
    if (isJoint(cs)) return false;
    const members = allMembers(cs);
    if (op.kind === "remove") return !members.includes(op.old);
    if (!cs.voters.includes(op.fresh)) return false;
    return op.kind === "add" || !members.includes(op.old);
  }

  private finish(op: Op): void {
    if (op.kind === "add") this.stats.membersAdded++;
    else if (op.kind === "remove") this.stats.membersRemoved++;
    else this.stats.membersReplaced++;
    if (op.kind !== "remove") this.stats.learnersPromoted++;
    this.op = null;
  }

  /** The live, full-voter leader with the highest term (a witness leader takes no changes, W5). */
  private leader(views: readonly MemberView[]): MemberView | null {
    let best: MemberView | null = null;
    for (const v of views) {
      if (!v.up || v.role !== "leader" || this.isWitnessProcess(v.id)) continue;
      if (!best || v.term > best.term) best = v;
    }
    return best;
  }

  /** One joint step with auto-leave, as the Cluster API proposes it; retried while not in force. */
  private proposeAtLeader(views: readonly MemberView[], nowMs: number, changes: ConfChangeSingle[]): void {
    if (nowMs - this.lastProposalMs < retryMs) return;
    const leader = this.leader(views);
    if (!leader) return;
    this.lastProposalMs = nowMs;
    this.stats.confChangesProposed++;
    const refused = this.host.propose(leader.id, { kind: "enterJoint", changes, autoLeave: true });
    if (refused !== null) this.stats.confChangesRefused++;
  }
}
