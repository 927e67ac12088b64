// The witness scenarios of DESIGN.md §7.2 and research/witness-and-raft-safety.md §1.5-1.6, run
// in the simulator with a scripted fault schedule instead of the random nemesis. The seed still
// draws network delays, clock rates and election timeouts, so one scenario over many seeds
// explores many timings of the same schedule. Every Raft check and witness invariant runs after
// every event; each scenario adds its own expectations and measured figures.
//
// Sites: A = full voter a, B = full voter b, C = witness w (swarm topology "witness").

import type { ConfChange } from "../../server/core/conf_change.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { Violation } from "./checkers.ts";
import type { BugName, SwarmOptions } from "./swarm.ts";
import { Simulation, type RunOptions, type ScriptStep } from "./vopr.ts";

export type ScenarioName = "S1" | "S2" | "S3" | "linkCut" | "witnessLost" | "replaceWitness" | "replaceVoter";

export const SCENARIO_NAMES: readonly ScenarioName[] = ["S1", "S2", "S3", "linkCut", "witnessLost", "replaceWitness", "replaceVoter"];

export interface ScenarioResult {
  readonly name: ScenarioName;
  readonly seed: number;
  /** Raft checks and witness invariants that fired. */
  readonly violations: readonly Violation[];
  /** The scenario's own expectations that did not hold. */
  readonly failures: readonly string[];
  /** Measured figures (ms unless the name says otherwise). */
  readonly figures: Readonly<Record<string, number>>;
}

/** A calm, fixed network: the schedule, not random faults, is what each scenario tests. */
export const SCENARIO_SWARM: Partial<SwarmOptions> = {
  topology: "witness",
  nodeCount: 3,
  tickMs: 10,
  electionTimeoutTicks: 10,
  heartbeatIntervalTicks: 2,
  preVote: true,
  checkQuorum: true,
  clockDriftMax: 0.05,
  delayMinMs: 2,
  delayJitterMs: 10,
  lossProbability: 0,
  duplicateProbability: 0,
  snapshotEveryEntries: 20,
  inflightMessagesMax: 4,
  entriesPerMessageMax: 8,
  uncommittedEntriesMax: 200,
  proposalIntervalMs: 20,
  safetyPhaseMs: 4000,
};

const s = SCENARIO_SWARM as SwarmOptions;
const roundTripMaxMs = 2 * (s.delayMinMs + s.delayJitterMs);
/** W's longest election timeout (2 x 2 x ET ticks, W4) on the slowest allowed clock. */
const witnessTimeoutMaxMs = (4 * s.electionTimeoutTicks * s.tickMs) / (1 - s.clockDriftMax);
/** B's longest election timeout (2 x ET ticks). */
const voterTimeoutMaxMs = (2 * s.electionTimeoutTicks * s.tickMs) / (1 - s.clockDriftMax);

/**
 * S3's bound from A's loss to B leading with every committed entry committed in its own term:
 * W's election timeout (it last heard A just before the loss), then pre-vote and vote (2 round
 * trips), one probe (1), B's backlog (A commits for 1 s with W, one proposal per 20 ms: 50
 * entries, 32 per window: 2), TimeoutNow and B's vote (1.5), B's no-op committed (1), plus
 * 2.5 round trips for a pre-vote of B's that crosses W's campaign.
 */
export const S3_BOUND_MS = Math.ceil(witnessTimeoutMaxMs + 10 * roundTripMaxMs);
/** S2's bound: B's election timeout, W's leader lease (one ET) is shorter, 3 round trips. */
export const S2_BOUND_MS = Math.ceil(voterTimeoutMaxMs + 4 * roundTripMaxMs);

interface Ctx {
  readonly failures: string[];
  readonly figures: Record<string, number>;
}

export function runScenario(
  name: ScenarioName,
  seed: number,
  bug: BugName | null = null,
  options: Partial<RunOptions> = {},
): ScenarioResult {
  const ctx: Ctx = { failures: [], figures: {} };
  const scenario = SCENARIOS[name](ctx);
  const sim = new Simulation({
    seed,
    bug,
    swarm: SCENARIO_SWARM,
    nemesis: false,
    ...options,
    script: scenario.script,
    afterEvent: (sm) => {
      scenario.watch?.(sm);
      // Healed and every remaining full voter applied a new entry: nothing left to measure.
      if (sm.stats.recoveryMs >= 0) sm.stop();
    },
  });
  sim.run();
  scenario.finish?.(sim);
  if (sim.stats.recoveryMs < 0 && sim.checker.ok()) ctx.failures.push("no progress after healing");
  ctx.figures["witnessTerms"] = sim.stats.witnessTerms;
  ctx.figures["witnessLeadMsMax"] = Math.round(sim.stats.witnessLeadMsMax);
  return { name, seed, violations: sim.checker.violations, failures: ctx.failures, figures: ctx.figures };
}

interface Scenario {
  readonly script: ScriptStep[];
  readonly watch?: (sim: Simulation) => void;
  readonly finish?: (sim: Simulation) => void;
}

const at = (atMs: number, run: (sim: Simulation) => void): ScriptStep => ({ atMs, run });

/** Makes `id` the leader at once (a fresh cluster: the others are still waiting their timeouts). */
const leadFrom = (id: NodeId): ScriptStep =>
  at(1, (sim) => {
    sim.node(id).core?.campaign();
    sim.settle(id);
  });

const commitOf = (sim: Simulation, id: NodeId): number => sim.node(id).core?.status().commit ?? -1;

/** Records f(sim) at time t under `key`. */
const sample = (ctx: Ctx, key: string, t: number, f: (sim: Simulation) => number): ScriptStep =>
  at(t, (sim) => void (ctx.figures[key] = f(sim)));

function expect(ctx: Ctx, ok: boolean, what: string): void {
  if (!ok) ctx.failures.push(what);
}

/** Proposes `cc` from the first full-voter leader at or after `fromMs`; returns when it did. */
function proposeWhenLed(ctx: Ctx, fromMs: number, cc: ConfChange, before?: (sim: Simulation) => void): (sim: Simulation) => void {
  let done = false;
  return (sim) => {
    if (done || sim.nowMs < fromMs) return;
    const leader = sim.leader();
    if (!leader?.core || sim.isWitness(leader.id)) return;
    done = true;
    before?.(sim);
    const r = leader.core.proposeConfChange(cc);
    expect(ctx, r.ok, `${leader.id} refused the conf change: ${r.ok ? "" : r.detail}`);
    ctx.figures["confProposedAtMs"] = Math.round(sim.nowMs);
    sim.settle(leader.id);
  };
}

/** Records when every listed node has applied the configuration `voters` (not joint). */
function watchConfDone(
  ctx: Ctx,
  nodes: readonly NodeId[],
  voters: readonly NodeId[],
  witnesses: readonly NodeId[],
): (sim: Simulation) => void {
  return (sim) => {
    if (ctx.figures["confDoneMs"] !== undefined || ctx.figures["confProposedAtMs"] === undefined) return;
    for (const id of nodes) {
      const cs = sim.node(id).core?.status().confState;
      if (!cs || cs.votersOutgoing.length > 0 || cs.voters.join() !== voters.join() || cs.witnesses.join() !== witnesses.join()) return;
    }
    ctx.figures["confDoneMs"] = Math.round(sim.nowMs - ctx.figures["confProposedAtMs"]);
  };
}

const SCENARIOS: Readonly<Record<ScenarioName, (ctx: Ctx) => Scenario>> = {
  // S1: site B lost for good; A and W keep committing, A stays the leader.
  S1: (ctx) => ({
    script: [
      leadFrom("a"),
      at(1000, (sim) => sim.loseSite("b")),
      sample(ctx, "commitAtLoss", 1000, (sim) => commitOf(sim, "a")),
      sample(ctx, "commitLater", 3900, (sim) => commitOf(sim, "a")),
    ],
    finish: (sim) => {
      expect(ctx, (ctx.figures["commitLater"] ?? 0) > (ctx.figures["commitAtLoss"] ?? 0) + 50, "A and W did not keep committing");
      expect(ctx, sim.stats.witnessTerms === 0, "the witness led although a full voter could");
    },
  }),

  // S2: site A lost while B is current; B leads within S2_BOUND_MS and commits.
  S2: (ctx) => {
    let lostAt = -1;
    let commitAtLoss = 0;
    return {
      script: [leadFrom("a"), at(1000, (sim) => ((lostAt = sim.nowMs), (commitAtLoss = commitOf(sim, "a")), sim.loseSite("a")))],
      watch: (sim) => {
        if (lostAt < 0 || ctx.figures["recoveryMs"] !== undefined) return;
        const st = sim.node("b").core?.status();
        if (st?.role === "leader" && st.commit > commitAtLoss && sim.node("b").core?.termAt(st.commit) === st.term) {
          ctx.figures["recoveryMs"] = Math.round(sim.nowMs - lostAt);
        }
      },
      finish: () => {
        const r = ctx.figures["recoveryMs"];
        expect(ctx, r !== undefined && r <= S2_BOUND_MS, `B did not lead and commit within ${S2_BOUND_MS} ms (${r ?? "never"})`);
      },
    };
  },

  // S3: A commits with W while B is cut off, then A is lost for good. W must lead (B's log is
  // behind, so W will not vote for B), replicate to B, hand over by TimeoutNow; B then leads
  // with every entry committed before the loss (IW5).
  S3: (ctx) => {
    let lostAt = -1;
    let committed: { index: number; term: number }[] = [];
    return {
      script: [
        leadFrom("a"),
        at(300, (sim) => sim.cutLink("a", "b")),
        at(1300, (sim) => {
          const a = sim.node("a").core;
          const k = a?.status().commit ?? 0;
          committed = [];
          for (let i = a?.status().firstIndex ?? 1; i <= k; i++) committed.push({ index: i, term: a?.termAt(i) ?? -1 });
          ctx.figures["committedAtLoss"] = k;
          ctx.figures["bLastAtLoss"] = sim.node("b").core?.status().lastIndex ?? 0;
          lostAt = sim.nowMs;
          sim.loseSite("a");
          sim.healLinks();
        }),
      ],
      watch: (sim) => {
        if (lostAt < 0 || ctx.figures["recoveryMs"] !== undefined) return;
        const b = sim.node("b").core;
        const st = b?.status();
        if (!b || st?.role !== "leader" || st.commit < (ctx.figures["committedAtLoss"] ?? 0)) return;
        if (b.termAt(st.commit) !== st.term) return; // B's own no-op committed
        ctx.figures["recoveryMs"] = Math.round(sim.nowMs - lostAt);
        const missing = committed.filter((c) => c.index >= st.firstIndex && b.termAt(c.index) !== c.term);
        expect(ctx, missing.length === 0, `B leads without committed entries ${missing.map((c) => `${c.term}/${c.index}`).join(" ")}`);
      },
      finish: (sim) => {
        const r = ctx.figures["recoveryMs"];
        expect(ctx, (ctx.figures["bLastAtLoss"] ?? 0) < (ctx.figures["committedAtLoss"] ?? 0), "B was not lagging at A's loss");
        expect(
          ctx,
          r !== undefined && r <= S3_BOUND_MS,
          `B did not lead with every committed entry within ${S3_BOUND_MS} ms (${r ?? "never"})`,
        );
        expect(ctx, sim.stats.witnessTerms >= 1, "the witness never led");
      },
    };
  },

  // The A-B link cut while W reaches both: exactly one side keeps committing, never both.
  linkCut: (ctx) => {
    const leaders = new Set<NodeId>();
    return {
      script: [
        leadFrom("a"),
        at(500, (sim) => sim.cutLink("a", "b")),
        sample(ctx, "aCommitAtCut", 700, (sim) => commitOf(sim, "a")),
        sample(ctx, "bCommitAtCut", 700, (sim) => commitOf(sim, "b")),
        sample(ctx, "aCommitLater", 3000, (sim) => commitOf(sim, "a")),
        sample(ctx, "bCommitLater", 3000, (sim) => commitOf(sim, "b")),
        at(3000, (sim) => sim.healLinks()),
      ],
      watch: (sim) => {
        if (sim.nowMs < 700 || sim.nowMs > 3000) return;
        const l = sim.leader();
        if (l) leaders.add(l.id);
      },
      finish: () => {
        const f = ctx.figures;
        expect(ctx, leaders.size === 1 && leaders.has("a"), `leaders during the cut: ${[...leaders].join(" ")}`);
        expect(ctx, (f["aCommitLater"] ?? 0) > (f["aCommitAtCut"] ?? 0) + 50, "A's side stopped committing");
        expect(ctx, f["bCommitLater"] === f["bCommitAtCut"], "B's side committed during the cut");
      },
    };
  },

  // W lost for good: A and B keep committing (and granting, in the liveness phase).
  witnessLost: (ctx) => ({
    script: [
      leadFrom("a"),
      at(500, (sim) => sim.loseSite("w")),
      sample(ctx, "commitAtLoss", 700, (sim) => commitOf(sim, "b")),
      sample(ctx, "commitLater", 3000, (sim) => commitOf(sim, "b")),
    ],
    finish: () =>
      expect(ctx, (ctx.figures["commitLater"] ?? 0) > (ctx.figures["commitAtLoss"] ?? 0) + 50, "A and B did not keep committing"),
  }),

  // W6: site C is down; w is replaced by a new witness w2 in ONE joint step {a,b,w} -> {a,b,w2}
  // (auto-leave) while w2 is not reachable either, so both halves' majorities are {a,b}. Then
  // w2 becomes reachable and catches up, and A is lost: B and w2 carry on.
  replaceWitness: (ctx) => ({
    script: [
      leadFrom("a"),
      at(500, (sim) => sim.loseSite("w")),
      at(2000, (sim) => sim.healLinks()),
      at(2600, (sim) => sim.loseSite("a")),
      sample(ctx, "commitAfterALoss", 2600, (sim) => commitOf(sim, "b")),
      sample(ctx, "commitLater", 3900, (sim) => commitOf(sim, "b")),
    ],
    watch: chain(
      proposeWhenLed(
        ctx,
        800,
        {
          kind: "enterJoint",
          changes: [
            { op: "addVoter", nodeId: "w2", witness: true },
            { op: "removeNode", nodeId: "w", witness: false },
          ],
          autoLeave: true,
        },
        (sim) => {
          sim.addNode("w2", true);
          sim.cutLink("w2", "a");
          sim.cutLink("w2", "b");
        },
      ),
      watchConfDone(ctx, ["a", "b"], ["a", "b", "w2"], ["w2"]),
    ),
    finish: () => {
      const f = ctx.figures;
      expect(
        ctx,
        f["confDoneMs"] !== undefined && (f["confProposedAtMs"] ?? 0) + (f["confDoneMs"] ?? 0) < 2000,
        "the joint change did not complete while C was unreachable",
      );
      expect(ctx, (f["commitLater"] ?? 0) > (f["commitAfterALoss"] ?? 0) + 20, "B and w2 did not keep committing after A's loss");
    },
  }),

  // A full voter replaced while site A is gone: {a,b,w} -> {a2,b,w} in one joint step; b
  // catches a2 up by snapshot. Then W is lost: a2 and b carry on, so a2 counts as a voter.
  replaceVoter: (ctx) => ({
    script: [
      leadFrom("a"),
      at(500, (sim) => sim.loseSite("a")),
      at(2600, (sim) => sim.loseSite("w")),
      sample(ctx, "commitAfterWLoss", 2600, (sim) => commitOf(sim, "b")),
      sample(ctx, "commitLater", 3900, (sim) => commitOf(sim, "a2")),
    ],
    watch: chain(
      proposeWhenLed(
        ctx,
        1200,
        {
          kind: "enterJoint",
          changes: [
            { op: "addVoter", nodeId: "a2", witness: false },
            { op: "removeNode", nodeId: "a", witness: false },
          ],
          autoLeave: true,
        },
        (sim) => {
          sim.addNode("a2", false);
        },
      ),
      watchConfDone(ctx, ["b", "a2"], ["a2", "b", "w"], ["w"]),
    ),
    finish: (sim) => {
      const f = ctx.figures;
      f["snapshotsToA2"] = [...sim.snapshotsSent].filter(([k]) => k.endsWith(">a2")).reduce((n, [, v]) => n + v, 0);
      expect(ctx, f["confDoneMs"] !== undefined, "the joint change did not complete");
      expect(ctx, (sim.snapshotsSent.get("b>a2") ?? 0) > 0, "a2 was not caught up by a snapshot from b");
      expect(ctx, (f["commitLater"] ?? 0) > (f["commitAfterWLoss"] ?? 0) + 20, "a2 and b did not keep committing after W's loss");
    },
  }),
};

function chain(...fs: ((sim: Simulation) => void)[]): (sim: Simulation) => void {
  return (sim) => {
    for (const f of fs) f(sim);
  };
}
