// The lock-service simulation (DESIGN.md §7.3): production RaftNodes running the production
// LockStateMachine over simulated disks (sim_storage.ts), a faulty simulated network and drifting
// clocks, with simulated clients that grant, renew, acquire, write through a simulated storage
// guard (sim_guard.ts) and release. The clients run the production SDK (sdk_client.ts: a
// TenureClient on the client's simulated clock and timers) over a simulated gRPC served by the
// production api handlers (sim_client.ts). One seed replays one run exactly: nothing here reads
// real time or Math.random. The SDK is async: after an event that ran SDK or api code, the loop
// drains every pending promise continuation (one macrotask turn) before it takes the next event,
// so they all run at that event's simulated instant, in the same order on every run.
//
// A safety phase injects the faults of vopr.ts (loss, duplication, reordering, partitions incl.
// one-way and client isolation, crash/restart dropping unsynced writes, process pauses, leader-
// targeted faults) plus client pauses; a liveness phase heals everything and requires every node
// to apply new entries and every client to be granted a lock again. The Raft checkers
// (checkers.ts) and the lock checkers (lock_checkers.ts) run on every event.
//
// Readers (sim_reader.ts), three per member, send Status and ValidateToken reads to their member
// (a follower refuses); at the end of the run the answered reads and the log's grants and
// releases are checked for linearizability (lock_checkers.ts ReadHistory, the chaos checker's
// model and search). On half of the seeds some or all nodes have the apply-lag fault (ApplyLag in
// lock_sim_types.ts): applied lags commit across passes, which a confirmed read must wait out.

import { AssertionError } from "../../server/core/assert.ts";
import { bootstrapState } from "../../server/core/bootstrap.ts";
import { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { RaftNode } from "../../server/node/raft_node.ts";
import { stateConfig, type StateConfig } from "../../server/state/limits.ts";
import { type CheckedNode, SafetyChecker } from "./checkers.ts";
import { EventQueue } from "./event_queue.ts";
import { LockChecker, ReadHistory } from "./lock_checkers.ts";
import { checkedView, makeRaftNode, serveRead, type SimLockNode } from "./lock_sim_node.ts";
import type { ApplyLag, LockEvent, LockRunOptions, LockRunResult, LockRunStats, LockViolation } from "./lock_sim_types.ts";
import { SimReader } from "./sim_reader.ts";
import { BROKEN_BOUND, describeSwarm, drawLockSwarm, withLockLivenessBound, type LockSwarm } from "./swarm.ts";
import { SdkSimClient, type SdkClientEnv } from "./sdk_client.ts";
import { SimWireHub, type WireEnv } from "./sim_client.ts";
import { drawFault } from "./nemesis.ts";
import { drawMembership, MembershipNemesis, membershipRandom, type MembershipHost } from "./membership_nemesis.ts";
import {
  CRASH_POINT_OPS_MAX,
  crashPointRandom,
  drawCrashPoints,
  SimDisk,
  SimulatedCrash,
  type CrashPointOp,
  type CrashPointOptions,
} from "./sim_disk.ts";
import { SimGuard, type GuardWrite } from "./sim_guard.ts";
import { durableTermOrSnapshot } from "./sim_storage.ts";

export type { LockRunOptions, LockRunResult, LockRunStats } from "./lock_sim_types.ts";

const eventsMax = 3_000_000;
/** A background write's fsync returns within this (lock_sim_types backgroundWrites). */
const BACKGROUND_SYNC_MS_MAX = 4;
/** A stale read is caught only if a reader asks the lagging leader in time: three per member. */
const READERS_PER_MEMBER = 3;
const GUARD = "guard";

export async function runLockSeed(options: LockRunOptions): Promise<LockRunResult> {
  const sim = new LockSimulation(options);
  await sim.run();
  return sim.result();
}

class LockSimulation {
  private readonly random: SeededRandom;
  private readonly net: SeededRandom;
  private readonly swarm: LockSwarm;
  private readonly queue = new EventQueue<LockEvent>(400_000);
  private readonly nodes = new Map<NodeId, SimLockNode>();
  private readonly clients = new Map<string, SdkSimClient>();
  private readonly wires: SimWireHub;
  /** The last event ran SDK or api code: drain its promise continuations before the next one. */
  private drain = false;
  /** A non-assertion exception thrown in a continuation: rethrown by run(), as a synchronous one would be. */
  private escaped: unknown = null;
  /**
   * The client pause a lease's t0 depends on (the SDK takes it before the send, so the correct
   * SDK is safe under it): a client's process pauses just as a Lease answer (Grant, KeepAlive)
   * arrives, for 0.5 to 2 TTL plus the lock-delay (long enough, often, for the server to expire
   * the lease and hand its locks on), during the safety phase; aimed at lock holders as other faults
   * are aimed at the leader (holderProbability, a fifth of it for other clients). A pause drawn by
   * the nemesis at a random moment almost never falls between the server applying a renewal and
   * the holder handling its answer (one network round trip). Own stream: other draws stay as they were.
   */
  private readonly replyPauses: { readonly random: SeededRandom; readonly holderProbability: number };
  private readonly clientPausedUntil = new Map<string, number>();
  /** Negative control: clients whose clock runs slower than the bound allows. */
  private readonly slowClients = new Set<string>();
  private readonly blocked = new Set<string>();
  private readonly checker: SafetyChecker;
  private readonly locks: LockChecker;
  private readonly guard: SimGuard;
  private readonly stateConfig: StateConfig;
  private readonly acked: { index: number; term: number }[] = [];
  /** Readers and the apply-lag fault draw from their own stream: the other draws stay as they were. */
  private readonly readRandom: SeededRandom;
  private readonly readNet: SeededRandom;
  private readonly readers = new Map<string, SimReader>();
  /** Crash points inside a Ready (sim_disk.ts), drawn on their own stream (other draws unchanged). */
  private readonly crashPointRandom: SeededRandom;
  private readonly crashPoints: CrashPointOptions;
  /** Pause between a reader's reads, at most (drawn per seed). */
  private readonly readEveryMsMax: number;
  /** The members of the bootstrap configuration. */
  private readonly initialIds: readonly NodeId[];
  private readonly reads = new ReadHistory();
  private readonly readViolations: LockViolation[] = [];
  private nowMs = 0;
  private healed = false;
  private healedAtMs = 0;
  private healFloor = 0;
  private stopped = false;
  private trace = 0x811c9dc5;
  readonly stats: LockRunStats = {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    crashes: 0,
    partitions: 0,
    pauses: 0,
    clientPauses: 0,
    unawarePauses: 0,
    replyPauses: 0,
    leaderElections: 0,
    grants: 0,
    beliefs: 0,
    guardAccepted: 0,
    guardRejected: 0,
    leasesLost: 0,
    simulatedMs: 0,
    recoveryMs: -1,
    slowNodes: 0,
    applyLagMax: 0,
    reads: 0,
    readsAnswered: 0,
    readsRefused: 0,
    readCheckOps: 0,
    readCheckSteps: 0,
    readCheckUnknown: 0,
    churnReaders: 0,
    churnReadsAnswered: 0,
    durableCommitChecks: 0,
    restoresToWaiters: 0,
    crashPointsArmed: 0,
    crashesInReady: 0,
    backgroundWrites: 0,
    backgroundWritesLost: 0,
    crashesInReadyBefore: { writeSnapshot: 0, writeEntries: 0, writeHardState: 0, compact: 0, sync: 0, send: 0 },
  };

  constructor(private readonly options: LockRunOptions) {
    this.random = new SeededRandom(options.seed ^ 0x5a17c0de);
    this.crashPointRandom = crashPointRandom(options.seed ^ 0x6c6f636b);
    this.crashPoints = drawCrashPoints(this.crashPointRandom);
    const churnRandom = membershipRandom(options.seed, 0x6c6f636b); // membership churn: its own stream
    this.swarm = withLockLivenessBound({ ...drawLockSwarm(this.random), ...drawMembership(churnRandom), ...options.swarm });
    this.net = this.random.fork();
    const s = this.swarm;
    this.checker = new SafetyChecker({
      onSend: (m) => this.transmit(m.from, m.to, { kind: "peer", message: m }, m.term),
      onApply: () => {},
      durableTermAt: (id, index) => {
        const n = this.nodes.get(id);
        return n ? durableTermOrSnapshot(n.disk, index) : undefined;
      },
    });
    this.checker.disabledChecks = new Set(options.disabledChecks ?? []);
    this.locks = new LockChecker((check, detail) => this.checker.fail(check, detail), options.breakDriftBound === true);
    this.guard = new SimGuard(this.locks, options.bug === "guardCheckNotAtomic");
    const bugs = {
      grantWithoutLeaseCheck: options.bug === "grantWithoutLeaseCheck",
      reuseTokenAfterRestore: options.bug === "reuseTokenAfterRestore",
    };
    this.stateConfig = { ...stateConfig({ rho: s.rho, lockDelayMs: s.lockDelayMs }), bugs };
    const replyRandom = new SeededRandom(options.seed ^ 0x1ea5e70);
    this.replyPauses = { random: replyRandom, holderProbability: replyRandom.pick([0.2, 0.5, 0.8]) };
    this.wires = new SimWireHub(this.wireEnv());
    const ids = ["a", "b", "c", "d", "e"].slice(0, s.nodeCount);
    this.initialIds = ids;
    const initial = bootstrapState(ids);
    this.readRandom = new SeededRandom(options.seed ^ 0x7ead1a99);
    this.readNet = this.readRandom.fork();
    const lags = this.drawApplyLag(ids);
    for (const id of ids) {
      const random = this.random.fork();
      const lag = lags.get(id) ?? null;
      if (lag) this.stats.slowNodes++;
      this.nodes.set(id, {
        id,
        disk: new SimDisk(initial),
        random,
        rate: this.rateWithin(random),
        offsetMs: random.nextInt(1_000_000),
        raft: null,
        incarnation: 0,
        pausedUntilMs: 0,
        hashedIndex: -1,
        wasLeader: false,
        lag,
        passRequested: false,
        passScheduled: false,
        lastPassMs: -Infinity,
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
      const config = {
        id,
        rate,
        offsetMs: random.nextInt(1_000_000),
        ttlMs: s.ttlMs,
        rho: s.rho,
        marginMs: s.marginMs,
        lockNames: ["x", "y", "z"].slice(0, s.lockCount),
        nodes: this.endpointIds(ids),
        writeEveryMs: s.writeEveryMs,
        holdMsMax: s.holdMsMax,
        thinkMsMax: s.thinkMsMax,
        attemptTimeoutMs: s.attemptTimeoutMs,
        revokeProbability: s.revokeProbability,
        staleLeaseProbe: true,
        bugLeaseStartAfterReply: options.bug === "leaseStartAfterReply",
        acquireTimeoutMs: options.acquireDeadline === true ? 4 * s.ttlMs : Number.POSITIVE_INFINITY,
      };
      this.clients.set(id, new SdkSimClient(config, this.clientEnv(), random));
    }
    this.readEveryMsMax = this.readRandom.pick([2, 5, 20]);
    for (const node of ids) this.addReaders(node);
    const initialConf = initial.snapshot?.metadata.confState;
    if (!initialConf) throw new Error("bootstrap state without a configuration");
    this.membership = new MembershipNemesis(this.membershipHost(initial), churnRandom, s, "plain", initialConf, () => false);
  }

  /**
   * READERS_PER_MEMBER readers asking `node`: for the initial members at construction (started
   * by run()), for a member the churn adds when its process starts (started at once). Each
   * reader's stream is a fork of the readers' stream, taken in that order.
   */
  private addReaders(node: NodeId, start = false): void {
    const s = this.swarm;
    for (let k = 1; k <= READERS_PER_MEMBER; k++) {
      const id = `r${node}${k}`;
      const config = { id, node, lockNames: ["x", "y", "z"].slice(0, s.lockCount), readEveryMsMax: this.readEveryMsMax, timeoutMs: 300 };
      const reader = new SimReader(config, this.readerEnv(), this.readRandom.fork());
      this.readers.set(id, reader);
      if (start) {
        this.stats.churnReaders++;
        reader.nowTrue = this.nowMs;
        reader.start();
      }
    }
  }

  /**
   * The apply-lag fault (lock_sim_types.ts ApplyLag), on half of the seeds: every node (three
   * times in four) or each node with probability one half (at least one) is slow, all slow nodes
   * alike; mostly one committed entry per Ready and one Ready per pass, a pass every 20 to 45 ms
   * (a stale read needs a backlog of a few entries on the leader, which one entry per pass builds
   * and two barely do). Healing ends the slow pace: liveness is measured without it.
   */
  private drawApplyLag(ids: readonly NodeId[]): Map<NodeId, ApplyLag> {
    const out = new Map<NodeId, ApplyLag>();
    const r = this.readRandom;
    const option = this.options.applyLag ?? "drawn";
    if (option === "off") return out;
    if (option !== "drawn") {
      for (const id of ids) out.set(id, option);
      return out;
    }
    if (r.nextFloat() >= 0.5) return out;
    const lag: ApplyLag = {
      committedEntriesPerReadyMax: r.pick([1, 1, 1, 2]),
      readiesPerPassMax: r.pick([1, 1, 1, 2]),
      passEveryMs: r.pick([20, 30, 45, 45]),
    };
    const all = r.nextFloat() < 0.75;
    for (const id of ids) if (all || r.nextFloat() < 0.5) out.set(id, lag);
    if (out.size === 0) out.set(r.pick(ids), lag);
    return out;
  }

  private readerEnv(): ConstructorParameters<typeof SimReader>[1] {
    return {
      send: (reader, node, request) =>
        this.transmit(reader, node, { kind: "toReaderNode", node, reader, request }, request.reqId, this.readNet),
      schedule: (reader, delayMs, timer) => this.queue.push(this.nowMs + delayMs, { kind: "readerTimer", reader, timer }),
      tokensOf: (lock) => this.reads.tokensOf(lock),
      record: (read) => this.reads.record(read),
    };
  }

  /** A clock rate in [1 - rho, 1 + rho], often at an edge: the bound must hold exactly there. */
  private rateWithin(r: SeededRandom): number {
    const rho = this.swarm.rho;
    const roll = r.nextFloat();
    return roll < 0.25 ? 1 - rho : roll < 0.5 ? 1 + rho : 1 - rho + 2 * rho * r.nextFloat();
  }

  private clientEnv(): SdkClientEnv {
    return {
      checker: this.locks,
      nowMs: () => this.nowMs,
      schedule: (client, trueMs, fire) => this.queue.push(this.nowMs + trueMs, { kind: "sdkTimer", client, fire }),
      wire: (client, timers) => this.wires.wireFor(client, timers),
      sendToGuard: (client, write) => this.transmit(client, GUARD, { kind: "toGuard", write }, write.token),
      fail: (error) => this.escape(error),
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

  /** The simulated gRPC's view of the run (sim_client.ts). */
  private wireEnv(): WireEnv {
    const s = this.swarm;
    return {
      send: (from, to, tag, deliver) => this.transmit(from, to, { kind: "wire", to, deliver }, tag),
      after: (to, trueMs, deliver) => this.queue.push(this.nowMs + trueMs, { kind: "wire", to, deliver }),
      nowMs: () => this.nowMs,
      oneWayDelayMs: () => s.delayMinMs + this.net.nextFloat() * s.delayJitterMs,
      raftOf: (node) => this.nodes.get(node)?.raft ?? null,
      process: (node) => this.process(this.node(node)),
      onApplied: (command, result, term) => {
        this.locks.onApplied(command.clientId, command.seq, result);
        if (!result.replayed) this.acked.push({ index: result.index, term });
      },
      touched: () => {
        this.drain = true;
      },
      restoredToWaiter: () => {
        this.stats.restoresToWaiters++;
      },
      fail: (error) => this.escape(error),
      stateConfig: this.stateConfig,
      brokenDetectMs: s.attemptTimeoutMs,
      pauseOnLeaseReply: (client) => {
        const r = this.replyPauses;
        const p = this.clients.get(client)?.holdsLock === true ? r.holderProbability : r.holderProbability / 5;
        if (this.healed || r.random.nextFloat() >= p) return false;
        const until = this.nowMs + s.ttlMs * (0.5 + 1.5 * r.random.nextFloat()) + s.lockDelayMs;
        this.clientPausedUntil.set(client, Math.max(this.clientPausedUntil.get(client) ?? 0, until));
        this.stats.replyPauses++;
        return true;
      },
    };
  }

  private escape(error: unknown): void {
    if (error instanceof AssertionError) this.checker.fail("assertion", error.message);
    else this.escaped ??= error;
  }

  /** Runs every continuation the last event left pending (SDK clients, api handlers) at this instant. */
  private async settle(): Promise<void> {
    // A macrotask boundary: Node runs the whole microtask queue, including what it adds, first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.drain = false;
    for (const c of this.clients.values()) c.observe();
    if (this.escaped !== null) throw this.escaped;
  }

  async run(): Promise<void> {
    for (const n of this.nodes.values()) this.startNode(n);
    for (const c of this.clients.values()) c.start();
    await this.settle();
    for (const r of this.readers.values()) r.start();
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
        this.membership.poll(this.nowMs);
      } catch (err) {
        if (!(err instanceof AssertionError)) throw err;
        this.checker.fail("assertion", err.message);
      }
      if (this.drain) await this.settle();
      if (!this.checker.ok()) this.stopped = true;
    }
    for (const a of this.acked) this.checker.checkAcked(a.index, a.term);
    this.stats.durableCommitChecks = this.checker.durableCommitChecks;
    this.stats.simulatedMs = Math.round(this.nowMs);
    this.stats.grants = this.locks.grantsSeen;
    this.stats.beliefs = this.locks.beliefsOpened;
    this.stats.guardAccepted = this.guard.accepted;
    this.stats.guardRejected = this.guard.rejected;
    for (const c of this.clients.values()) this.stats.leasesLost += c.leasesLost;
    Object.assign(this.stats, this.membership.stats);
    const initial = new Set(this.initialIds);
    for (const r of this.readers.values()) {
      this.stats.reads += r.stats.issued;
      this.stats.readsAnswered += r.stats.answered;
      this.stats.readsRefused += r.stats.refused;
      if (!initial.has(r.config.node)) this.stats.churnReadsAnswered += r.stats.answered;
    }
    this.checkReads();
  }

  /** read-linearizable: the answered reads and the log's writes against the token register. */
  private checkReads(): void {
    const r = this.reads.check();
    this.stats.readCheckOps = r.ops;
    this.stats.readCheckSteps = r.steps;
    if (r.verdict === "unknown") this.stats.readCheckUnknown = 1;
    if (r.verdict !== "illegal") return;
    const detail = r.explanation.length > 4000 ? `${r.explanation.slice(0, 4000)} ...` : r.explanation;
    this.readViolations.push({ check: "read-linearizable", atMs: this.nowMs, detail });
  }

  result(): LockRunResult {
    return {
      seed: this.options.seed,
      ok: this.checker.ok() && this.readViolations.length === 0,
      violations: [...this.checker.violations, ...this.readViolations],
      observations: { overlaps: this.locks.overlapsObserved, details: this.locks.observations },
      traceHash: (this.trace >>> 0).toString(16).padStart(8, "0"),
      stats: this.stats,
      swarm:
        `${describeSwarm(this.swarm)} crashInReadyProbability=${this.crashPoints.inReadyProbability}` +
        (this.options.breakDriftBound ? " breakDriftBound=true" : ""),
    };
  }

  private handle(e: LockEvent): void {
    switch (e.kind) {
      case "tick":
        return this.onTick(e.node, e.incarnation);
      case "peer":
        return this.atNode(e.message.to, e, (raft) => raft.receive(e.message));
      case "wire":
        return this.atWire(e);
      case "sdkTimer":
      case "fromGuard":
        return this.atClient(e);
      case "toGuard":
        return this.onGuardArrival(e.write);
      case "guardCommit": {
        const outcome = this.guard.commit(e.write, e.checkedOnArrival);
        this.mix(9, e.write.clientId, e.write.token);
        this.transmit(GUARD, e.write.clientId, { kind: "fromGuard", client: e.write.clientId, outcome }, 0);
        return;
      }
      case "nemesis":
        return this.onNemesis();
      case "restart":
        return this.restart(e.node);
      case "heal":
        return this.onHeal();
      case "livenessDeadline":
        return this.onLivenessDeadline();
      case "pass":
        return this.onPass(e.node, e.incarnation);
      case "backgroundSync":
        return this.onBackgroundSync(e.node, e.incarnation, e.sync);
      case "toReaderNode":
        return this.atNode(e.node, e, (raft, n) => {
          serveRead(
            raft,
            e.request,
            () => n.raft === raft,
            (reply) => this.transmit(n.id, e.reader, { kind: "toReader", reader: e.reader, reply }, reply.reqId, this.readNet),
          );
        });
      case "toReader":
      case "readerTimer": {
        const r = this.readers.get(e.reader);
        if (!r) return;
        r.nowTrue = this.nowMs;
        this.mix(10, e.reader, e.kind === "toReader" ? e.reply.reqId : 0);
        if (e.kind === "toReader") r.onReply(e.reply);
        else r.onTimer(e.timer);
        return;
      }
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
      members: this.endpointIds([...this.nodes.keys()]),
      checker: this.checker,
      locks: this.locks,
      reads: this.reads,
      readBeforeApplied: this.options.bug === "readBeforeApplied",
      sendBeforePersist: this.options.bug === "sendBeforePersist",
      backgroundSync: this.options.backgroundWrites === true ? (node, sync) => this.scheduleBackgroundSync(node, sync) : null,
      nowMs: () => this.nowMs,
      debug,
    });
    n.raft = raft;
    n.incarnation++;
    n.hashedIndex = -1;
    n.wasLeader = false;
    n.passRequested = false;
    n.passScheduled = false;
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

  /** After input at n: a pass now, or for a slow node (apply lag) at its own pace. */
  private process(n: SimLockNode): void {
    if (n.lag === null || this.healed) return this.runPass(n);
    // Between an input and its pass the core may be ahead of the disk (a follower's commit index
    // covers entries not yet persisted): the node checks run after passes; the commit index is a
    // cluster fact (majority-durable), seen at once.
    if (n.raft) this.reads.observeCommit(n.raft.status().commitIndex, this.nowMs);
    this.schedulePass(n);
  }

  private runPass(n: SimLockNode): void {
    n.passRequested = false;
    n.lastPassMs = this.nowMs;
    try {
      n.raft?.process();
    } catch (err) {
      if (!(err instanceof SimulatedCrash)) throw err;
      return this.onCrashPoint(n, err.op);
    }
    const status = n.raft?.status();
    // Left after a pass (not at a restart, whose first pass has not run yet): apply lag.
    if (status) this.stats.applyLagMax = Math.max(this.stats.applyLagMax, status.commitIndex - status.appliedIndex);
    this.afterTouch(n);
    this.schedulePass(n);
  }

  /** A pass the RaftNode asked for (input, or work left by the last pass) that has not run. */
  private schedulePass(n: SimLockNode): void {
    if (!n.passRequested || n.passScheduled || !n.raft) return;
    n.passScheduled = true;
    // Healing ends the slow pace (the per-Ready and per-pass bounds stay: they are configuration).
    const at = n.lag === null || this.healed ? this.nowMs : Math.max(this.nowMs, n.lastPassMs + n.lag.passEveryMs);
    this.queue.push(at, { kind: "pass", node: n.id, incarnation: n.incarnation });
  }

  private onPass(id: NodeId, incarnation: number): void {
    const n = this.node(id);
    if (!n.raft || n.incarnation !== incarnation) return;
    if (n.pausedUntilMs > this.nowMs) {
      this.queue.push(n.pausedUntilMs, { kind: "pass", node: id, incarnation });
      return;
    }
    n.passScheduled = false;
    this.mix(11, id, 0);
    this.runPass(n);
  }

  /** A background write's fsync returns 0-4 ms from now (a disk's spread), in this process life. */
  private scheduleBackgroundSync(n: SimLockNode, sync: () => void): void {
    this.stats.backgroundWrites++;
    this.queue.push(this.nowMs + BACKGROUND_SYNC_MS_MAX * this.net.nextFloat(), {
      kind: "backgroundSync",
      node: n.id,
      incarnation: n.incarnation,
      sync,
    });
  }

  /** The sync runs (a crash point) and reports; the pass the node then asks for is queued. */
  private onBackgroundSync(id: NodeId, incarnation: number, sync: () => void): void {
    const n = this.node(id);
    // A crashed process's write went with its unsynced data; the new one never started it.
    if (!n.raft || n.incarnation !== incarnation) {
      this.stats.backgroundWritesLost++;
      return;
    }
    this.mix(15, id, 0);
    try {
      sync();
    } catch (err) {
      if (!(err instanceof SimulatedCrash)) throw err;
      return this.onCrashPoint(n, err.op);
    }
    this.schedulePass(n); // a paused process runs it when it wakes (onPass)
  }

  /** The checkers' view of a node's process, one per process life: afterTouch runs after every
   *  event, and a fresh view (an object and two closures) each time was 6% of a seed's time. */
  private readonly views = new WeakMap<RaftNode, { readonly incarnation: number; readonly view: CheckedNode }>();

  private viewOf(n: SimLockNode, raft: RaftNode): CheckedNode {
    const cached = this.views.get(raft);
    if (cached !== undefined && cached.incarnation === n.incarnation) return cached.view;
    const view = checkedView(n, raft);
    this.views.set(raft, { incarnation: n.incarnation, view });
    return view;
  }

  private afterTouch(n: SimLockNode): void {
    const raft = n.raft;
    if (!raft) return;
    this.checker.checkNode(this.viewOf(n, raft));
    this.reads.observeCommit(raft.status().commitIndex, this.nowMs);
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

  /**
   * The nemesis's crash: at once (between events), or, with the seed's crashInReadyProbability, at
   * a crash point 1..CRASH_POINT_OPS_MAX storage operations or sends ahead, which stops the node
   * in the middle of one of its next Ready cycles (sim_disk.ts; as vopr.ts does). A node already
   * armed crashes now.
   */
  private crashOrArm(n: SimLockNode): void {
    if (!n.raft) return;
    const r = this.crashPointRandom;
    if (!n.disk.isArmed() && r.nextFloat() < this.crashPoints.inReadyProbability) {
      n.disk.armCrash(1 + r.nextInt(CRASH_POINT_OPS_MAX));
      this.stats.crashPointsArmed++;
      return;
    }
    this.crash(n);
  }

  /** An armed crash point stopped the node inside a Ready, before `op`: the disk holds what was synced. */
  private onCrashPoint(n: SimLockNode, op: CrashPointOp): void {
    this.stats.crashesInReady++;
    this.stats.crashesInReadyBefore[op]++;
    this.crash(n);
  }

  private crash(n: SimLockNode): void {
    const raft = n.raft;
    if (!raft) return;
    this.stats.crashes++;
    this.mix(5, n.id, 0);
    n.raft = null; // first: callbacks fired by stop() belong to a dead process
    raft.stop();
    n.disk.crash();
    this.wires.nodeDown(n.id); // its clients' connections reset
    this.queue.push(this.nowMs + 1 + this.net.nextFloat() * this.swarm.restartDelayMsMax, { kind: "restart", node: n.id });
  }

  private restart(id: NodeId): void {
    const n = this.node(id);
    if (n.raft || this.membership.isRetired(id)) return;
    this.mix(4, id, 0);
    this.startNode(n);
  }

  // ------------------------------------------------------------ clients, guard, network

  /** A client's timer or guard answer; a paused client gets it when it wakes. */
  private atClient(e: Extract<LockEvent, { kind: "sdkTimer" | "fromGuard" }>): void {
    const until = this.clientPausedUntil.get(e.client) ?? 0;
    if (until > this.nowMs) {
      this.queue.push(until, e);
      return;
    }
    if (e.kind === "fromGuard") return this.mix(6, e.client, 0); // the client does not wait for it
    if (!e.fire()) return; // cleared meanwhile
    this.mix(6, e.client, 1);
    this.drain = true;
  }

  /** A simulated gRPC message (sim_client.ts): a paused process gets it when it wakes. */
  private atWire(e: Extract<LockEvent, { kind: "wire" }>): void {
    const n = this.nodes.get(e.to);
    if (n !== undefined && n.raft !== null && n.pausedUntilMs > this.nowMs) {
      this.queue.push(n.pausedUntilMs + this.net.nextFloat(), e);
      return;
    }
    const until = n === undefined ? (this.clientPausedUntil.get(e.to) ?? 0) : 0;
    if (until > this.nowMs) {
      this.queue.push(until, e);
      return;
    }
    this.mix(n === undefined ? 6 : 3, e.to, 2);
    e.deliver(); // a node that is down refuses it (sim_client.ts)
    this.drain = true;
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
  /** `random`: the readers' messages draw from their own stream (readNet). */
  private transmit(from: string, to: string, e: LockEvent, n: number, random: SeededRandom = this.net): boolean {
    this.stats.messagesSent++;
    this.mix(2, from + to, n);
    if (this.blocked.has(`${from}>${to}`) || (!this.healed && random.nextFloat() < this.swarm.lossProbability)) {
      this.stats.messagesDropped++;
      return false;
    }
    const copies = !this.healed && random.nextFloat() < this.swarm.duplicateProbability ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.queue.push(this.nowMs + this.swarm.delayMinMs + random.nextFloat() * this.swarm.delayJitterMs, e);
    }
    return true;
  }

  // ------------------------------------------------------------ faults and phases

  private onNemesis(): void {
    if (this.healed) return;
    const ids = [...this.nodes.keys()];
    const leader = ids.find((id) => this.node(id).raft?.status().role === "leader");
    const fault = drawFault(this.net, this.swarm, { nodes: ids, clients: [...this.clients.keys()], leader });
    switch (fault.kind) {
      case "crash":
        this.crashOrArm(this.node(fault.node));
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
    this.membership.onHeal(this.nowMs);
    this.healed = true;
    this.blocked.clear();
    this.clientPausedUntil.clear();
    for (const n of this.nodes.values()) {
      n.pausedUntilMs = 0;
      n.disk.disarm(); // the liveness phase has no faults
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
      if (!this.membership.isMember(n.id) || this.membership.isRetired(n.id)) continue; // removed: owes nothing
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
      this.checker.fail(
        "liveness",
        `within ${this.swarm.livenessBoundMs}ms of healing (applied floor ${this.healFloor}): ${gaps.join(" ")}`,
      );
      this.stopped = true;
    } else this.queue.push(this.nowMs + 50, { kind: "livenessDeadline" });
  }

  // ------------------------------------------------------------ membership churn (membership_nemesis.ts)

  /** Membership churn, on its own random stream; no churn on a quarter of the seeds. */
  private readonly membership: MembershipNemesis;

  /**
   * With churn, clients and every node's leader hints know the addresses of the whole id pool (a..j)
   * (as a DNS name would): new members are reachable, a retired or never-started one refuses.
   */
  private endpointIds(ids: readonly NodeId[]): NodeId[] {
    return this.swarm.churnIntervalMs > 0 ? ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] : [...ids];
  }

  /** What the churn sees of and does to the lock service: Cluster API changes through RaftNode. */
  private membershipHost(bootstrap: ReturnType<typeof bootstrapState>): MembershipHost {
    return {
      views: () =>
        [...this.nodes.values()]
          .filter((n) => !this.membership.isRetired(n.id))
          .map((n) => {
            const st = n.raft?.status();
            if (!st) return null;
            const { role, term, confState } = st;
            const up = n.pausedUntilMs <= this.nowMs;
            return { id: n.id, up, role, term, commit: st.commitIndex, applied: st.appliedIndex, lastIndex: st.lastIndex, confState };
          }),
      propose: (leader, cc) => {
        const n = this.node(leader);
        const raft = n.raft;
        if (!raft) return "down";
        this.mix(12, leader, 0);
        void raft.changeMembership(cc); // the Cluster API's call; it resolves when applied
        this.process(n);
        return null;
      },
      startMember: (id, _witness, random) => {
        // A new process whose disk holds the cluster's bootstrap state, as every member's does.
        const n: SimLockNode = {
          id,
          disk: new SimDisk(bootstrap),
          random,
          rate: this.rateWithin(random),
          offsetMs: random.nextInt(1_000_000),
          raft: null,
          incarnation: 0,
          pausedUntilMs: 0,
          hashedIndex: -1,
          wasLeader: false,
          lag: null,
          passRequested: false,
          passScheduled: false,
          lastPassMs: -Infinity,
        };
        this.nodes.set(id, n);
        this.mix(13, id, 0);
        this.startNode(n);
        this.addReaders(id, true); // a new member is read like the others
      },
      retire: (id) => {
        const n = this.node(id);
        const raft = n.raft;
        this.mix(14, id, 0);
        if (!raft) return;
        n.raft = null; // as crash(), without a restart
        raft.stop();
        n.disk.crash();
        this.wires.nodeDown(id);
      },
    };
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
