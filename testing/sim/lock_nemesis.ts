// The lock simulation's nemesis: which fault strikes next, drawn from the seed with the swarm's
// weights. Faults are those of vopr.ts (crash, partition incl. one-way, process pause, heal), half
// of them or more aimed at the leader when the swarm says so, plus two that concern clients: a
// client cut off from the whole cluster (its renewals stop) and a client pause it notices.

import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { LockSwarm } from "./lock_swarm.ts";

export type Fault =
  | { readonly kind: "crash"; readonly node: NodeId }
  /** Links `${from}>${to}` that drop every message; the guard is always reachable. */
  | { readonly kind: "partition"; readonly links: readonly string[] }
  | { readonly kind: "pause"; readonly node: NodeId; readonly ms: number }
  | { readonly kind: "clientPause"; readonly client: string; readonly ms: number }
  | { readonly kind: "heal" };

export function drawFault(
  r: SeededRandom,
  s: LockSwarm,
  who: { readonly nodes: readonly NodeId[]; readonly clients: readonly string[]; readonly leader: NodeId | undefined },
): Fault {
  const total = s.crashWeight + s.partitionWeight + s.pauseWeight + s.clientPauseWeight + s.healWeight;
  let roll = r.nextFloat() * total;
  const anyone = who.nodes[r.nextInt(who.nodes.length)] ?? "a";
  const victim = who.leader !== undefined && r.nextFloat() < s.leaderTargetProbability ? who.leader : anyone;
  if ((roll -= s.crashWeight) < 0) return { kind: "crash", node: victim };
  if ((roll -= s.partitionWeight) < 0) return { kind: "partition", links: partitionLinks(r, who.nodes, who.clients, victim) };
  if ((roll -= s.pauseWeight) < 0) return { kind: "pause", node: victim, ms: r.nextFloat() * 3 * s.electionTimeoutTicks * s.tickMs };
  if ((roll -= s.clientPauseWeight) < 0) {
    const client = who.clients[r.nextInt(who.clients.length)] ?? "c1";
    return { kind: "clientPause", client, ms: r.nextFloat() * 1.5 * s.ttlMs };
  }
  return { kind: "heal" };
}

function partitionLinks(r: SeededRandom, nodes: readonly NodeId[], clients: readonly string[], victim: NodeId): string[] {
  const links: string[] = [];
  const kind = r.nextInt(4);
  if (kind === 0) {
    // Two sides, clients included.
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
