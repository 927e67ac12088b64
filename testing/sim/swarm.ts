// Swarm testing: the fault rates themselves are drawn from the seed, so different seeds explore
// different regions (a calm network with many crashes, a lossy one with none, ...).

import type { SeededRandom } from "../../server/core/random.ts";

export type BugName =
  | "commitOldTermByCounting"
  | "skipPersistVote"
  | "truncateBelowCommit"
  | "voteWithoutLogCheck"
  | "sendBeforePersist"
  | "truncateWitnessAtCommit"
  | "witnessMetadataOnlyLog";

export const BUG_NAMES: readonly BugName[] = [
  "commitOldTermByCounting",
  "skipPersistVote",
  "truncateBelowCommit",
  "voteWithoutLogCheck",
  "sendBeforePersist",
  "truncateWitnessAtCommit",
  "witnessMetadataOnlyLog",
];

/**
 * "plain": nodeCount full voters. "witness": DESIGN.md §4's two sites plus a tie-breaker, site A =
 * full voter a, site B = full voter b, site C = witness w (nodeCount is ignored).
 */
export type Topology = "plain" | "witness";

export interface SwarmOptions {
  readonly nodeCount: number;
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Each node's clock runs at a rate in [1 - drift, 1 + drift]. */
  readonly clockDriftMax: number;
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
  readonly proposalIntervalMs: number;
  readonly safetyPhaseMs: number;
  readonly livenessBoundMs: number;
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
  return { ...o, livenessBoundMs: 8000 + windows * roundTripMs * 2 + witnessBacklogMs(o, roundTripMs) };
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

export function describeSwarm(o: SwarmOptions): string {
  return Object.entries(o)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
}

/**
 * Named swarm presets layered over the random draw. "figure8" makes the Raft paper's Figure 8
 * schedule likely: five nodes, one entry per AppendEntries and one in flight (so a follower can
 * ack an old-term entry before the new leader's no-op), faults aimed at leaders, and proposals
 * that pile up on minority leaders (conflicting entries of several terms at the same index).
 */
export type SwarmPreset = "random" | "figure8" | "witness";

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

};

/** The preset under which each bug switch is measured (see README's table). */
export const BUG_PRESET: Readonly<Record<BugName, SwarmPreset>> = {
  commitOldTermByCounting: "figure8",
  skipPersistVote: "random",
  truncateBelowCommit: "random",
  voteWithoutLogCheck: "random",
  sendBeforePersist: "random",
  truncateWitnessAtCommit: "witness",
  witnessMetadataOnlyLog: "witness",
};
