// Swarm testing: the fault rates themselves are drawn from the seed, so different seeds explore
// different regions (a calm network with many crashes, a lossy one with none, ...).

import type { SeededRandom } from "../core/random.ts";

export type BugName =
  | "commitOldTermByCounting"
  | "skipPersistVote"
  | "truncateBelowCommit"
  | "voteWithoutLogCheck"
  | "sendBeforePersist";

export const BUG_NAMES: readonly BugName[] = [
  "commitOldTermByCounting",
  "skipPersistVote",
  "truncateBelowCommit",
  "voteWithoutLogCheck",
  "sendBeforePersist",
];

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
}

const pick = <T>(r: SeededRandom, xs: readonly T[]): T => {
  const x = xs[r.nextInt(xs.length)];
  if (x === undefined) throw new Error("pick from an empty list");
  return x;
};

export function drawSwarm(r: SeededRandom): SwarmOptions {
  return {
    nodeCount: r.nextFloat() < 0.75 ? 3 : 5,
    tickMs: 10,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: pick(r, [1, 2, 3]),
    preVote: r.nextFloat() < 0.8,
    checkQuorum: r.nextFloat() < 0.8,
    clockDriftMax: pick(r, [0, 0.01, 0.05, 0.1]),
    delayMinMs: 1 + r.nextInt(5),
    delayJitterMs: pick(r, [0, 5, 20, 60]),
    lossProbability: pick(r, [0, 0, 0.02, 0.1, 0.25]),
    duplicateProbability: pick(r, [0, 0.02, 0.1]),
    nemesisIntervalMs: pick(r, [50, 150, 400, 1000]),
    crashWeight: pick(r, [0, 1, 3]),
    partitionWeight: pick(r, [0, 1, 3]),
    pauseWeight: pick(r, [0, 1, 2]),
    healWeight: pick(r, [1, 2]),
    leaderTargetProbability: pick(r, [0, 0.5, 0.9]),
    restartDelayMsMax: pick(r, [20, 200, 1000]),
    snapshotEveryEntries: pick(r, [5, 20, 100, 1000]),
    inflightMessagesMax: pick(r, [1, 4, 64]),
    entriesPerMessageMax: pick(r, [1, 2, 8, 512]),
    uncommittedEntriesMax: pick(r, [20, 200]),
    proposalIntervalMs: pick(r, [5, 20, 60]),
    safetyPhaseMs: 3000 + r.nextInt(3000),
    livenessBoundMs: 8000,
  };
}

export function describeSwarm(o: SwarmOptions): string {
  return Object.entries(o)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
}
