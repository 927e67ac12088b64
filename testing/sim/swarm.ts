// Swarm testing for both simulations: the fault rates themselves are drawn from the seed, so
// different seeds explore different regions (a calm network with many crashes, a lossy one with
// none, ...). The Raft simulator (vopr.ts) draws SwarmOptions, the lock simulation (lock_sim.ts)
// draws LockSwarm; both extend ClusterSwarm (the cluster, network and fault fields they share),
// and the one nemesis (nemesis.ts) reads the fault weights of either. Each simulation keeps its
// own draw function because the ORDER of the draws is part of every seed's identity (the bug
// tables in README.md are measured on it): merging the draws would renumber every seed.

import type { SeededRandom } from "../../server/core/random.ts";
import type { MembershipOptions } from "./membership_nemesis.ts";

// ------------------------------------------------------------------ bug switches

/** The Raft simulator's bug switches (the core's BugSwitches, plus the Ready loop's). */
export type BugName =
  | "commitOldTermByCounting"
  | "skipPersistVote"
  | "truncateBelowCommit"
  | "voteWithoutLogCheck"
  | "sendBeforePersist"
  /** The Ready loop's testOnlyBugHardStateAfterSend: entries saved, sent, hard state saved after. */
  | "hardStateAfterSend"
  /** The core's commitBeforeSelfDurable: the leader counts its own entry when it appends it. */
  | "commitBeforeSelfDurable"
  | "truncateWitnessAtCommit"
  | "witnessMetadataOnlyLog"
  /** conf_change.ts testOnlyBugSkipJointConsensus: enterJoint switches straight to the new voters. */
  | "skipJointConsensus"
  /** The core's trustCorruptLog: a member started in recovery ignores it (votes, campaigns, is counted at once). */
  | "trustCorruptLog"
  /** The core's commitHintWithoutTermCheck: a candidate commits up to a vote response's hint whatever term it holds there. */
  | "commitHintWithoutTermCheck";

export const BUG_NAMES: readonly BugName[] = [
  "commitOldTermByCounting",
  "skipPersistVote",
  "truncateBelowCommit",
  "voteWithoutLogCheck",
  "sendBeforePersist",
  "hardStateAfterSend",
  "commitBeforeSelfDurable",
  "truncateWitnessAtCommit",
  "witnessMetadataOnlyLog",
  "skipJointConsensus",
  "trustCorruptLog",
  "commitHintWithoutTermCheck",
];

/** The lock simulation's bug switches (StateConfig.bugs, and the guard's). */
export type LockBugName = "grantWithoutLeaseCheck" | "reuseTokenAfterRestore" | "guardCheckNotAtomic";

export const LOCK_BUG_NAMES: readonly LockBugName[] = ["grantWithoutLeaseCheck", "reuseTokenAfterRestore", "guardCheckNotAtomic"];

// ------------------------------------------------------------------ what both simulations draw

/**
 * The cluster, the network and the faults, drawn by both simulations. The membership churn's
 * fields (MembershipOptions) are drawn from the churn's own stream (membership_nemesis.ts), not
 * by drawSwarm / drawLockSwarm, which hold them at 0 (no churn).
 */
export interface ClusterSwarm extends MembershipOptions {
  readonly nodeCount: number;
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly delayMinMs: number;
  readonly delayJitterMs: number;
  readonly lossProbability: number;
  readonly duplicateProbability: number;
  readonly nemesisIntervalMs: number;
  readonly crashWeight: number;
  readonly partitionWeight: number;
  readonly pauseWeight: number;
  readonly healWeight: number;
  /** Probability that a fault hits the current leader rather than a random node. */
  readonly leaderTargetProbability: number;
  readonly restartDelayMsMax: number;
  readonly snapshotEveryEntries: number;
  readonly inflightMessagesMax: number;
  readonly entriesPerMessageMax: number;
  /** A leader cut off from its quorum stops accepting proposals after this many. */
  readonly uncommittedEntriesMax: number;
  readonly safetyPhaseMs: number;
  readonly livenessBoundMs: number;
}

/** What the nemesis (nemesis.ts) reads: the shared weights plus those only one simulation has. */
export type FaultWeights = Pick<
  ClusterSwarm,
  "crashWeight" | "partitionWeight" | "pauseWeight" | "healWeight" | "leaderTargetProbability" | "electionTimeoutTicks" | "tickMs"
> &
  Partial<Pick<LockSwarm, "clientPauseWeight" | "ttlMs"> & Pick<SwarmOptions, "siteLossWeight" | "linkCutWeight">>;

/** After healing, both simulations allow this much for elections and restarts first. */
const electionsAndRestartsMs = 8000;

/** One line of `key=value` pairs (printed with --verbose and in every result). */
export function describeSwarm(o: ClusterSwarm): string {
  return Object.entries(o)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
}

// ------------------------------------------------------------------ the Raft simulator (vopr.ts)

/**
 * "plain": nodeCount full voters. "witness": DESIGN.md §4's two sites plus a tie-breaker, site A =
 * full voter a, site B = full voter b, site C = witness w (nodeCount is ignored).
 */
export type Topology = "plain" | "witness";

export interface SwarmOptions extends ClusterSwarm {
  /** Each node's clock runs at a rate in [1 - drift, 1 + drift]. */
  readonly clockDriftMax: number;
  readonly proposalIntervalMs: number;
  readonly topology: Topology;
  /** Witness topology only: lose one whole site for good (crash, never restart; at most one). */
  readonly siteLossWeight: number;
  /** Witness topology only: cut the A-B link both ways while W still reaches both. */
  readonly linkCutWeight: number;
}

export function drawSwarm(r: SeededRandom): SwarmOptions {
  return withLivenessBound({
    nodeCount: r.nextFloat() < 0.75 ? 3 : 5,
    tickMs: 10,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: r.pick([1, 2, 3]),
    preVote: r.nextFloat() < 0.8,
    checkQuorum: r.nextFloat() < 0.8,
    clockDriftMax: r.pick([0, 0.01, 0.05, 0.1]),
    delayMinMs: 1 + r.nextInt(5),
    delayJitterMs: r.pick([0, 5, 20, 60]),
    lossProbability: r.pick([0, 0, 0.02, 0.1, 0.25]),
    duplicateProbability: r.pick([0, 0.02, 0.1]),
    nemesisIntervalMs: r.pick([50, 150, 400, 1000]),
    crashWeight: r.pick([0, 1, 3]),
    partitionWeight: r.pick([0, 1, 3]),
    pauseWeight: r.pick([0, 1, 2]),
    healWeight: r.pick([1, 2]),
    leaderTargetProbability: r.pick([0, 0.5, 0.9]),
    restartDelayMsMax: r.pick([20, 200, 1000]),
    snapshotEveryEntries: r.pick([5, 20, 100, 1000]),
    inflightMessagesMax: r.pick([1, 4, 64]),
    entriesPerMessageMax: r.pick([1, 2, 8, 512]),
    uncommittedEntriesMax: r.pick([20, 200]),
    proposalIntervalMs: r.pick([5, 20, 60]),
    safetyPhaseMs: 3000 + r.nextInt(3000),
    livenessBoundMs: 0,
    // Constants, not draws: adding a field must not shift the random stream of existing seeds
    // (the bug table in README.md is measured on them).
    topology: "plain",
    siteLossWeight: 0,
    linkCutWeight: 0,
    churnIntervalMs: 0,
    retireDelayMsMax: 0,
  });
}

/**
 * The liveness bound after healing: 8 s for elections and restarts, plus the time to ship a
 * full uncommitted backlog to a follower that lags by it, one window of
 * entriesPerMessageMax x inflightMessagesMax entries per round trip (with one retry each).
 * A configuration of one entry per message and one in flight over a 60 ms-jitter network
 * legitimately needs tens of seconds; the bound says so rather than hiding the case.
 */
export function withLivenessBound(o: SwarmOptions): SwarmOptions {
  const windows = Math.ceil(o.uncommittedEntriesMax / (o.entriesPerMessageMax * o.inflightMessagesMax));
  const roundTripMs = 2 * (o.delayMinMs + o.delayJitterMs);
  return { ...o, livenessBoundMs: electionsAndRestartsMs + windows * roundTripMs * 2 + witnessBacklogMs(o, roundTripMs) };
}

/**
 * S3 in a random run: B may lag by everything A committed with W while B was away, and W cannot
 * send a snapshot. W ships it in capped terms (2 election timeouts as leader, then up to 4 of
 * waiting as a candidate with its doubled timeout, plus probe, pre-vote and vote round trips),
 * at least one window of entriesPerMessageMax x inflightMessagesMax entries per term, minus its
 * own no-op. The backlog is at most one proposal per proposal interval of the safety phase.
 */
function witnessBacklogMs(o: SwarmOptions, roundTripMs: number): number {
  if (o.topology !== "witness") return 0;
  const backlog = Math.ceil(o.safetyPhaseMs / o.proposalIntervalMs);
  const perTerm = Math.max(1, o.entriesPerMessageMax * o.inflightMessagesMax - 1);
  const termMs = (6 * o.electionTimeoutTicks * o.tickMs) / (1 - o.clockDriftMax) + 4 * roundTripMs;
  return Math.ceil(Math.ceil(backlog / perTerm) * termMs);
}

/**
 * Named swarm presets layered over the random draw. "figure8" makes the Raft paper's Figure 8
 * schedule likely: five nodes, one entry per AppendEntries and one in flight (so a follower can
 * ack an old-term entry before the new leader's no-op), faults aimed at leaders, and proposals
 * that pile up on minority leaders (conflicting entries of several terms at the same index).
 */
export type SwarmPreset = "random" | "figure8" | "witness" | "membership";

export const SWARM_PRESETS: Readonly<Record<SwarmPreset, Partial<SwarmOptions>>> = {
  random: {},
  figure8: {
    nodeCount: 5,
    entriesPerMessageMax: 1,
    inflightMessagesMax: 1,
    delayJitterMs: 20,
    lossProbability: 0.05,
    leaderTargetProbability: 0.9,
    crashWeight: 3,
    partitionWeight: 3,
    pauseWeight: 0,
    restartDelayMsMax: 1000,
    nemesisIntervalMs: 150,
    proposalIntervalMs: 5,
    uncommittedEntriesMax: 200,
    // The Figure 8 schedule is about terms, not membership; its bug row is measured without churn.
    churnIntervalMs: 0,
  },
  // DESIGN.md §4: sites A, B, C. PreVote and CheckQuorum are part of the witness design (W4):
  // without PreVote a lagging B's campaigns keep bumping W's term and resetting its (doubled)
  // election timer, so W never campaigns and S3 never recovers (see README.md).
  witness: {
    topology: "witness",
    nodeCount: 3,
    preVote: true,
    checkQuorum: true,
    siteLossWeight: 1,
    linkCutWeight: 2,
    // W's leadership is capped at 2 election timeouts (200 ms here), so it ships B's backlog one
    // window per term: with one entry per message a W term can deliver about as much as its own
    // no-op adds. Production batches (512 per message) and has RTT << election timeout.
    entriesPerMessageMax: 64,
  },
  // Membership churn on every seed, often, with removed members left running for up to 2 s and
  // neither PreVote nor CheckQuorum (so a removed member that missed its removal can still win
  // votes), under frequent partitions: where a membership bug does its damage (README's harm row
  // for skipJointConsensus).
  membership: {
    nodeCount: 3,
    preVote: false,
    checkQuorum: false,
    partitionWeight: 3,
    crashWeight: 1,
    pauseWeight: 1,
    nemesisIntervalMs: 150,
    churnIntervalMs: 150,
    retireDelayMsMax: 2000,
  },
};

/** The preset under which each bug switch is measured (see README's table). */
export const BUG_PRESET: Readonly<Record<BugName, SwarmPreset>> = {
  commitOldTermByCounting: "figure8",
  skipPersistVote: "random",
  truncateBelowCommit: "random",
  voteWithoutLogCheck: "random",
  sendBeforePersist: "random",
  hardStateAfterSend: "random",
  commitBeforeSelfDurable: "random",
  truncateWitnessAtCommit: "witness",
  witnessMetadataOnlyLog: "witness",
  skipJointConsensus: "random",
  trustCorruptLog: "random",
  commitHintWithoutTermCheck: "random",
};

// ------------------------------------------------------------------ the lock simulation (lock_sim.ts)

/** The lock simulation also draws its cluster's clients, leases, locks and guard. */
export interface LockSwarm extends ClusterSwarm {
  /** Clock-rate error bound of servers and clients (the state machine's rho). */
  readonly rho: number;
  readonly clientPauseWeight: number;
  readonly clientCount: number;
  readonly lockCount: number;
  readonly ttlMs: number;
  readonly lockDelayMs: number;
  readonly marginMs: number;
  readonly writeEveryMs: number;
  readonly holdMsMax: number;
  readonly thinkMsMax: number;
  readonly pollMs: number;
  readonly attemptTimeoutMs: number;
  readonly revokeProbability: number;
  /** The guarded store's transaction time, drawn per write in [0, max]. */
  readonly guardWriteMsMax: number;
}

export function drawLockSwarm(r: SeededRandom): LockSwarm {
  const ttlDrawnMs = r.pick([500, 800, 1500]);
  const lockDelayMs = r.pick([0, 50, 300]);
  const delayMinMs = 1 + r.nextInt(4);
  const delayJitterMs = r.pick([0, 5, 20, 60]);
  const swarm: LockSwarm = {
    nodeCount: r.nextFloat() < 0.75 ? 3 : 5,
    tickMs: 10,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: r.pick([1, 2, 3]),
    preVote: r.nextFloat() < 0.8,
    checkQuorum: r.nextFloat() < 0.8,
    rho: r.pick([0.01, 0.05, 0.1]),
    delayMinMs,
    delayJitterMs,
    lossProbability: r.pick([0, 0, 0.02, 0.1]),
    duplicateProbability: r.pick([0, 0.02, 0.1]),
    nemesisIntervalMs: r.pick([100, 300, 800]),
    crashWeight: r.pick([0, 1, 3]),
    partitionWeight: r.pick([0, 1, 3]),
    pauseWeight: r.pick([0, 1, 2]),
    clientPauseWeight: r.pick([0, 1, 2]),
    healWeight: r.pick([1, 2]),
    leaderTargetProbability: r.pick([0, 0.5, 0.9]),
    restartDelayMsMax: r.pick([20, 200, 1000]),
    snapshotEveryEntries: r.pick([8, 30, 200]),
    inflightMessagesMax: r.pick([1, 4, 64]),
    entriesPerMessageMax: r.pick([2, 8, 512]),
    uncommittedEntriesMax: r.pick([50, 1000]),
    clientCount: 2 + r.nextInt(4),
    lockCount: 1 + r.nextInt(3),
    // A lease must outlive a few serialized round trips through a slow (one in flight) leader,
    // or no client can keep one even on a healed network: that is a configuration, not a bug.
    ttlMs: Math.max(ttlDrawnMs, 25 * (delayMinMs + delayJitterMs)),
    lockDelayMs,
    marginMs: r.pick([1, 10, 30]),
    writeEveryMs: r.pick([5, 15, 40]),
    holdMsMax: r.pick([20, 80, 300]),
    thinkMsMax: r.pick([5, 30, 100]),
    pollMs: r.pick([10, 30]),
    // An attempt is four one-way hops (client -> member -> leader and back) plus a slow pass: a
    // shorter timeout retries forever on a healed network (lock seed 1719), a configuration, not a bug.
    attemptTimeoutMs: Math.max(r.pick([150, 400]), 4 * (delayMinMs + delayJitterMs) + 100),
    revokeProbability: r.pick([0.05, 0.2]),
    guardWriteMsMax: r.pick([5, 30, 100]),
    safetyPhaseMs: 2000 + r.nextInt(2000),
    livenessBoundMs: 0,
    churnIntervalMs: 0,
    retireDelayMsMax: 0,
  };
  return withLockLivenessBound(swarm);
}

/**
 * After healing: elections and restarts (8 s, as in the Raft simulator), then a lock held by a
 * lease whose holder is gone frees only after a new leader restarts its timers at full length
 * (ttl(1+rho)) plus lock-delay; every client may wait behind the others on each lock.
 */
export function withLockLivenessBound(o: LockSwarm): LockSwarm {
  const freeMs = o.ttlMs * (1 + o.rho) + o.lockDelayMs;
  return { ...o, livenessBoundMs: electionsAndRestartsMs + 2 * freeMs + o.clientCount * (o.holdMsMax + o.ttlMs) };
}

/** The negative control: client clocks and pauses break the bound the lease protocol needs. */
export const BROKEN_BOUND = {
  /** Probability that a client's clock runs slower than 1 - rho allows (factor of (1 - rho)). */
  slowClientProbability: 0.5,
  slowFactors: [0.3, 0.5, 0.7] as const,
  /** Probability, per guarded write, that the client pauses right after its check, unaware. */
  unawarePauseProbability: 0.02,
} as const;
