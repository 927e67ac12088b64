// Checks over the elections workload's events (elections.ts). Pure: each returns human-readable
// violations, an empty list is a pass. All times come from one clock (the harness's
// performance.now()), so real-time comparisons need no drift bound.

import type { ElectionEvent, ElectionFinal } from "./elections.ts";

type Campaign = Extract<ElectionEvent, { type: "campaign" }>;
type Observed = Extract<ElectionEvent, { type: "observe" }>;
type Ended = Extract<ElectionEvent, { type: "resign" | "abandon" }>;

/** A value a leader may have shown, and when it asked for it (nobody can see it earlier). */
interface LeaderValue {
  readonly value: string;
  readonly inv: number;
}

function acked(events: readonly ElectionEvent[]): (Campaign & { token: number })[] {
  return events.filter((e): e is Campaign & { token: number } => e.type === "campaign" && e.outcome === "ok" && e.token !== undefined);
}

/** Each acknowledged token's values in order: its campaign value, then its proclaims that may
 *  have applied (ok or info; a failed proclaim must never show). */
function leaderValues(events: readonly ElectionEvent[]): Map<number, LeaderValue[]> {
  const out = new Map<number, LeaderValue[]>();
  for (const e of events) {
    if (e.type === "campaign" && e.outcome === "ok" && e.token !== undefined) out.set(e.token, [{ value: e.value, inv: e.inv }]);
    if (e.type === "proclaim" && e.outcome !== "fail") out.get(e.token)?.push({ value: e.value, inv: e.inv });
  }
  return out;
}

/** No leadership token acknowledged twice (tokens are unique cluster-wide). */
export function checkElectionTokensUnique(events: readonly ElectionEvent[]): string[] {
  const seen = new Map<number, Campaign>();
  const out: string[] = [];
  for (const c of acked(events)) {
    const prev = seen.get(c.token);
    if (prev)
      out.push(`election: token ${c.token} granted twice: client ${prev.client} (${prev.value}) and client ${c.client} (${c.value})`);
    else seen.set(c.token, c);
  }
  return out;
}

/** Acknowledged campaigns A, B with A completed before B was invoked: A.token < B.token. */
export function checkElectionRealTimeOrder(events: readonly ElectionEvent[]): string[] {
  const list = acked(events);
  const byCmp = [...list].sort((x, y) => x.cmp - y.cmp);
  const byInv = [...list].sort((x, y) => x.inv - y.inv);
  const out: string[] = [];
  // Sweep: the highest token among campaigns completed before each invocation.
  let j = 0;
  let best: (typeof list)[number] | null = null;
  for (const b of byInv) {
    for (let a = byCmp[j]; a !== undefined && a.cmp < b.inv; a = byCmp[++j]) {
      if (best === null || a.token > best.token) best = a;
    }
    if (best && best.token >= b.token) {
      out.push(`election: token ${b.token} (client ${b.client}) acknowledged after token ${best.token} (client ${best.client}) completed`);
    }
  }
  return out;
}

/**
 * Each observer moves forward only: its token never decreases, a token it has left (for another
 * leader or for nobody) never comes back, and within one token the values follow that leader's
 * campaign/proclaim order. Values the leader never had are checkObservedProvenance's job.
 */
export function checkObserverOrder(events: readonly ElectionEvent[]): string[] {
  const values = leaderValues(events);
  const byObserver = new Map<number, Observed[]>();
  for (const e of events) {
    if (e.type !== "observe") continue;
    const list = byObserver.get(e.observer) ?? [];
    list.push(e);
    byObserver.set(e.observer, list);
  }
  const out: string[] = [];
  for (const [i, seen] of byObserver) {
    let current: number | null = null;
    let max = -Infinity;
    let lastIndex = -1;
    const left = new Set<number>();
    for (const o of seen) {
      if (o.token !== current && current !== null) left.add(current);
      if (o.token === null) {
        current = null;
        continue;
      }
      if (o.token < max) out.push(`election: observer ${i} went back to token ${o.token} after token ${max} (at ${o.at.toFixed(1)} ms)`);
      else if (o.token !== current && left.has(o.token))
        out.push(`election: observer ${i} saw token ${o.token} again after it had moved on (at ${o.at.toFixed(1)} ms)`);
      const index = values.get(o.token)?.findIndex((v) => v.value === o.value) ?? -1;
      if (o.token === current && index >= 0 && index < lastIndex) {
        out.push(`election: observer ${i} saw token ${o.token}'s value go back to ${o.value} (at ${o.at.toFixed(1)} ms)`);
      }
      lastIndex = o.token !== current ? index : Math.max(lastIndex, index);
      current = o.token;
      max = Math.max(max, o.token);
    }
  }
  return out;
}

/**
 * Nothing observed is invented: an acknowledged token shows only its campaign value or proclaims
 * that may have applied; a token nobody was told about must carry the value of a campaign whose
 * outcome is unknown (values are unique per campaign), and one such campaign maps to one token.
 * Nobody sees a value before it was asked for.
 */
export function checkObservedProvenance(events: readonly ElectionEvent[]): string[] {
  const values = leaderValues(events);
  const ambiguous = new Map<string, Campaign>();
  for (const e of events) if (e.type === "campaign" && e.outcome === "info") ambiguous.set(e.value, e);
  const tokenOfValue = new Map<string, number>();
  const out: string[] = [];
  for (const o of events) {
    if (o.type !== "observe" || o.token === null) continue;
    const what = `observer ${o.observer} saw token ${o.token} with value ${o.value} at ${o.at.toFixed(1)} ms`;
    const own = values.get(o.token);
    const source: LeaderValue | undefined = own ? own.find((v) => v.value === o.value) : ambiguous.get(o.value ?? "");
    if (!source) {
      out.push(
        `election: ${what}: ${own ? "its leader never campaigned with or proclaimed that value" : "no campaign was acknowledged that token, and no ambiguous campaign had that value"}`,
      );
      continue;
    }
    if (o.at < source.inv) out.push(`election: ${what}, before it was asked for (${source.inv.toFixed(1)} ms)`);
    if (own) continue;
    const prev = tokenOfValue.get(source.value);
    if (prev !== undefined && prev !== o.token) out.push(`election: ${what}, but the same campaign was seen leading with token ${prev}`);
    tokenOfValue.set(source.value, o.token);
  }
  return out;
}

/**
 * Mutual exclusion in real time: two leaderships never believed they led at the same instant.
 * Resign and abandon events carry [campaign completion, end of belief).
 */
export function checkLeadershipExclusion(events: readonly ElectionEvent[]): string[] {
  const list = events.filter((e): e is Ended => e.type === "resign" || e.type === "abandon").sort((x, y) => x.heldFrom - y.heldFrom);
  const out: string[] = [];
  // Sweep with the interval that reaches furthest so far.
  let reach: Ended | null = null;
  for (const b of list) {
    if (reach && reach.token !== b.token && b.heldFrom < reach.heldUntil && b.heldUntil > b.heldFrom) {
      const overlapMs = Math.min(reach.heldUntil, b.heldUntil) - b.heldFrom;
      out.push(
        `election: token ${b.token} (client ${b.client}) led from ${b.heldFrom.toFixed(1)} ms while token ${reach.token} (client ${reach.client}) still believed it led until ${reach.heldUntil.toFixed(1)} ms (${overlapMs.toFixed(1)} ms overlap)`,
      );
    }
    if (reach === null || b.heldUntil > reach.heldUntil) reach = b;
  }
  return out;
}

/** After healing, a fresh campaign is granted (the election serves again) with a token above
 *  every token acknowledged or observed during the run, and Leader shows it. */
export function checkElectionFinal(events: readonly ElectionEvent[], final: ElectionFinal): string[] {
  if (final.probeToken === null) return [`election: no fresh campaign granted after healing (${final.probeError ?? "no token"})`];
  const granted = [
    ...acked(events).map((c) => c.token),
    ...events.flatMap((e) => (e.type === "observe" && e.token !== null ? [e.token] : [])),
  ];
  const max = Math.max(0, ...granted);
  const out: string[] = [];
  if (final.probeToken <= max) out.push(`election: fresh campaign got token ${final.probeToken}, not above ${max} granted during the run`);
  if (final.leaderToken !== final.probeToken)
    out.push(`election: Leader shows ${final.leaderToken ?? "nobody"} while the fresh campaign ${final.probeToken} leads`);
  return out;
}

/** Every check over the run's events (checkElectionFinal needs the healed cluster's answers). */
export function checkElections(events: readonly ElectionEvent[]): string[] {
  return [
    ...checkElectionTokensUnique(events),
    ...checkElectionRealTimeOrder(events),
    ...checkObserverOrder(events),
    ...checkObservedProvenance(events),
    ...checkLeadershipExclusion(events),
  ];
}
