// The deterministic simulator (after TigerBeetle's VOPR): production RaftCores over a simulated
// network, disks and clocks, driven by one seed. A safety phase injects faults (loss,
// duplication, reordering, partitions including one-way, crashes that drop unsynced writes,
// pauses, clock-rate error); a liveness phase heals everything and requires progress within a
// bound. Checkers run after every event. The same seed replays the same run, event for event.

import { AssertionError } from "../core/assert.ts";
import { makeRaftConfig, NO_BUGS, type BugSwitches } from "../core/config.ts";
import type { Message } from "../core/messages.ts";
import { SeededRandom } from "../core/random.ts";
import type { Entry, NodeId } from "../core/types.ts";
import { bootstrapState } from "../core/bootstrap.ts";
import { SafetyChecker, type Violation } from "./checkers.ts";
import { EventQueue } from "./event_queue.ts";
import { SimNode } from "./sim_node.ts";
import {
  describeSwarm,
  drawSwarm,
  SWARM_PRESETS,
  withLivenessBound,
  type BugName,
  type SwarmOptions,
  type SwarmPreset,
} from "./swarm.ts";

type SimEvent =
  | { readonly kind: "tick"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "deliver"; readonly message: Message }
  | { readonly kind: "nemesis" }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "unpause"; readonly node: NodeId }
  | { readonly kind: "propose" }
  | { readonly kind: "heal" }
  | { readonly kind: "livenessDeadline" };

export interface RunOptions {
  readonly seed: number;
  readonly bug: BugName | null;
  /** A named preset applied on top of the swarm drawn from the seed (default "random"). */
  readonly preset?: SwarmPreset;
  /** Overrides applied last. */
  readonly swarm?: Partial<SwarmOptions>;
  /** Prints every node's status each simulated second and the core's log lines (debugging). */
  readonly debug?: boolean;
}

export interface RunStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  crashes: number;
  partitions: number;
  pauses: number;
  leaderElections: number;
  proposalsAcked: number;
  commitIndexMax: number;
  simulatedMs: number;
  /** Simulated time from healing until every node applied a new entry (-1: never). */
  recoveryMs: number;
}

export interface RunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  readonly traceHash: string;
  readonly stats: RunStats;
  readonly swarm: string;
}

const eventsMax = 2_000_000;
const queueMax = 200_000;

export function runSeed(options: RunOptions): RunResult {
  const sim = new Simulation(options);
  sim.run();
  return sim.result();
}

class Simulation {
  private readonly random: SeededRandom;
  private readonly swarm: SwarmOptions;
  private readonly queue = new EventQueue<SimEvent>(queueMax);
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clockRate = new Map<NodeId, number>();
  private readonly blocked = new Set<string>();
  private readonly checker: SafetyChecker;
  private readonly pendingAcks = new Map<string, number>();
  private readonly acked: { index: number; term: number }[] = [];
  private nowMs = 0;
  private healed = false;
  private appliedAtHeal = new Map<NodeId, number>();
  private trace = 0x811c9dc5;
  private proposalSeq = 0;
  private stopped = false;
  readonly stats: RunStats = {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    crashes: 0,
    partitions: 0,
    pauses: 0,
    leaderElections: 0,
    proposalsAcked: 0,
    commitIndexMax: 0,
    simulatedMs: 0,
    recoveryMs: -1,
  };
  private healedAtMs = 0;
  private healFloor = 0;

  constructor(private readonly options: RunOptions) {
    this.random = new SeededRandom(options.seed);
    this.swarm = withLivenessBound({
      ...drawSwarm(this.random),
      ...SWARM_PRESETS[options.preset ?? "random"],
      ...options.swarm,
    });
    this.checker = new SafetyChecker({ onSend: (m) => this.send(m), onApply: (n, e) => this.noteApplied(n, e) });
    const ids = ["a", "b", "c", "d", "e"].slice(0, this.swarm.nodeCount);
    const initial = bootstrapState(ids);
    const bugs = bugSwitches(options.bug);
    for (const id of ids) {
      const nodeRandom = this.random.fork();
      const node = new SimNode({
        id,
        initial,
        snapshotEveryEntries: this.swarm.snapshotEveryEntries,
        sendBeforePersist: options.bug === "sendBeforePersist",
        makeConfig: (appliedIndex) =>
          makeRaftConfig({
            id,
            random: nodeRandom,
            appliedIndex,
            electionTimeoutTicks: this.swarm.electionTimeoutTicks,
            heartbeatIntervalTicks: this.swarm.heartbeatIntervalTicks,
            preVote: this.swarm.preVote,
            checkQuorum: this.swarm.checkQuorum,
            inflightMessagesMax: this.swarm.inflightMessagesMax,
            entriesPerMessageMax: this.swarm.entriesPerMessageMax,
            uncommittedEntriesMax: this.swarm.uncommittedEntriesMax,
            bugs,
            logger: options.debug ? (line) => console.log(`${this.nowMs.toFixed(1)} ${line}`) : null,
          }),
      });
      this.nodes.set(id, node);
      const drift = this.swarm.clockDriftMax;
      this.clockRate.set(id, 1 - drift + 2 * drift * this.random.nextFloat());
    }
  }

  run(): void {
    for (const node of this.nodes.values()) {
      node.start();
      this.scheduleTick(node.id);
    }
    this.queue.push(this.swarm.nemesisIntervalMs, { kind: "nemesis" });
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
      } catch (err) {
        if (!(err instanceof AssertionError)) throw err;
        this.checker.fail("assertion", err.message);
      }
      if (!this.checker.ok()) this.stopped = true;
    }
    this.stats.simulatedMs = Math.round(this.nowMs);
    this.stats.commitIndexMax = this.checker.committedIndexMax();
    for (const a of this.acked) this.checker.checkAcked(a.index, a.term);
  }

  result(): RunResult {
    return {
      seed: this.options.seed,
      ok: this.checker.ok(),
      violations: this.checker.violations,
      traceHash: (this.trace >>> 0).toString(16).padStart(8, "0"),
      stats: this.stats,
      swarm: describeSwarm(this.swarm),
    };
  }

  private handle(e: SimEvent): void {
    switch (e.kind) {
      case "tick":
        return this.onTick(e.node, e.incarnation);
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
    }
  }

  // ------------------------------------------------------------ nodes and network

  private node(id: NodeId): SimNode {
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
    node.core.tick();
    this.touch(node);
    this.scheduleTick(id);
  }

  private touch(node: SimNode): void {
    if (!node.core || node.pausedUntilMs > this.nowMs) return;
    const before = node.core.status().role;
    node.processReadies(this.checker);
    this.checker.checkNode(node);
    if (this.healed && this.stats.recoveryMs < 0 && this.allAppliedAbove(this.healFloor)) {
      this.stats.recoveryMs = Math.round(this.nowMs - this.healedAtMs);
    }
    if (node.core && node.core.status().role === "leader" && before !== "leader") this.stats.leaderElections++;
  }

  private send(m: Message): void {
    this.stats.messagesSent++;
    this.mix(2, m.from + m.to, m.term);
    if (this.blocked.has(`${m.from}>${m.to}`) || this.random.nextFloat() < this.loss()) {
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
    node.core.step(m);
    this.touch(node);
  }

  private onRestart(id: NodeId): void {
    const node = this.node(id);
    if (node.core) return;
    this.mix(4, id, 0);
    node.start();
    this.checker.checkNode(node);
    this.scheduleTick(id);
  }

  // ------------------------------------------------------------ faults

  private onNemesis(): void {
    if (this.healed) return;
    const s = this.swarm;
    const total = s.crashWeight + s.partitionWeight + s.pauseWeight + s.healWeight;
    let roll = this.random.nextFloat() * total;
    const ids = [...this.nodes.keys()];
    // Half the faults target the current leader: leader changes are where Raft bugs live.
    const leader = ids.find((id) => this.node(id).core?.status().role === "leader");
    const anyone = ids[this.random.nextInt(ids.length)] ?? "a";
    const victim = leader !== undefined && this.random.nextFloat() < s.leaderTargetProbability ? leader : anyone;
    if ((roll -= s.crashWeight) < 0) this.crash(victim);
    else if ((roll -= s.partitionWeight) < 0) this.partition(ids, victim);
    else if ((roll -= s.pauseWeight) < 0) this.pause(victim);
    else this.blocked.clear();
    this.queue.push(this.nowMs + s.nemesisIntervalMs * (0.5 + this.random.nextFloat()), { kind: "nemesis" });
  }

  private crash(id: NodeId): void {
    const node = this.node(id);
    if (!node.core) return;
    this.stats.crashes++;
    this.mix(5, id, 0);
    node.crash();
    const delay = 1 + this.random.nextFloat() * this.swarm.restartDelayMsMax;
    this.queue.push(this.nowMs + delay, { kind: "restart", node: id });
  }

  private partition(ids: readonly NodeId[], victim: NodeId): void {
    this.stats.partitions++;
    this.blocked.clear();
    const kind = this.random.nextInt(3);
    if (kind === 0) {
      // Two sides; every link across is cut both ways.
      const side = new Set(ids.filter((id) => id === victim || this.random.nextFloat() < 0.4));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
    } else {
      // One-way: a node can send to the others but hears nothing (or the reverse).
      const x = victim;
      const inbound = kind === 1;
      for (const y of ids) if (y !== x) this.blocked.add(inbound ? `${y}>${x}` : `${x}>${y}`);
    }
  }

  private pause(id: NodeId): void {
    const node = this.node(id);
    this.stats.pauses++;
    const pauseMs = this.random.nextFloat() * 3 * this.swarm.electionTimeoutTicks * this.swarm.tickMs;
    node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + pauseMs);
    this.queue.push(node.pausedUntilMs, { kind: "unpause", node: id });
  }

  // ------------------------------------------------------------ workload

  private onPropose(): void {
    this.queue.push(this.nowMs + this.swarm.proposalIntervalMs, { kind: "propose" });
    for (const node of this.nodes.values()) {
      const core = node.core;
      if (!core || node.pausedUntilMs > this.nowMs || core.status().role !== "leader") continue;
      const data = new TextEncoder().encode(`p${++this.proposalSeq}`);
      const r = core.propose(data);
      if (r.ok) this.pendingAcks.set(`${node.id}/${r.index}`, r.term);
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
    this.healed = true;
    this.blocked.clear();
    for (const node of this.nodes.values()) {
      node.pausedUntilMs = 0;
      if (!node.core) this.onRestart(node.id);
    }
    for (const node of this.nodes.values()) this.appliedAtHeal.set(node.id, node.appliedIndex);
    this.healedAtMs = this.nowMs;
    this.healFloor = Math.max(...this.appliedAtHeal.values(), 0);
  }

  private allAppliedAbove(floor: number): boolean {
    for (const node of this.nodes.values()) if (node.appliedIndex <= floor) return false;
    return true;
  }

  private onLivenessDeadline(): void {
    const stuck: string[] = [];
    const floor = Math.max(...this.appliedAtHeal.values(), 0);
    for (const node of this.nodes.values()) {
      if (node.appliedIndex <= floor) stuck.push(`${node.id}@${node.appliedIndex}`);
    }
    if (stuck.length > 0) {
      this.checker.fail("liveness", `no new entry applied within ${this.swarm.livenessBoundMs}ms of healing (above ${floor}): ${stuck.join(" ")}`);
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

function bugSwitches(bug: BugName | null): BugSwitches {
  if (bug === null || bug === "sendBeforePersist") return NO_BUGS;
  return { ...NO_BUGS, [bug]: true };
}
