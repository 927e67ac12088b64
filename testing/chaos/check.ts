// Checks over a finished run: the history, the guard stores' audit tables, and the cluster after
// healing. Each check returns human-readable violations; an empty list is a pass.

import type { Op } from "./workload.ts";

export interface FinalLock {
  readonly name: string;
  /** Lock status after healing (before the final probe). */
  readonly state: string;
  readonly token: number;
  /** Token of a fresh acquire after healing, or an error. */
  readonly probeToken: number | null;
  readonly probeError?: string;
  /** Status right after the probe acquire: its holder token. */
  readonly probeHeldToken: number;
  readonly probeWriteAccepted: boolean;
}

/** The guard never accepted a token below one it accepted before (per resource, acceptance order). */
export function checkGuardAudit(name: string, accepted: readonly bigint[]): string[] {
  const out: string[] = [];
  let max: bigint | null = null;
  accepted.forEach((t, i) => {
    if (max !== null && t < max) out.push(`guard ${name}: write #${i} accepted token ${t} after ${max}`);
    if (max === null || t > max) max = t;
  });
  return out;
}

/** Each guard write the history says was accepted appears in the audit, and vice versa. */
export function checkAuditMatchesHistory(name: string, accepted: readonly bigint[], ops: readonly Op[]): string[] {
  const acked = ops.filter((o) => o.type === "write" && o.name === name && o.outcome === "ok").length;
  return acked === accepted.length ? [] : [`guard ${name}: ${acked} writes acknowledged but ${accepted.length} in the audit`];
}

/** No token granted twice (tokens come from one counter shared by every lock). */
export function checkUniqueTokens(ops: readonly Op[]): string[] {
  const seen = new Map<number, Op>();
  const out: string[] = [];
  for (const o of ops) {
    if (o.type !== "acquire" || o.outcome !== "ok" || o.token === undefined) continue;
    const prev = seen.get(o.token);
    if (prev) out.push(`token ${o.token} granted twice: client ${prev.client} on ${prev.name} and client ${o.client} on ${o.name}`);
    else seen.set(o.token, o);
  }
  return out;
}

/** For acquires A, B of one lock with A completed before B was invoked: A.token < B.token. */
export function checkRealTimeOrder(ops: readonly Op[]): string[] {
  const out: string[] = [];
  const byName = new Map<string, Op[]>();
  for (const o of ops) {
    if (o.type !== "acquire" || o.outcome !== "ok" || o.token === undefined) continue;
    const list = byName.get(o.name) ?? [];
    list.push(o);
    byName.set(o.name, list);
  }
  for (const [name, list] of byName) {
    const byCmp = [...list].sort((x, y) => x.cmp - y.cmp);
    const byInv = [...list].sort((x, y) => x.inv - y.inv);
    // Sweep: the highest token among acquires completed before each invocation.
    let j = 0;
    let best: Op | null = null;
    for (const b of byInv) {
      while (j < byCmp.length && (byCmp[j]?.cmp ?? Infinity) < b.inv) {
        const a = byCmp[j++];
        if (a && (best === null || (a.token ?? 0) > (best.token ?? 0))) best = a;
      }
      if (best && (best.token ?? 0) >= (b.token ?? 0)) {
        out.push(
          `lock ${name}: token ${b.token} (client ${b.client}) acknowledged after token ${best.token} (client ${best.client}) completed`,
        );
      }
    }
  }
  return out;
}

/**
 * After healing: the lock never went back to an older grant, a grant whose release was
 * acknowledged is not held, and a fresh acquire gets a token above every token acknowledged so far,
 * is held, and its write is accepted by the guard (the cluster serves again).
 */
export function checkFinal(ops: readonly Op[], finals: readonly FinalLock[], guardHighest: (name: string) => bigint | null): string[] {
  const out: string[] = [];
  const maxAcked = Math.max(0, ...ops.filter((o) => o.type === "acquire" && o.outcome === "ok").map((o) => o.token ?? 0));
  for (const f of finals) {
    const mine = ops.filter((o) => o.name === f.name);
    const acked = mine.filter((o) => o.type === "acquire" && o.outcome === "ok").map((o) => o.token ?? 0);
    const maxHere = Math.max(0, ...acked);
    const released = new Set(mine.filter((o) => o.type === "release" && o.outcome === "ok").map((o) => o.token ?? 0));
    if (f.state === "held" || f.token > 0) {
      if (f.token < maxHere) out.push(`lock ${f.name}: held with token ${f.token} after token ${maxHere} was acknowledged (grant lost)`);
      if (released.has(f.token)) out.push(`lock ${f.name}: token ${f.token} still held after its release was acknowledged`);
    }
    if (f.probeToken === null) {
      out.push(`lock ${f.name}: cluster does not serve after healing (${f.probeError ?? "no token"})`);
      continue;
    }
    if (f.probeToken <= maxAcked) out.push(`lock ${f.name}: final grant token ${f.probeToken} not above acknowledged ${maxAcked}`);
    const g = guardHighest(f.name);
    if (g !== null && BigInt(f.probeToken) <= g) out.push(`lock ${f.name}: final token ${f.probeToken} not above guard mark ${g}`);
    if (f.probeHeldToken !== f.probeToken)
      out.push(`lock ${f.name}: acknowledged final grant ${f.probeToken} not held (status ${f.probeHeldToken})`);
    if (!f.probeWriteAccepted) out.push(`lock ${f.name}: guard rejected the final holder's write`);
  }
  return out;
}

/**
 * Mutual exclusion in real time: two holders of one lock never believed they held it at the
 * same instant. A holder's belief runs from its acquire's completion to the earlier of its
 * release (or abandon) and its own lease deadline (release/abandon ops carry both ends). One
 * clock (the harness's) timestamps every holder, so the comparison needs no drift bound; the
 * server's side of the bound (rho) is what makes this hold.
 */
export function checkMutualExclusion(ops: readonly Op[]): string[] {
  const byName = new Map<string, Op[]>();
  for (const o of ops) {
    if ((o.type !== "release" && o.type !== "abandon") || o.heldFrom === undefined || o.heldUntil === undefined) continue;
    const list = byName.get(o.name) ?? [];
    list.push(o);
    byName.set(o.name, list);
  }
  const out: string[] = [];
  for (const [name, list] of byName) {
    const sorted = [...list].sort((x, y) => (x.heldFrom ?? 0) - (y.heldFrom ?? 0));
    // Sweep with the interval that reaches furthest so far.
    let reach: Op | null = null;
    for (const b of sorted) {
      if (reach && reach.token !== b.token && (b.heldFrom ?? 0) < (reach.heldUntil ?? 0) && (b.heldUntil ?? 0) > (b.heldFrom ?? 0)) {
        const overlapMs = Math.min(reach.heldUntil ?? 0, b.heldUntil ?? 0) - (b.heldFrom ?? 0);
        out.push(
          `lock ${name}: token ${b.token} (client ${b.client}) held from ${(b.heldFrom ?? 0).toFixed(1)} ms while token ${reach.token} (client ${reach.client}) still believed it held until ${(reach.heldUntil ?? 0).toFixed(1)} ms (${overlapMs.toFixed(1)} ms overlap)`,
        );
      }
      if (reach === null || (b.heldUntil ?? 0) > (reach.heldUntil ?? 0)) reach = b;
    }
  }
  return out;
}

/** The lease prober's acquires carry a lease whose revoke was acknowledged: none may be granted. */
export function checkRevokedLeaseGrants(ops: readonly Op[]): string[] {
  return ops
    .filter((o) => o.type === "lease-acquire" && o.outcome === "ok")
    .map((o) => `lock ${o.name}: granted token ${o.token} on a lease whose revoke was acknowledged (${o.error ?? ""})`);
}

/**
 * Exactly-once, counted on the token counter: every grant of a lock or a leadership takes the
 * next token of ONE cluster-wide counter, so between the lowest and the highest token clients
 * saw, each token was either acknowledged to someone or taken by an operation whose outcome is
 * unknown to its client (at most one token each). More unexplained tokens than such operations
 * means some request was granted twice (a retry applied again) or granted while its client was
 * told it failed.
 */
export function checkExactlyOnce(acknowledged: readonly number[], ambiguousGrantOps: number): string[] {
  if (acknowledged.length === 0) return [];
  const seen = new Set(acknowledged);
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of seen) {
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  const unexplained = hi - lo + 1 - seen.size;
  return unexplained > ambiguousGrantOps
    ? [
        `exactly-once: ${unexplained} tokens between ${lo} and ${hi} were taken by grants nobody was told of, but only ${ambiguousGrantOps} grant requests ended with an unknown outcome`,
      ]
    : [];
}
