// The simulator's random nemesis: one fault per nemesis event, its kind drawn by the weights of
// the seed's swarm (swarm.ts). The draws happen in a fixed order, so a seed replays exactly.

import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { SwarmOptions } from "./swarm.ts";

/** What the nemesis may do to a simulation (vopr.ts's Simulation). */
export interface FaultTarget {
  ids(): NodeId[];
  leaderId(): NodeId | undefined;
  crash(id: NodeId): void;
  loseSite(id: NodeId): void;
  cutLink(x: NodeId, y: NodeId): void;
  /** Replaces every cut by the given one-way blocks ("from>to"); counts a partition. */
  partitionLinks(blocked: readonly string[]): void;
  healLinks(): void;
  pause(id: NodeId, ms: number): void;
}

export function injectFault(t: FaultTarget, r: SeededRandom, s: SwarmOptions): void {
  // The site faults weigh 0 outside the witness topology, so those runs draw exactly as before.
  const total = s.crashWeight + s.partitionWeight + s.pauseWeight + s.siteLossWeight + s.linkCutWeight + s.healWeight;
  let roll = r.nextFloat() * total;
  const ids = t.ids();
  // Half the faults target the current leader: leader changes are where Raft bugs live.
  const leader = t.leaderId();
  const anyone = ids[r.nextInt(ids.length)] ?? "a";
  const victim = leader !== undefined && r.nextFloat() < s.leaderTargetProbability ? leader : anyone;

  if ((roll -= s.crashWeight) < 0) t.crash(victim);
  else if ((roll -= s.partitionWeight) < 0) t.partitionLinks(partition(r, ids, victim));
  else if ((roll -= s.pauseWeight) < 0) t.pause(victim, r.nextFloat() * 3 * s.electionTimeoutTicks * s.tickMs);
  // A whole site for good (at most one per run); a site for a while is a crash (one node a site).
  else if ((roll -= s.siteLossWeight) < 0) t.loseSite(victim);
  // The A-B link only: W still reaches both, the case W exists for.
  else if ((roll -= s.linkCutWeight) < 0) t.cutLink("a", "b");
  else t.healLinks();
}

function partition(r: SeededRandom, ids: readonly NodeId[], victim: NodeId): string[] {
  const blocked: string[] = [];
  const kind = r.nextInt(3);
  if (kind === 0) {
    // Two sides; every link across is cut both ways.
    const side = new Set(ids.filter((id) => id === victim || r.nextFloat() < 0.4));
    for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) blocked.push(`${a}>${b}`);
  } else {
    // One-way: a node can send to the others but hears nothing (or the reverse).
    const inbound = kind === 1;
    for (const y of ids) if (y !== victim) blocked.push(inbound ? `${y}>${victim}` : `${victim}>${y}`);
  }
  return blocked;
}
