// The simulator's run options, statistics and event types (vopr.ts runs them).

import { NO_BUGS, type BugSwitches } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { CheckName, Violation } from "./checkers.ts";
import type { BugName, SwarmOptions, SwarmPreset } from "./swarm.ts";
import type { Simulation } from "./vopr.ts";

export type SimEvent =
  | { readonly kind: "tick"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "deliver"; readonly message: Message }
  | { readonly kind: "nemesis" }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "unpause"; readonly node: NodeId }
  | { readonly kind: "propose" }
  | { readonly kind: "heal" }
  | { readonly kind: "livenessDeadline" }
  | { readonly kind: "script"; readonly index: number };

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
  siteLosses: number;
  linkCuts: number;
  witnessTruncations: number;
  witnessTerms: number;
  witnessLeadTicksMax: number;
  witnessLeadMsMax: number;
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
    partitions: 0,
    pauses: 0,
    leaderElections: 0,
    proposalsAcked: 0,
    commitIndexMax: 0,
    simulatedMs: 0,
    recoveryMs: -1,
    siteLosses: 0,
    linkCuts: 0,
    witnessTruncations: 0,
    witnessTerms: 0,
    witnessLeadTicksMax: 0,
    witnessLeadMsMax: 0,
  };
}

export function bugSwitches(bug: BugName | null): BugSwitches {
  if (bug === null || bug === "sendBeforePersist") return NO_BUGS;
  return { ...NO_BUGS, [bug]: true };
}
