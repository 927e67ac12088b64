// Swarm options of the lock simulation: the seed draws the fault rates, the cluster and the
// workload (as swarm.ts does for the Raft-level simulator), so seeds explore different regions.

import type { SeededRandom } from "../../server/core/random.ts";

export type LockBugName = "grantWithoutLeaseCheck" | "reuseTokenAfterRestore" | "guardCheckNotAtomic";

export const LOCK_BUG_NAMES: readonly LockBugName[] = ["grantWithoutLeaseCheck", "reuseTokenAfterRestore", "guardCheckNotAtomic"];

export interface LockSwarm {
  readonly nodeCount: number;
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Clock-rate error bound of servers and clients (the state machine's rho). */
  readonly rho: number;
  readonly delayMinMs: number;
  readonly delayJitterMs: number;
  readonly lossProbability: number;
  readonly duplicateProbability: number;
  readonly nemesisIntervalMs: number;
  readonly crashWeight: number;
  readonly partitionWeight: number;
  readonly pauseWeight: number;
  readonly clientPauseWeight: number;
  readonly healWeight: number;
  readonly leaderTargetProbability: number;
  readonly restartDelayMsMax: number;
  readonly snapshotEveryEntries: number;
  readonly inflightMessagesMax: number;
  readonly entriesPerMessageMax: number;
  readonly uncommittedEntriesMax: number;
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
  readonly safetyPhaseMs: number;
  readonly livenessBoundMs: number;
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
    attemptTimeoutMs: r.pick([150, 400]),
    revokeProbability: r.pick([0.05, 0.2]),
    guardWriteMsMax: r.pick([5, 30, 100]),
    safetyPhaseMs: 2000 + r.nextInt(2000),
    livenessBoundMs: 0,
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
  return { ...o, livenessBoundMs: 8000 + 2 * freeMs + o.clientCount * (o.holdMsMax + o.ttlMs) };
}

/** The negative control: client clocks and pauses break the bound the lease protocol needs. */
export const BROKEN_BOUND = {
  /** Probability that a client's clock runs slower than 1 - rho allows (factor of (1 - rho)). */
  slowClientProbability: 0.5,
  slowFactors: [0.3, 0.5, 0.7] as const,
  /** Probability, per guarded write, that the client pauses right after its check, unaware. */
  unawarePauseProbability: 0.02,
} as const;

export function describeLockSwarm(o: LockSwarm): string {
  return Object.entries(o)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
}
