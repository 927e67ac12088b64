// The random nemesis of both simulations (vopr.ts: Raft and witness topology; lock_sim.ts: the
// lock service): one fault per nemesis event, its kind drawn with the weights of the seed's swarm
// (swarm.ts). Every fault is drawn here and applied by the simulation, and the draws happen in a
// fixed order, so a seed replays exactly. A fault kind whose weight is 0 is never drawn, and a
// weight of 0 changes no other draw: the Raft simulation (no clients, no client pauses) and the
// lock simulation (no site faults) each draw exactly as their own nemesis did before the merge.
//
// Kinds: a crash (restart later), a partition (two sides, clients included; one-way into or out
// of a node; a client cut off from the whole cluster), a process pause, a client pause the client
// notices, a site lost for good and the A-B link cut (witness topology), heal. Faults are aimed at
// the current leader with the swarm's leaderTargetProbability: leader changes are where Raft bugs
// live.

import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { FaultWeights } from "./swarm.ts";

export type Fault =
  | { readonly kind: "crash"; readonly node: NodeId }
  /** Links `${from}>${to}` that drop every message (they replace the current cuts). */
  | { readonly kind: "partition"; readonly links: readonly string[] }
  | { readonly kind: "pause"; readonly node: NodeId; readonly ms: number }
  | { readonly kind: "clientPause"; readonly client: string; readonly ms: number }
  /** A whole site for good (at most one per run); a site for a while is a crash. */
  | { readonly kind: "siteLoss"; readonly node: NodeId }
  /** The A-B link cut both ways; W still reaches both, the case the witness exists for. */
  | { readonly kind: "linkCut"; readonly x: NodeId; readonly y: NodeId }
  | { readonly kind: "heal" };

/** Who the nemesis can hit: the nodes, the clients (none in the Raft simulation), the leader. */
export interface FaultTargets {
  readonly nodes: readonly NodeId[];
  readonly clients: readonly string[];
  readonly leader: NodeId | undefined;
  /** Witness topology: the full voters of sites A and B now (default a and b; membership churn replaces them). */
  readonly sites?: readonly [NodeId, NodeId];
}

export function drawFault(r: SeededRandom, s: FaultWeights, who: FaultTargets): Fault {
  const clientPauseWeight = s.clientPauseWeight ?? 0;
  const siteLossWeight = s.siteLossWeight ?? 0;
  const linkCutWeight = s.linkCutWeight ?? 0;
  const total = s.crashWeight + s.partitionWeight + s.pauseWeight + clientPauseWeight + siteLossWeight + linkCutWeight + s.healWeight;
  let roll = r.nextFloat() * total;
  const anyone = who.nodes[r.nextInt(who.nodes.length)] ?? "a";
  const victim = who.leader !== undefined && r.nextFloat() < s.leaderTargetProbability ? who.leader : anyone;
  if ((roll -= s.crashWeight) < 0) return { kind: "crash", node: victim };
  if ((roll -= s.partitionWeight) < 0) return { kind: "partition", links: partitionLinks(r, who, victim) };
  if ((roll -= s.pauseWeight) < 0) return { kind: "pause", node: victim, ms: r.nextFloat() * 3 * s.electionTimeoutTicks * s.tickMs };
  if ((roll -= clientPauseWeight) < 0) {
    const client = who.clients[r.nextInt(who.clients.length)] ?? "c1";
    return { kind: "clientPause", client, ms: r.nextFloat() * 1.5 * (s.ttlMs ?? 0) };
  }
  if ((roll -= siteLossWeight) < 0) return { kind: "siteLoss", node: victim };
  if ((roll -= linkCutWeight) < 0) return { kind: "linkCut", x: who.sites?.[0] ?? "a", y: who.sites?.[1] ?? "b" };
  return { kind: "heal" };
}

function partitionLinks(r: SeededRandom, who: FaultTargets, victim: NodeId): string[] {
  const { nodes, clients } = who;
  const links: string[] = [];
  // The client cut-off exists only where there are clients (a fourth kind, drawn from 4).
  const kind = r.nextInt(clients.length > 0 ? 4 : 3);
  if (kind === 0) {
    // Two sides, clients included; every link across is cut both ways.
    const all = [...nodes, ...clients];
    const side = new Set(all.filter((id) => id === victim || r.nextFloat() < 0.4));
    for (const a of all) for (const b of all) if (side.has(a) !== side.has(b)) links.push(`${a}>${b}`);
  } else if (kind === 3) {
    // One client cut off from the whole cluster: its renewals reach nobody.
    const c = clients[r.nextInt(clients.length)] ?? "c1";
    for (const id of nodes) links.push(`${c}>${id}`, `${id}>${c}`);
  } else {
    // One-way: the victim can send but hears nothing (kind 1), or the reverse (kind 2).
    for (const y of nodes) if (y !== victim) links.push(kind === 1 ? `${y}>${victim}` : `${victim}>${y}`);
  }
  return links;
}
