// The Raft simulator's events, statistics and results (vopr.ts runs them; its run options and
// script steps live in vopr.ts, beside the Simulation they act on, so nothing here imports it).

import { NO_BUGS, type BugSwitches } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { Violation } from "./checkers.ts";
import type { CrashPointOp } from "./sim_disk.ts";
import type { DiskLieKind } from "./sim_disk_lies.ts";
import type { BugName } from "./swarm.ts";

export type SimEvent =
  | { readonly kind: "tick"; readonly node: NodeId; readonly incarnation: number }
  /** The next pass of a node whose leader Ready is parked (its appends left, its write not made). */
  | { readonly kind: "process"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "deliver"; readonly message: Message }
  | { readonly kind: "nemesis" }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "unpause"; readonly node: NodeId }
  | { readonly kind: "propose" }
  | { readonly kind: "heal" }
  | { readonly kind: "livenessDeadline" }
  | { readonly kind: "script"; readonly index: number };

export interface RunStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  crashes: number;
  /** Crash faults armed as crash points inside a Ready (sim_disk.ts), and those that fired. */
  crashPointsArmed: number;
  crashesInReady: number;
  /** Leader Readies parked (their appends sent before their write; RunOptions.leaderSendsBeforePersist). */
  parkedReadies: number;
  /** Crashes inside a Ready by the operation they stopped before. */
  crashesInReadyBefore: Record<CrashPointOp, number>;
  partitions: number;
  pauses: number;
  leaderElections: number;
  proposalsAcked: number;
  commitIndexMax: number;
  simulatedMs: number;
  /** Simulated time from healing until every node applied a new entry (-1: never). */
  recoveryMs: number;
  /** Simulated time at which the run stopped once liveness was shown and the cluster settled
   *  (vopr.ts settledForStop); -1: it ran to the liveness deadline. */
  settledStopMs: number;
  siteLosses: number;
  linkCuts: number;
  witnessTruncations: number;
  witnessTerms: number;
  witnessLeadTicksMax: number;
  witnessLeadMsMax: number;
  /** Metadata-only markers a retaining leader sent a witness instead of a snapshot (churn issue 4). */
  witnessMarkersSent: number;
  /** The disk lies told at restarts (sim_disk_lies.ts), by kind. */
  diskLies: Record<DiskLieKind, number>;
  /** Lies drawn but not told: the configuration could not lose another member's data then. */
  diskLiesOverBound: number;
  /** Starts in recovery (RaftConfig.recovery), first ones per loss, and recoveries completed (checkers' oracle). */
  recoveriesStarted: number;
  recoveriesCompleted: number;
}

export interface RunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  readonly traceHash: string;
  readonly stats: RunStats;
  readonly swarm: string;
}

export function newRunStats(): RunStats {
  return {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    crashes: 0,
    crashPointsArmed: 0,
    crashesInReady: 0,
    parkedReadies: 0,
    crashesInReadyBefore: { writeSnapshot: 0, writeEntries: 0, writeHardState: 0, compact: 0, sync: 0, send: 0 },
    partitions: 0,
    pauses: 0,
    leaderElections: 0,
    proposalsAcked: 0,
    commitIndexMax: 0,
    simulatedMs: 0,
    recoveryMs: -1,
    settledStopMs: -1,
    siteLosses: 0,
    linkCuts: 0,
    witnessTruncations: 0,
    witnessTerms: 0,
    witnessLeadTicksMax: 0,
    witnessLeadMsMax: 0,
    witnessMarkersSent: 0,
    diskLies: { corrupt: 0, lost: 0, misdirected: 0, wiped: 0 },
    diskLiesOverBound: 0,
    recoveriesStarted: 0,
    recoveriesCompleted: 0,
  };
}

export function bugSwitches(bug: BugName | null): BugSwitches {
  if (bug === null || bug === "sendBeforePersist" || bug === "hardStateAfterSend") return NO_BUGS; // the loop's
  return { ...NO_BUGS, [bug]: true };
}
