// The lock-service simulation (DESIGN.md §7.3): production RaftNodes running the production
// LockStateMachine over simulated disks (sim_storage.ts), a faulty simulated network and drifting
// clocks, with simulated clients (sim_client.ts) that grant, renew, acquire, write through a
// simulated storage guard (sim_guard.ts) and release. One seed replays one run exactly: nothing
// here reads real time or Math.random.
//
// A safety phase injects the faults of vopr.ts (loss, duplication, reordering, partitions incl.
// one-way and client isolation, crash/restart dropping unsynced writes, process pauses, leader-
// targeted faults) plus client pauses; a liveness phase heals everything and requires every node
// to apply new entries and every client to be granted a lock again. The Raft checkers
// (checkers.ts) and the lock checkers (lock_checkers.ts) run on every event.

import { AssertionError } from "../../server/core/assert.ts";
import { bootstrapState } from "../../server/core/bootstrap.ts";
import { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { RaftNode } from "../../server/node/raft_node.ts";
import { stateConfig, type StateConfig } from "../../server/state/limits.ts";
import { SafetyChecker } from "./checkers.ts";
import { EventQueue } from "./event_queue.ts";
import { LockChecker } from "./lock_checkers.ts";
import { checkedView, makeRaftNode, serveClient, type SimLockNode } from "./lock_sim_node.ts";
import type { LockEvent, LockRunOptions, LockRunResult, LockRunStats } from "./lock_sim_types.ts";
import { BROKEN_BOUND, describeSwarm, drawLockSwarm, withLockLivenessBound, type LockSwarm } from "./swarm.ts";
import { SimClient, type ClientRequest } from "./sim_client.ts";
import { drawFault } from "./nemesis.ts";
import { SimDisk } from "./sim_disk.ts";
import { SimGuard, type GuardWrite } from "./sim_guard.ts";

export type { LockRunOptions, LockRunResult, LockRunStats } from "./lock_sim_types.ts";

const eventsMax = 3_000_000;
const GUARD = "guard";

export function runLockSeed(options: LockRunOptions): LockRunResult {
  const sim = new LockSimulation(options);
  sim.run();
  return sim.result();
}

class LockSimulation {
  private readonly random: SeededRandom;
  private readonly net: SeededRandom;
  private readonly swarm: LockSwarm;
  private readonly queue = new EventQueue<LockEvent>(400_000);
  private readonly nodes = new Map<NodeId, SimLockNode>();
  private readonly clients = new Map<string, SimClient>();
  private readonly clientPausedUntil = new Map<string, number>();
  private readonly clientRate = new Map<string, number>();
  /** Negative control: clients whose clock runs slower than the bound allows. */
  private readonly slowClients = new Set<string>();
  private readonly blocked = new Set<string>();
  private readonly checker: SafetyChecker;
  private readonly locks: LockChecker;
  private readonly guard: SimGuard;
  private readonly stateConfig: StateConfig;
  private readonly acked: { index: number; term: number }[] = [];
  private nowMs = 0;
  private healed = false;
  private healedAtMs = 0;
  private healFloor = 0;
  private stopped = false;
  private trace = 0x811c9dc5;
  readonly stats: LockRunStats = {
    events: 0, messagesSent: 0, messagesDropped: 0, crashes: 0, partitions: 0, pauses: 0, clientPauses: 0,
    unawarePauses: 0, leaderElections: 0, grants: 0, beliefs: 0, guardAccepted: 0, guardRejected: 0,
    leasesLost: 0, simulatedMs: 0, recoveryMs: -1,
  };

  constructor(private readonly options: LockRunOptions) {
    this.random = new SeededRandom(options.seed ^ 0x5a17c0de);
    this.swarm = withLockLivenessBound({ ...drawLockSwarm(this.random), ...options.swarm });
    this.net = this.random.fork();
    const s = this.swarm;
    this.checker = new SafetyChecker({ onSend: (m) => this.transmit(m.from, m.to, { kind: "peer", message: m }, m.term), onApply: () => {} });
    this.locks = new LockChecker((check, detail) => this.checker.fail(check, detail), options.breakDriftBound === true);
    this.guard = new SimGuard(this.locks, options.bug === "guardCheckNotAtomic");
    const bugs = {
      grantWithoutLeaseCheck: options.bug === "grantWithoutLeaseCheck",
      reuseTokenAfterRestore: options.bug === "reuseTokenAfterRestore",
    };
    this.stateConfig = { ...stateConfig({ rho: s.rho, lockDelayMs: s.lockDelayMs }), bugs };
    const ids = ["a", "b", "c", "d", "e"].slice(0, s.nodeCount);
    const initial = bootstrapState(ids);
    for (const id of ids) {
      const random = this.random.fork();
      this.nodes.set(id, {
        id, disk: new SimDisk(initial), random, rate: this.rateWithin(random), offsetMs: random.nextInt(1_000_000),
        raft: null, incarnation: 0, pausedUntilMs: 0, hashedIndex: -1, wasLeader: false,
      });
    }
    for (let i = 1; i <= s.clientCount; i++) {
      const id = `c${i}`;
      const random = this.random.fork();
      let rate = this.rateWithin(random);
      if (options.breakDriftBound && random.nextFloat() < BROKEN_BOUND.slowClientProbability) {
        rate = (1 - s.rho) * (BROKEN_BOUND.slowFactors[random.nextInt(BROKEN_BOUND.slowFactors.length)] ?? 0.5);
        this.slowClients.add(id);
      }
      this.clientRate.set(id, rate);
      const config = {
        id, rate, offsetMs: random.nextInt(1_000_000), ttlMs: s.ttlMs, rho: s.rho, marginMs: s.marginMs,
        lockNames: ["x", "y", "z"].slice(0, s.lockCount), nodes: ids, writeEveryMs: s.writeEveryMs,
        holdMsMax: s.holdMsMax, thinkMsMax: s.thinkMsMax, pollMs: s.pollMs, attemptTimeoutMs: s.attemptTimeoutMs,
        revokeProbability: s.revokeProbability, staleLeaseProbe: true,
      };
      this.clients.set(id, new SimClient(config, this.clientEnv(), random));
    }
  }

  /** A clock rate in [1 - rho, 1 + rho], often at an edge: the bound must hold exactly there. */
  private rateWithin(r: SeededRandom): number {
    const rho = this.swarm.rho;
    const roll = r.nextFloat();
    return roll < 0.25 ? 1 - rho : roll < 0.5 ? 1 + rho : 1 - rho + 2 * rho * r.nextFloat();
  }

  private clientEnv(): ConstructorParameters<typeof SimClient>[1] {
    return {
      checker: this.locks,
      sendToNode: (client, node, request) => this.transmit(client, node, { kind: "toNode", node, client, request }, request.reqId),
      sendToGuard: (client, write) => this.transmit(client, GUARD, { kind: "toGuard", write }, write.token),
      schedule: (client, localMs, timer) => {
        this.queue.push(this.nowMs + localMs / (this.clientRate.get(client) ?? 1), { kind: "clientTimer", client, timer });
      },
      unawarePauseMs: (client) => {
        if (!this.options.breakDriftBound || this.healed || this.net.nextFloat() >= BROKEN_BOUND.unawarePauseProbability) return 0;
        const s = this.swarm;
        const pauseMs = s.ttlMs * (1.5 + 1.5 * this.net.nextFloat()) + s.lockDelayMs;
        this.clientPausedUntil.set(client, this.nowMs + pauseMs);
        this.stats.unawarePauses++;
        return pauseMs;
      },
    };
  }

  run(): void {
    for (const n of this.nodes.values()) this.startNode(n);
    for (const c of this.clients.values()) c.start();
    const s = this.swarm;
    this.queue.push(s.nemesisIntervalMs, { kind: "nemesis" });
    this.queue.push(s.safetyPhaseMs, { kind: "heal" }); // it starts the liveness checks
    while (!this.stopped && this.stats.events < eventsMax) {
      const next = this.queue.pop();
      if (!next) break;
      this.nowMs = next.atMs;
      this.checker.nowMs = next.atMs;
      this.locks.nowMs = next.atMs;
      this.stats.events++;
      try {
        this.handle(next.event);
      } catch (err) {
        if (!(err instanceof AssertionError)) throw err;
        this.checker.fail("assertion", err.message);
      }
      if (!this.checker.ok()) this.stopped = true;
    }
    for (const a of this.acked) this.checker.checkAcked(a.index, a.term);
    this.stats.simulatedMs = Math.round(this.nowMs);
    this.stats.grants = this.locks.grantsSeen;
    this.stats.beliefs = this.locks.beliefsOpened;
    this.stats.guardAccepted = this.guard.accepted;
    this.stats.guardRejected = this.guard.rejected;
    for (const c of this.clients.values()) this.stats.leasesLost += c.leasesLost;
  }

  result(): LockRunResult {
    return {
      seed: this.options.seed,
      ok: this.checker.ok(),
      violations: this.checker.violations,
      observations: { overlaps: this.locks.overlapsObserved, details: this.locks.observations },
      traceHash: (this.trace >>> 0).toString(16).padStart(8, "0"),
      stats: this.stats,
      swarm: describeSwarm(this.swarm) + (this.options.breakDriftBound ? " breakDriftBound=true" : ""),
    };
  }

  private handle(e: LockEvent): void {
    switch (e.kind) {
      case "tick":
        return this.onTick(e.node, e.incarnation);
      case "peer":
        return this.atNode(e.message.to, e, (raft) => raft.receive(e.message));
      case "toNode":
        return this.atNode(e.node, e, (raft, n) => this.serve(n, raft, e.client, e.request));
      case "toClient":
      case "clientTimer":
      case "fromGuard":
        return this.atClient(e);
      case "toGuard":
        return this.onGuardArrival(e.write);
      case "guardCommit": {
        const outcome = this.guard.commit(e.write, e.checkedOnArrival);
        this.mix(9, e.write.clientId, e.write.token);
        return this.transmit(GUARD, e.write.clientId, { kind: "fromGuard", client: e.write.clientId, outcome }, 0);
      }
      case "nemesis":
        return this.onNemesis();
      case "restart":
        return this.restart(e.node);
      case "heal":
        return this.onHeal();
      case "livenessDeadline":
        return this.onLivenessDeadline();
    }
  }

  // ------------------------------------------------------------ nodes

  private node(id: NodeId): SimLockNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`unknown node ${id}`);
    return n;
  }

  private startNode(n: SimLockNode): void {
    const s = this.swarm;
    const debug = this.options.debug ? (line: string) => console.log(`${this.nowMs.toFixed(1)} ${line}`) : null;
    const raft = makeRaftNode(n, {
      swarm: s,
      stateConfig: this.stateConfig,
      members: [...this.nodes.keys()],
      checker: this.checker,
      locks: this.locks,
      nowMs: () => this.nowMs,
      debug,
    });
    n.raft = raft;
    n.incarnation++;
    n.hashedIndex = -1;
    n.wasLeader = false;
    this.afterTouch(n);
    this.queue.push(this.nowMs + s.tickMs / n.rate, { kind: "tick", node: n.id, incarnation: n.incarnation });
  }

  private onTick(id: NodeId, incarnation: number): void {
    const n = this.node(id);
    if (!n.raft || n.incarnation !== incarnation) return;
    if (n.pausedUntilMs > this.nowMs) {
      this.queue.push(n.pausedUntilMs, { kind: "tick", node: id, incarnation });
      return;
    }
    this.mix(1, id, 0);
    n.raft.tick();
    this.process(n);
    this.queue.push(this.nowMs + this.swarm.tickMs / n.rate, { kind: "tick", node: id, incarnation });
  }

  /** Runs `input` on a live, unpaused node (a paused one gets it when it wakes), then processes. */
  private atNode(id: NodeId, e: LockEvent, input: (raft: RaftNode, n: SimLockNode) => void): void {
    const n = this.node(id);
    if (!n.raft) return; // the process is down: the packet is lost
    if (n.pausedUntilMs > this.nowMs) {
      this.queue.push(n.pausedUntilMs + this.net.nextFloat(), e);
      return;
    }
    this.mix(3, id, e.kind === "peer" ? e.message.term : 0);
    input(n.raft, n);
    this.process(n);
  }

  /** A client's request reached node n: the node's own API, with replies back over the network. */
  private serve(n: SimLockNode, raft: RaftNode, client: string, request: ClientRequest): void {
    serveClient(raft, request, {
      alive: () => n.raft === raft, // a crashed process answers nobody; the client times out
      reply: (r) => this.transmit(n.id, client, { kind: "toClient", client, reply: r }, r.reqId),
      onApplied: (command, result, term) => {
        this.locks.onApplied(command.clientId, command.seq, result);
        if (!result.replayed) this.acked.push({ index: result.index, term });
      },
    });
  }


  private process(n: SimLockNode): void {
    n.raft?.process();
    this.afterTouch(n);
  }

  private afterTouch(n: SimLockNode): void {
    const raft = n.raft;
    if (!raft) return;
    this.checker.checkNode(checkedView(n, raft));
    const machine = raft.stateMachine();
    const applied = machine.appliedIndex();
    if (applied !== n.hashedIndex && applied > 0 && this.options.compareStateHashes !== false) {
      n.hashedIndex = applied;
      this.locks.onStateHash(n.id, applied, machine.stateHash());
    }
    const leader = raft.status().role === "leader";
    if (leader && !n.wasLeader) this.stats.leaderElections++;
    n.wasLeader = leader;
  }


  private crash(n: SimLockNode): void {
    const raft = n.raft;
    if (!raft) return;
    this.stats.crashes++;
    this.mix(5, n.id, 0);
    n.raft = null; // first: callbacks fired by stop() belong to a dead process
    raft.stop();
    n.disk.crash();
    this.queue.push(this.nowMs + 1 + this.net.nextFloat() * this.swarm.restartDelayMsMax, { kind: "restart", node: n.id });
  }

  private restart(id: NodeId): void {
    const n = this.node(id);
    if (n.raft) return;
    this.mix(4, id, 0);
    this.startNode(n);
  }

  // ------------------------------------------------------------ clients, guard, network

  private atClient(e: Extract<LockEvent, { kind: "toClient" | "clientTimer" | "fromGuard" }>): void {
    const until = this.clientPausedUntil.get(e.client) ?? 0;
    if (until > this.nowMs) {
      this.queue.push(until, e);
      return;
    }
    const c = this.clients.get(e.client);
    if (!c) return;
    c.nowTrue = this.nowMs;
    this.mix(6, e.client, e.kind === "clientTimer" ? e.timer.kind.length : 0);
    if (e.kind === "toClient") c.onReply(e.reply);
    else if (e.kind === "clientTimer") c.onTimer(e.timer);
  }

  private onGuardArrival(write: GuardWrite): void {
    const early = this.guard.arrive(write);
    const writeMs = this.net.nextFloat() * this.swarm.guardWriteMsMax;
    if (!early.ok) {
      this.transmit(GUARD, write.clientId, { kind: "fromGuard", client: write.clientId, outcome: early }, 0);
      return;
    }
    this.queue.push(this.nowMs + writeMs, { kind: "guardCommit", write, checkedOnArrival: this.options.bug === "guardCheckNotAtomic" });
  }

  /** Every message (peer, client, guard) crosses the same faulty network. */
  private transmit(from: string, to: string, e: LockEvent, n: number): void {
    this.stats.messagesSent++;
    this.mix(2, from + to, n);
    if (this.blocked.has(`${from}>${to}`) || (!this.healed && this.net.nextFloat() < this.swarm.lossProbability)) {
      this.stats.messagesDropped++;
      return;
    }
    const copies = !this.healed && this.net.nextFloat() < this.swarm.duplicateProbability ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.queue.push(this.nowMs + this.swarm.delayMinMs + this.net.nextFloat() * this.swarm.delayJitterMs, e);
    }
  }

  // ------------------------------------------------------------ faults and phases

  private onNemesis(): void {
    if (this.healed) return;
    const ids = [...this.nodes.keys()];
    const leader = ids.find((id) => this.node(id).raft?.status().role === "leader");
    const fault = drawFault(this.net, this.swarm, { nodes: ids, clients: [...this.clients.keys()], leader });
    switch (fault.kind) {
      case "crash":
        this.crash(this.node(fault.node));
        break;
      case "partition":
        this.stats.partitions++;
        this.blocked.clear();
        for (const link of fault.links) this.blocked.add(link);
        break;
      case "pause": {
        this.stats.pauses++;
        const n = this.node(fault.node);
        n.pausedUntilMs = Math.max(n.pausedUntilMs, this.nowMs + fault.ms);
        break;
      }
      case "clientPause":
        this.stats.clientPauses++;
        this.clientPausedUntil.set(fault.client, this.nowMs + fault.ms);
        break;
      case "heal":
        this.blocked.clear();
        break;
      case "siteLoss":
      case "linkCut":
        // Weighted 0 here: site faults belong to the witness topology of vopr.ts.
        throw new Error(`the lock simulation drew a ${fault.kind}`);
    }
    this.queue.push(this.nowMs + this.swarm.nemesisIntervalMs * (0.5 + this.net.nextFloat()), { kind: "nemesis" });
  }

  private onHeal(): void {
    this.healed = true;
    this.blocked.clear();
    this.clientPausedUntil.clear();
    for (const n of this.nodes.values()) {
      n.pausedUntilMs = 0;
      if (!n.raft) this.restart(n.id);
    }
    this.healedAtMs = this.nowMs;
    this.healFloor = Math.max(0, ...[...this.nodes.values()].map((n) => n.raft?.status().appliedIndex ?? 0));
    this.queue.push(this.nowMs + 50, { kind: "livenessDeadline" });
  }

  /** Unmet goals after healing, or [] once every node applied new entries and every client was granted. */
  private livenessGaps(): string[] {
    const gaps: string[] = [];
    for (const n of this.nodes.values()) {
      const applied = n.raft?.status().appliedIndex ?? 0;
      if (applied <= this.healFloor) gaps.push(`${n.id}@${applied}`);
    }
    // A client whose clock is too slow renews too late to keep any lease: no promise to it.
    for (const [id, c] of this.clients) {
      if (c.lastGrantAtMs < this.healedAtMs && !this.slowClients.has(id)) gaps.push(`${id} not granted`);
    }
    return gaps;
  }

  private onLivenessDeadline(): void {
    if (!this.healed) return;
    const gaps = this.livenessGaps();
    if (gaps.length === 0) {
      this.stats.recoveryMs = Math.round(this.nowMs - this.healedAtMs);
      this.stopped = true;
    } else if (this.nowMs >= this.healedAtMs + this.swarm.livenessBoundMs - 1) {
      this.checker.fail("liveness", `within ${this.swarm.livenessBoundMs}ms of healing (applied floor ${this.healFloor}): ${gaps.join(" ")}`);
      this.stopped = true;
    } else this.queue.push(this.nowMs + 50, { kind: "livenessDeadline" });
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

