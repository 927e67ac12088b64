// The deterministic simulator (after TigerBeetle's VOPR): production RaftCores over a simulated
// network, disks and clocks, driven by one seed. A safety phase injects faults (loss,
// duplication, reordering, partitions including one-way, crashes that drop unsynced writes,
// pauses, clock-rate error); a liveness phase heals everything and requires progress within a
// bound. Checkers run after every event. The same seed replays the same run, event for event.
// The "witness" topology (DESIGN.md §4) adds site faults (a site lost for good, the A-B link cut
// while W reaches both) and the witness invariants (witness_checks.ts); scripted runs (a fixed
// fault schedule instead of the random nemesis) drive the named scenarios.

import { AssertionError } from "../../server/core/assert.ts";
import { makeRaftConfig } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { EMPTY_PERSISTED_STATE, type Entry, type NodeId, type PersistedState, type Snapshot } from "../../server/core/types.ts";
import { bootstrapState } from "../../server/core/bootstrap.ts";
import { SafetyChecker, type CheckName } from "./checkers.ts";
import { EventQueue } from "./event_queue.ts";
import { SimNode, type SimNodeObserver } from "./sim_node.ts";
import { durableTermOrSnapshot, termOrSnapshotIn } from "./sim_storage.ts";
import { CRASH_POINT_OPS_MAX, crashPointRandom, drawCrashPoints, type CrashPointOp, type CrashPointOptions } from "./sim_disk.ts";
import { describeDiskLies, diskLieRandom, drawDiskLies, drawLie, NO_DISK_LIES, tellLie, type DiskLieOptions } from "./sim_disk_lies.ts";
import { EXACT_ACK_POLICY, type SimAckPolicy } from "./sim_ack_record.ts";
import { WitnessChecker } from "./witness_checks.ts";
import { drawFault, type Fault } from "./nemesis.ts";
import { drawMembership, MembershipNemesis, membershipRandom, type MembershipHost } from "./membership_nemesis.ts";
import { testOnlyBugSkipJointConsensus } from "../../server/core/conf_change.ts";
import { bugSwitches, newRunStats, type RunResult, type RunStats, type SimEvent } from "./vopr_types.ts";
import { describeSwarm, drawSwarm, SWARM_PRESETS, withLivenessBound, type BugName, type SwarmOptions, type SwarmPreset } from "./swarm.ts";

export type { RunResult, RunStats } from "./vopr_types.ts";

/** One step of a scripted fault schedule: `run` acts on the simulation at `atMs`. */
export interface ScriptStep {
  readonly atMs: number;
  readonly run: (sim: Simulation) => void;
}

export interface RunOptions {
  readonly seed: number;
  readonly bug: BugName | null;
  /** A named preset applied on top of the swarm drawn from the seed (default "random"). */
  readonly preset?: SwarmPreset;
  /** Overrides applied last. */
  readonly swarm?: Partial<SwarmOptions>;
  /** Prints every node's status each simulated second and the core's log lines (debugging). */
  readonly debug?: boolean;
  /** false: no random faults (scripted runs inject their own through `script`). */
  readonly nemesis?: boolean;
  readonly script?: readonly ScriptStep[];
  /** Called after every event (scripted runs measure recovery with it). */
  readonly afterEvent?: (sim: Simulation) => void;
  /** Checks whose violations are not recorded (to show what else a bug breaks). */
  readonly disabledChecks?: readonly CheckName[];
  /**
   * What a member added by the membership churn starts from: "empty" (default) an empty disk, so
   * it must learn the configuration from the leader, even the bootstrap one that lives only in the
   * index-0 snapshot (README.md, churn issue 1, fixed in the core); "bootstrap" the cluster's
   * bootstrap state, as server/data_dir.ts writes it for every member.
   */
  readonly freshMembers?: "bootstrap" | "empty";
  /** The disk lies (sim_disk_lies.ts): "drawn" from the seed (default), or "off". */
  readonly diskLies?: "drawn" | "off";
  /** Overrides of the drawn lie rates (a focused run). */
  readonly diskLieOverrides?: Partial<DiskLieOptions>;
  /** The ack record's watermark policy (default EXACT_ACK_POLICY; PRODUCTION_ACK_POLICY shows its window). */
  readonly ackPolicy?: SimAckPolicy;
  /**
   * Leaders send their appends before their own write (ready_loop.ts, the parked Ready), as
   * tenured does by default. Off by default here so the seeds of the bug table keep their runs.
   */
  readonly leaderSendsBeforePersist?: boolean;
  /** RaftConfig.sendCommitAtOnce (default true, the core's; tenured runs false: a commit reaches the
   *  followers with the next append or heartbeat). */
  readonly sendCommitAtOnce?: boolean;
  /**
   * true: the run goes on to the liveness deadline even once liveness is shown. By default it
   * stops SETTLE_ELECTION_TIMEOUTS election timeouts after every member applied a new entry, when
   * the cluster has settled (settledForStop): the rest of the window is a steady state with no
   * faults, about 60% of a random seed's events.
   */
  readonly fullLivenessWindow?: boolean;
}

/** How long a run goes on after liveness is shown, in election timeouts of the swarm: enough
 *  rounds of the healed steady state (heartbeats, commits, compactions) for the checkers to see it. */
const SETTLE_ELECTION_TIMEOUTS = 10;

const eventsMax = 2_000_000;
/** From a parked Ready to the pass that writes it: the end of a turn (production's setImmediate). */
const PARKED_PASS_DELAY_MS = 0.05;
const queueMax = 200_000;

export function runSeed(options: RunOptions): RunResult {
  const sim = new Simulation(options);
  sim.run();
  return sim.result();
}

export class Simulation {
  private readonly random: SeededRandom;
  readonly swarm: SwarmOptions;
  private readonly queue = new EventQueue<SimEvent>(queueMax);
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clockRate = new Map<NodeId, number>();
  private readonly blocked = new Set<string>();
  readonly checker: SafetyChecker;
  private readonly witnessChecker: WitnessChecker;
  private readonly observer: SimNodeObserver;
  /** Sites lost for good: never restarted, not expected to make progress. */
  readonly lost = new Set<NodeId>();
  /** "from>to" -> snapshot messages sent (scenarios check who caught a replacement up). */
  readonly snapshotsSent = new Map<string, number>();
  private readonly pendingAcks = new Map<string, number>();
  private readonly acked: { index: number; term: number }[] = [];
  nowMs = 0;
  private healed = false;
  private appliedAtHeal = new Map<NodeId, number>();
  private trace = 0x811c9dc5;
  private proposalSeq = 0;
  private stopped = false;
  readonly stats: RunStats = newRunStats();
  private healedAtMs = 0;
  private readonly ledTerm = new Map<NodeId, number>();
  private healFloor = 0;
  /** The highest last index of any log at healing: settledForStop waits until every member applied it. */
  private lastIndexAtHeal = 0;
  private settleCheckAtMs = 0;
  /** Crash points inside a Ready (sim_disk.ts), drawn on their own stream. */
  private readonly crashPointRandom: SeededRandom;
  readonly crashPoints: CrashPointOptions;
  /** Membership churn (membership_nemesis.ts), on its own random stream. */
  readonly membership: MembershipNemesis;
  /** The disk lies (sim_disk_lies.ts), on their own random stream. */
  private readonly lieRandom: SeededRandom;
  readonly diskLies: DiskLieOptions;

  constructor(private readonly options: RunOptions) {
    this.random = new SeededRandom(options.seed);
    this.crashPointRandom = crashPointRandom(options.seed);
    this.crashPoints = drawCrashPoints(this.crashPointRandom);
    this.lieRandom = diskLieRandom(options.seed);
    const drawnLies = drawDiskLies(this.lieRandom); // drawn always: the stream's position is part of the seed
    this.diskLies = options.diskLies === "off" ? NO_DISK_LIES : { ...drawnLies, ...options.diskLieOverrides };
    const churnRandom = membershipRandom(options.seed, 0x766f7072);
    this.swarm = withLivenessBound({
      ...drawSwarm(this.random),
      ...drawMembership(churnRandom),
      ...SWARM_PRESETS[options.preset ?? "random"],
      ...options.swarm,
      ...(options.nemesis === false ? { churnIntervalMs: 0 } : {}),
    });
    this.checker = new SafetyChecker({
      onSend: (m) => this.send(m),
      onApply: (n, e) => this.noteApplied(n, e),
      confOf: (n) => this.nodes.get(n)?.core?.status().confState ?? null,
      durableTermAt: (n, index) => {
        const disk = this.nodes.get(n)?.disk;
        return disk ? durableTermOrSnapshot(disk, index) : undefined;
      },
      damagedTermAt: (n, index) => {
        const before = this.damagedView(n);
        return before ? termOrSnapshotIn(before, index) : undefined;
      },
      checkCommitAcks: true,
    });
    const disabled = new Set<CheckName>(options.disabledChecks ?? []);
    this.checker.disabledChecks = disabled;
    const fail = (check: CheckName, detail: string): void => {
      if (!disabled.has(check)) this.checker.fail(check, detail);
    };
    this.witnessChecker = new WitnessChecker(fail, (id) => this.isWitness(id), 2 * this.swarm.electionTimeoutTicks);
    this.observer = this.witnessChecker.observer(this.checker, (n, marker) => this.onWitnessTruncate(n, marker));
    const witnessTopology = this.swarm.topology === "witness";
    const ids = witnessTopology ? ["a", "b", "w"] : ["a", "b", "c", "d", "e"].slice(0, this.swarm.nodeCount);
    const initial = witnessTopology ? bootstrapState(ids, ["w"]) : bootstrapState(ids);
    for (const id of ids) this.makeNode(id, initial, witnessTopology && id === "w");
    const initialConf = initial.snapshot?.metadata.confState;
    if (!initialConf) throw new Error("bootstrap state without a configuration");
    const fresh = options.freshMembers === "bootstrap" ? initial : EMPTY_PERSISTED_STATE;
    const host = this.membershipHost(fresh);
    this.membership = new MembershipNemesis(host, churnRandom, this.swarm, this.swarm.topology, initialConf, (id) => this.isWitness(id));
  }

  /** `random` draws the node's own stream and clock rate (a churn-added node: the churn's stream). */
  private makeNode(id: NodeId, initial: PersistedState, witness: boolean, random: SeededRandom = this.random): SimNode {
    const nodeRandom = random.fork();
    const bugs = bugSwitches(this.options.bug);
    const s = this.swarm;
    const node = new SimNode({
      id,
      initial,
      disk: { ackPolicy: this.options.ackPolicy ?? EXACT_ACK_POLICY, nowMs: () => this.nowMs },
      witness,
      snapshotEveryEntries: s.snapshotEveryEntries,
      sendBeforePersist: this.options.bug === "sendBeforePersist",
      leaderSendsBeforePersist: this.options.leaderSendsBeforePersist === true,
      hardStateAfterSend: this.options.bug === "hardStateAfterSend",
      observer: this.observer,
      log: this.options.debug ? (f) => console.log(`${this.nowMs.toFixed(1)} ${JSON.stringify(f)}`) : null,
      makeConfig: (appliedIndex, recovery) =>
        makeRaftConfig({
          ...{ id, random: nodeRandom, appliedIndex, recovery, bugs, preVote: s.preVote, checkQuorum: s.checkQuorum },
          ...{ electionTimeoutTicks: s.electionTimeoutTicks, heartbeatIntervalTicks: s.heartbeatIntervalTicks },
          ...{ inflightMessagesMax: s.inflightMessagesMax, entriesPerMessageMax: s.entriesPerMessageMax },
          uncommittedEntriesMax: s.uncommittedEntriesMax,
          sendCommitAtOnce: this.options.sendCommitAtOnce ?? true,
          logger: this.options.debug ? (line) => console.log(`${this.nowMs.toFixed(1)} ${line}`) : null,
        }),
    });
    this.nodes.set(id, node);
    const drift = s.clockDriftMax;
    this.clockRate.set(id, 1 - drift + 2 * drift * random.nextFloat());
    return node;
  }

  run(): void {
    if (this.options.bug === "skipJointConsensus") testOnlyBugSkipJointConsensus(() => this.runEvents());
    else this.runEvents();
  }

  private runEvents(): void {
    for (const node of this.nodes.values()) {
      this.startNode(node);
      this.scheduleTick(node.id);
    }
    if (this.options.nemesis !== false) this.queue.push(this.swarm.nemesisIntervalMs, { kind: "nemesis" });
    (this.options.script ?? []).forEach((step, index) => this.queue.push(step.atMs, { kind: "script", index }));
    this.queue.push(this.swarm.proposalIntervalMs, { kind: "propose" });
    this.queue.push(this.swarm.safetyPhaseMs, { kind: "heal" });
    this.queue.push(this.swarm.safetyPhaseMs + this.swarm.livenessBoundMs, { kind: "livenessDeadline" });
    while (!this.stopped && this.stats.events < eventsMax) {
      const next = this.queue.pop();
      if (!next) break;
      this.nowMs = next.atMs;
      this.checker.nowMs = next.atMs;
      this.stats.events++;
      try {
        this.handle(next.event);
        this.membership.poll(this.nowMs);
      } catch (err) {
        if (!(err instanceof AssertionError)) throw err;
        this.checker.fail("assertion", err.message);
      }
      this.options.afterEvent?.(this);
      if (!this.checker.ok()) this.stopped = true;
      else if (this.settledForStop()) {
        this.stats.settledStopMs = Math.round(this.nowMs);
        this.onLivenessDeadline();
      }
    }
    this.stats.simulatedMs = Math.round(this.nowMs);
    this.stats.commitIndexMax = this.checker.committedIndexMax();
    for (const a of this.acked) this.checker.checkAcked(a.index, a.term);
    const ws = this.witnessChecker.stats;
    Object.assign(this.stats, { witnessTruncations: ws.truncations, witnessTerms: ws.witnessTerms });
    Object.assign(this.stats, { witnessLeadTicksMax: ws.witnessLeadTicksMax, witnessLeadMsMax: Math.round(ws.witnessLeadMsMax) });
    Object.assign(this.stats, this.membership.stats);
    this.stats.recoveriesStarted = this.checker.recoveriesStarted;
    this.stats.recoveriesCompleted = this.checker.recoveriesCompleted;
  }

  result(): RunResult {
    return {
      seed: this.options.seed,
      ok: this.checker.ok(),
      violations: this.checker.violations,
      traceHash: (this.trace >>> 0).toString(16).padStart(8, "0"),
      stats: this.stats,
      swarm: `${describeSwarm(this.swarm)} crashInReadyProbability=${this.crashPoints.inReadyProbability} ${describeDiskLies(this.diskLies)}`,
    };
  }

  private handle(e: SimEvent): void {
    switch (e.kind) {
      case "tick":
        return this.onTick(e.node, e.incarnation);
      case "process": {
        const node = this.node(e.node);
        return node.core && node.incarnation === e.incarnation ? this.touch(node) : undefined;
      }
      case "deliver":
        return this.onDeliver(e.message);
      case "nemesis":
        return this.onNemesis();
      case "restart":
        return this.onRestart(e.node);
      case "unpause":
        return this.touch(this.node(e.node));
      case "propose":
        return this.onPropose();
      case "heal":
        return this.onHeal();
      case "livenessDeadline":
        return this.onLivenessDeadline();
      case "script":
        return this.options.script?.[e.index]?.run(this);
    }
  }

  // ------------------------------------------------------------ nodes and network

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`unknown node ${id}`);
    return n;
  }

  private scheduleTick(id: NodeId, atMs?: number): void {
    const rate = this.clockRate.get(id) ?? 1;
    const incarnation = this.node(id).incarnation;
    this.queue.push(atMs ?? this.nowMs + this.swarm.tickMs / rate, { kind: "tick", node: id, incarnation });
  }

  private onTick(id: NodeId, incarnation: number): void {
    const node = this.node(id);
    // A tick of a crashed process, or of an earlier life of it, is gone: each restart starts
    // exactly one new tick chain.
    if (!node.core || node.incarnation !== incarnation) return;
    this.mix(1, id, 0);
    if (node.pausedUntilMs > this.nowMs) {
      // A paused process does not tick; its clock resumes where it stopped.
      this.scheduleTick(id, node.pausedUntilMs);
      return;
    }
    const st = node.core.status();
    this.witnessChecker.onTick(id, st.role, st.term);
    node.disk.ackTracker()?.poll(); // the ack record's interval timer (production's setTimeout)
    if (!this.readyForInput(node)) return;
    node.core?.tick();
    this.touch(node);
    this.scheduleTick(id);
  }

  /**
   * Before an input to a node's core: a parked Ready is finished first, as RaftNode does
   * (deferWhileParked). False when an armed crash point stopped the process doing so.
   */
  private readyForInput(node: SimNode): boolean {
    const crashedAt = node.finishParked();
    if (crashedAt === null) return true;
    this.onCrashPoint(node, crashedAt);
    return false;
  }

  private touch(node: SimNode): void {
    if (!node.core || node.pausedUntilMs > this.nowMs) return;
    const crashedAt = node.processReadies();
    if (crashedAt !== null) {
      this.onCrashPoint(node, crashedAt);
      return;
    }
    // A parked leader Ready: the turn ends here (its appends are on the wire) and the next pass
    // writes it, as RaftNode asks for another pass while parked.
    if (node.parked()) {
      this.stats.parkedReadies++;
      this.queue.push(this.nowMs + PARKED_PASS_DELAY_MS, { kind: "process", node: node.id, incarnation: node.incarnation });
    }
    this.checker.checkNode(node);
    // One status() per touch: it builds an object, and touch runs after every event.
    const st = node.core?.status();
    if (st) this.witnessChecker.observe(node.id, st.role, st.term, this.nowMs);
    if (this.healed && this.stats.recoveryMs < 0 && this.allAppliedAbove(this.healFloor)) {
      this.stats.recoveryMs = Math.round(this.nowMs - this.healedAtMs);
    }
    // Counted once per (node, term) in which it is seen leading; the role may change inside
    // step() before this runs, so comparing roles around processReadies would miss it.
    if (st && st.role === "leader" && this.ledTerm.get(node.id) !== st.term) {
      this.ledTerm.set(node.id, st.term);
      this.stats.leaderElections++;
    }
  }

  private send(m: Message): void {
    this.stats.messagesSent++;
    if (m.kind === "snapshot") this.snapshotsSent.set(`${m.from}>${m.to}`, (this.snapshotsSent.get(`${m.from}>${m.to}`) ?? 0) + 1);
    if (m.kind === "snapshot" && this.isWitness(m.to) && m.snapshot.data.length === 0 && m.snapshot.metadata.index > 0) {
      this.stats.witnessMarkersSent++;
    }
    this.mix(2, m.from + m.to, m.term);
    // The key is built only while a partition is up: most messages cross a healed network.
    if ((this.blocked.size > 0 && this.blocked.has(`${m.from}>${m.to}`)) || this.random.nextFloat() < this.loss()) {
      this.stats.messagesDropped++;
      return;
    }
    const copies = this.random.nextFloat() < this.duplication() ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delayMs = this.swarm.delayMinMs + this.random.nextFloat() * this.swarm.delayJitterMs;
      this.queue.push(this.nowMs + delayMs, { kind: "deliver", message: m });
    }
  }

  private loss(): number {
    return this.healed ? 0 : this.swarm.lossProbability;
  }

  private duplication(): number {
    return this.healed ? 0 : this.swarm.duplicateProbability;
  }

  private onDeliver(m: Message): void {
    const node = this.node(m.to);
    if (!node.core) return; // the process is down: the packet is lost
    if (node.pausedUntilMs > this.nowMs) {
      this.queue.push(node.pausedUntilMs + this.random.nextFloat(), { kind: "deliver", message: m });
      return;
    }
    this.mix(3, m.to, m.term);
    if (!this.readyForInput(node)) return;
    node.core?.step(m);
    this.touch(node);
  }

  private onRestart(id: NodeId): void {
    const node = this.node(id);
    if (node.core || this.lost.has(id) || this.membership.isRetired(id)) return;
    this.mix(4, id, 0);
    this.maybeLie(node);
    if (!this.startNode(node)) return;
    this.checker.checkNode(node);
    this.scheduleTick(id);
  }

  /**
   * Starts a node's process. A refused start (a wiped disk: no ack record, no identity) leaves it
   * down for good, as a lost site: it does not rejoin under its old id (the membership churn may
   * replace it with a new one, as an operator would). A start in recovery tells the checkers.
   */
  private startNode(node: SimNode): boolean {
    if (!node.start()) {
      this.lost.add(node.id);
      this.debugLog(`${node.id} refused to start: ${node.refusal ?? "?"}`);
      return false;
    }
    if (node.startupDetail !== null) this.debugLog(`${node.id} start: ${node.startupDetail}`);
    if (node.startedRecovering !== null) this.checker.onRecoveryStart(node.id, node.startedRecovering);
    return true;
  }

  // ------------------------------------------------------------ the disk lies

  /**
   * At a restart in the safety phase, the stopped member's disk may come back damaged (the seed's
   * rate and kinds, sim_disk_lies.ts), if the configuration can lose its data (withinLossBound).
   */
  private maybeLie(node: SimNode): void {
    if (this.healed || this.options.nemesis === false) return;
    const kind = drawLie(this.lieRandom, this.diskLies);
    if (kind === null) return;
    const damaged = this.damagedMembers();
    if (damaged.has(node.id) || !this.withinLossBound(new Set([...damaged, node.id]))) {
      this.stats.diskLiesOverBound++;
      return;
    }
    node.disk.forgetDamage();
    const outcome = tellLie(node.disk, kind, this.lieRandom);
    if (outcome === null) return;
    this.stats.diskLies[kind]++;
    this.mix(9, node.id, outcome.index);
    this.debugLog(`${node.id} disk lies (${kind}): ${outcome.detail}`);
  }

  /** Members whose data is not whole: lost for good (a site, a wiped disk) or recovering. */
  private damagedMembers(): Set<NodeId> {
    const ids = this.ids().filter((id) => this.membership.isMember(id) && !this.membership.isRetired(id));
    return new Set(ids.filter((id) => this.lost.has(id) || this.checker.isRecovering(id)));
  }

  /**
   * The bound on lies: a quorum of every configuration must keep its data, or nothing can be
   * safe. Without churn, floor((n - 1) / 2) of the n voters; with churn, 1 (voters stay between 3
   * and 5, and the configuration in force may be about to change).
   */
  private withinLossBound(damaged: ReadonlySet<NodeId>): boolean {
    const voters = this.membership.confInForce().voters.length;
    const bound = this.membership.enabled ? 1 : Math.floor((voters - 1) / 2);
    return damaged.size <= bound;
  }

  /** What a damaged member's disk held before its lie, while it has not caught up (checkers.ts damagedTermAt). */
  private damagedView(id: NodeId): PersistedState | null {
    const before = this.nodes.get(id)?.disk.stateBeforeDamage() ?? null;
    if (before === null || !(this.checker.isRecovering(id) || this.lost.has(id))) return null;
    return before;
  }

  private debugLog(line: string): void {
    if (this.options.debug) console.log(`${this.nowMs.toFixed(1)} ${line}`);
  }

  // ------------------------------------------------------------ faults

  private onNemesis(): void {
    if (this.healed) return;
    const nodes = this.ids().filter((id) => !this.membership.isRetired(id));
    const sites = [this.membership.siteVoter("A"), this.membership.siteVoter("B")] as const;
    this.inject(drawFault(this.random, this.swarm, { nodes, clients: [], leader: this.leaderId(), sites }));
    this.queue.push(this.nowMs + this.swarm.nemesisIntervalMs * (0.5 + this.random.nextFloat()), { kind: "nemesis" });
  }

  private inject(fault: Fault): void {
    this.debugLog(`nemesis: ${JSON.stringify(fault)}`);
    switch (fault.kind) {
      case "crash":
        return this.crashOrArm(fault.node);
      case "partition":
        return this.partitionLinks(fault.links);
      case "pause":
        return this.pause(fault.node, fault.ms);
      case "siteLoss":
        return this.loseSite(fault.node);
      case "linkCut":
        return this.cutLink(fault.x, fault.y);
      case "heal":
        return this.healLinks();
      case "clientPause":
        // Weighted 0 here: the Raft simulation has no clients of its own.
        throw new Error("the Raft simulation drew a client pause");
    }
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  leaderId(): NodeId | undefined {
    return this.ids().find((id) => this.node(id).core?.status().role === "leader");
  }

  /**
   * The nemesis's crash: at once (between events), or, with the seed's crashInReadyProbability, at
   * a crash point 1..CRASH_POINT_OPS_MAX storage operations or sends ahead, which stops the node
   * in the middle of one of its next Ready cycles (sim_disk.ts). A node already armed crashes now.
   */
  private crashOrArm(id: NodeId): void {
    const node = this.node(id);
    if (!node.core) return;
    const r = this.crashPointRandom;
    if (!node.disk.isArmed() && r.nextFloat() < this.crashPoints.inReadyProbability) {
      node.disk.armCrash(1 + r.nextInt(CRASH_POINT_OPS_MAX));
      this.stats.crashPointsArmed++;
      return;
    }
    this.crash(id);
  }

  /** An armed crash point stopped the node inside a Ready, before `op` (SimNode.processReadies). */
  private onCrashPoint(node: SimNode, op: CrashPointOp): void {
    this.stats.crashesInReady++;
    this.stats.crashesInReadyBefore[op]++;
    this.afterCrash(node.id);
  }

  /** Crashes a node (a site, in the witness topology); it restarts after `restartAfterMs`. */
  crash(id: NodeId, restartAfterMs?: number): void {
    const node = this.node(id);
    if (!node.core) return;
    node.crash();
    this.afterCrash(id, restartAfterMs);
  }

  private afterCrash(id: NodeId, restartAfterMs?: number): void {
    this.stats.crashes++;
    this.mix(5, id, 0);
    this.witnessChecker.observe(id, "down", 0, this.nowMs);
    if (this.lost.has(id)) return;
    const delay = restartAfterMs ?? 1 + this.random.nextFloat() * this.swarm.restartDelayMsMax;
    this.queue.push(this.nowMs + delay, { kind: "restart", node: id });
  }

  /** Loses a site for good: its node crashes and never restarts (at most one per random run). */
  loseSite(id: NodeId): void {
    if (this.lost.has(id) || (this.lost.size > 0 && this.options.nemesis !== false)) return;
    // A member recovering after a disk lie is not whole: losing a site too may exceed the bound.
    if (this.options.nemesis !== false && !this.withinLossBound(new Set([...this.damagedMembers(), id]))) return;
    this.lost.add(id);
    this.stats.siteLosses++;
    this.crash(id);
  }

  /** Cuts the link between two nodes both ways; every other link stays as it is. */
  cutLink(x: NodeId, y: NodeId): void {
    this.stats.linkCuts++;
    this.blocked.add(`${x}>${y}`);
    this.blocked.add(`${y}>${x}`);
  }

  /** Restores every link (lost sites stay lost). */
  healLinks(): void {
    this.blocked.clear();
  }

  /** A fresh member with an empty disk (a replacement); it learns the configuration from a leader. */
  addNode(id: NodeId, witness: boolean): SimNode {
    const node = this.makeNode(id, EMPTY_PERSISTED_STATE, witness);
    this.startNode(node);
    this.scheduleTick(id);
    return node;
  }

  /** The live leader with the highest term, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      const st = n.core?.status();
      if (st?.role === "leader" && (!best || st.term > (best.core?.status().term ?? 0))) best = n;
    }
    return best;
  }

  /** Ends the run after the current event (a scripted run that has measured what it needs). */
  stop(): void {
    this.stopped = true;
  }

  /** Runs Ready cycles on a node after a scripted input (campaign, conf change). */

  settle(id: NodeId): void {
    this.touch(this.node(id));
  }

  isWitness(id: NodeId): boolean {
    return this.nodes.get(id)?.witness ?? false;
  }

  private onWitnessTruncate(id: NodeId, marker: Snapshot): void {
    const conf = this.node(id).core?.status().confState;
    if (!conf) return;
    this.witnessChecker.onTruncate(
      id,
      marker,
      conf,
      (m) => this.nodes.get(m)?.disk.load() ?? null,
      (m) => this.damagedView(m),
    );
  }

  partitionLinks(blocked: readonly string[]): void {
    this.stats.partitions++;
    this.blocked.clear();
    for (const b of blocked) this.blocked.add(b);
  }

  /** The process stops: no ticks, no deliveries, until `ms` have passed. */
  pause(id: NodeId, ms: number): void {
    const node = this.node(id);
    this.stats.pauses++;
    node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + ms);
    this.queue.push(node.pausedUntilMs, { kind: "unpause", node: id });
  }

  // ------------------------------------------------------------ workload

  private onPropose(): void {
    this.queue.push(this.nowMs + this.swarm.proposalIntervalMs, { kind: "propose" });
    for (const node of this.nodes.values()) {
      const core = node.core;
      if (!core || node.pausedUntilMs > this.nowMs || core.status().role !== "leader") continue;
      const data = new TextEncoder().encode(`p${++this.proposalSeq}`);
      if (!this.readyForInput(node)) continue;
      const r = core.propose(data);
      if (r.ok) this.pendingAcks.set(`${node.id}/${r.index}`, r.term);
      if (r.ok) this.witnessChecker.onProposalAccepted(node.id, r.index);
      this.touch(node);
    }
  }

  /** Called through the checker for every applied entry: acknowledges our proposals. */
  private noteApplied(node: NodeId, e: Entry): void {
    const key = `${node}/${e.index}`;
    const term = this.pendingAcks.get(key);
    if (term === undefined) return;
    this.pendingAcks.delete(key);
    if (term === e.term) {
      this.stats.proposalsAcked++;
      this.acked.push({ index: e.index, term });
    }
  }

  // ------------------------------------------------------------ liveness

  private onHeal(): void {
    this.membership.onHeal(this.nowMs);
    this.healed = true;
    this.blocked.clear();
    for (const node of this.nodes.values()) {
      node.disk.disarm(); // the liveness phase has no faults
      node.pausedUntilMs = 0;
      if (!node.core) this.onRestart(node.id);
    }
    for (const node of this.nodes.values()) this.appliedAtHeal.set(node.id, node.appliedIndex);
    this.healedAtMs = this.nowMs;
    this.healFloor = Math.max(...this.appliedAtHeal.values(), 0);
    for (const node of this.nodes.values()) this.lastIndexAtHeal = Math.max(this.lastIndexAtHeal, node.core?.status().lastIndex ?? 0);
  }

  /**
   * Whether the run may stop before its liveness deadline with nothing left to prove: liveness was
   * shown (every progressing member applied a new entry, recoveryMs) at least
   * SETTLE_ELECTION_TIMEOUTS ago, and nothing from the faulty phase can still change the
   * membership: no retirement pending, every progressing member applied everything any log held
   * at healing (so no configuration change proposed before it is still in flight; none is
   * proposed after), and all of them apply the same configuration, not a joint one.
   * onLivenessDeadline's check then passes now and at the deadline alike.
   */
  private settledForStop(): boolean {
    if (this.options.fullLivenessWindow === true || this.stats.recoveryMs < 0) return false;
    const settleMs = SETTLE_ELECTION_TIMEOUTS * this.swarm.electionTimeoutTicks * this.swarm.tickMs;
    if (this.nowMs < Math.max(this.healedAtMs + this.stats.recoveryMs + settleMs, this.settleCheckAtMs)) return false;
    this.settleCheckAtMs = this.nowMs + this.swarm.tickMs; // once a tick: it runs after every event
    if (this.membership.retiresPending() > 0) return false;
    let voters: string | null = null;
    for (const node of this.progressing()) {
      const st = node.core?.status();
      if (!st || node.appliedIndex <= this.healFloor || node.appliedIndex < this.lastIndexAtHeal) return false;
      if (st.confState.votersOutgoing.length > 0) return false;
      const mine = [...st.confState.voters].sort().join(",");
      if (voters !== null && mine !== voters) return false;
      voters = mine;
    }
    return true;
  }

  /**
   * The nodes that must make progress after healing: every full member of the configuration in
   * force that is not lost for good (removed and retired members owe nothing). A witness applies
   * nothing (W2); with one site lost the other two must still commit, which requires a full voter
   * to lead (a witness leader accepts no proposals).
   */
  private progressing(): SimNode[] {
    const m = this.membership;
    return [...this.nodes.values()].filter((n) => !n.witness && !this.lost.has(n.id) && m.isMember(n.id) && !m.isRetired(n.id));
  }

  /** What the membership churn sees of and does to this simulation. */
  private membershipHost(freshState: PersistedState): MembershipHost {
    return {
      views: () =>
        [...this.nodes.values()]
          .filter((n) => !this.membership.isRetired(n.id))
          .map((n) => {
            const st = n.core?.status();
            if (!st) return null;
            const { role, term, commit, applied, lastIndex, confState } = st;
            return { id: n.id, up: n.pausedUntilMs <= this.nowMs, role, term, commit, applied, lastIndex, confState };
          }),
      propose: (leader, cc) => {
        const node = this.node(leader);
        if (node.core && !this.readyForInput(node)) return "down";
        const r = node.core?.proposeConfChange(cc);
        this.mix(6, leader, r?.ok ? r.index : 0);
        this.touch(node);
        return r === undefined ? "down" : r.ok ? null : r.reason;
      },
      startMember: (id, witness, random) => {
        const node = this.makeNode(id, freshState, witness, random);
        this.mix(7, id, 0);
        this.startNode(node);
        this.checker.checkNode(node);
        this.scheduleTick(id);
      },
      retire: (id) => {
        const node = this.node(id);
        this.mix(8, id, 0);
        if (!node.core) return;
        node.crash();
        this.witnessChecker.observe(id, "down", 0, this.nowMs);
      },
    };
  }

  private allAppliedAbove(floor: number): boolean {
    for (const node of this.progressing()) if (node.appliedIndex <= floor) return false;
    return true;
  }

  private onLivenessDeadline(): void {
    const stuck: string[] = [];
    const floor = Math.max(...this.appliedAtHeal.values(), 0);
    for (const node of this.progressing()) {
      if (node.appliedIndex <= floor) stuck.push(`${node.id}@${node.appliedIndex}`);
    }
    if (stuck.length > 0) {
      for (const node of this.nodes.values()) this.debugLog(`status at the deadline: ${describeNode(node)}`);
      this.checker.fail(
        "liveness",
        `no new entry applied within ${this.swarm.livenessBoundMs}ms of healing (above ${floor}): ${stuck.join(" ")}`,
      );
    }
    this.stopped = true;
  }

  private mix(kind: number, who: string, n: number): void {
    let h = this.trace ^ kind;
    h = Math.imul(h, 0x01000193);
    for (let i = 0; i < who.length; i++) h = Math.imul(h ^ who.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ (n & 0xffff), 0x01000193);
    h = Math.imul(h ^ (Math.floor(this.nowMs * 1000) & 0xffffffff), 0x01000193);
    this.trace = h >>> 0;
  }
}

/** One line of a node's Raft status (debug runs): what a stuck election is made of. */
function describeNode(node: SimNode): string {
  const st = node.core?.status();
  if (st === undefined) return `${node.id} down`;
  const c = st.confState;
  const voters = `(${c.voters.join(" ")})${c.votersOutgoing.length > 0 ? `&&(${c.votersOutgoing.join(" ")})` : ""}`;
  return `${st.id} ${st.role} term ${st.term} vote ${st.vote || "-"} leader ${st.leader || "-"} log ${st.firstIndex}..${st.lastTerm}/${st.lastIndex} commit ${st.commit} applied ${st.applied} voters ${voters} witnesses (${c.witnesses.join(" ")})${st.recovering ? " RECOVERING" : ""}`;
}
