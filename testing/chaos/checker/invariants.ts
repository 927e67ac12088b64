// Direct checks that need no search (README.md). Each finding names the operations involved.
// "Before" means real-time precedence: a completed (acknowledged) before b was invoked.

import { describeOp, okOutput, outcome, partition, precedes } from "./history.ts";
import type { AcquireOp, GuardWriteOp, History } from "./history.ts";

export type InvariantName = "token-order" | "token-duplicate" | "guard-stale-accepted" | "final-store" | "grant-lost";

export interface Violation {
  readonly invariant: InvariantName;
  readonly message: string;
}

/** What was observed after the run (after recovery): holders read at the end, the final store. */
export interface FinalState {
  /** Holder token read per lock at the end (null: free). Locks absent here are not checked. */
  readonly holders?: Readonly<Record<string, number | null>>;
  /** Grants the service reports as expired (name and token). */
  readonly expired?: readonly { readonly name: string; readonly token: number }[];
  /** Final store content per resource: the token (and value) of the write it holds. */
  readonly store?: Readonly<Record<string, { readonly token: number; readonly value?: string } | null>>;
}

interface Grant {
  readonly op: AcquireOp;
  readonly token: number;
}

function grantsOf(ops: readonly { kind: string }[]): Grant[] {
  const grants: Grant[] = [];
  for (const op of ops) {
    if (op.kind !== "acquire") continue;
    const a = op as AcquireOp;
    const out = okOutput(a);
    if (out !== undefined) grants.push({ op: a, token: out.token });
  }
  return grants;
}

export function checkInvariants(history: History, final: FinalState = {}): Violation[] {
  const v: Violation[] = [];
  const { locks, resources } = partition(history);
  for (const [name, ops] of locks) {
    const grants = grantsOf(ops);
    // Exactly-once: a token is granted by at most one acquire.
    const byToken = new Map<number, Grant>();
    for (const g of grants) {
      const first = byToken.get(g.token);
      if (first === undefined) byToken.set(g.token, g);
      else
        v.push({
          invariant: "token-duplicate",
          message: `lock ${name}: token ${g.token} granted twice: ${describeOp(first.op)} and ${describeOp(g.op)}`,
        });
    }
    // Acknowledged order: an acquire that completed before another began got a smaller token.
    for (const a of grants)
      for (const b of grants)
        if (precedes(a.op, b.op) && a.token >= b.token)
          v.push({
            invariant: "token-order",
            message: `lock ${name}: ${describeOp(a.op)} completed before ${describeOp(b.op)} began, but its token is not smaller`,
          });
    checkGrantsKept(name, ops, grants, final, v);
  }
  for (const [resource, ops] of resources) {
    const accepted = ops.filter((op) => okOutput(op)?.result === "accepted");
    for (const a of accepted)
      for (const b of accepted)
        if (precedes(a, b) && b.input.token < a.input.token)
          v.push({
            invariant: "guard-stale-accepted",
            message: `resource ${resource}: ${describeOp(b)} accepted a token below ${describeOp(a)}, which completed first`,
          });
    checkFinalStore(resource, ops, accepted, final, v);
  }
  return v;
}

function checkGrantsKept(
  name: string,
  ops: readonly { kind: string }[],
  grants: readonly Grant[],
  final: FinalState,
  v: Violation[],
): void {
  const holders = final.holders;
  if (holders === undefined || !(name in holders)) return;
  const finalHolder = holders[name] ?? null;
  const released = new Set<number>();
  const observed: number[] = []; // every token any operation saw granted
  for (const op of ops) {
    if (op.kind === "release") {
      const r = op as Extract<History[number], { kind: "release" }>;
      if (okOutput(r)?.released === true || outcome(r) === "ambiguous") released.add(r.input.token);
    } else if (op.kind === "read-holder") {
      const r = op as Extract<History[number], { kind: "read-holder" }>;
      const t = okOutput(r)?.token;
      if (typeof t === "number") observed.push(t);
    }
  }
  for (const g of grants) observed.push(g.token);
  if (finalHolder !== null) observed.push(finalHolder);
  const expired = new Set((final.expired ?? []).filter((e) => e.name === name).map((e) => e.token));
  for (const g of grants) {
    const superseded = observed.some((t) => t > g.token);
    if (released.has(g.token) || expired.has(g.token) || superseded || finalHolder === g.token) continue;
    v.push({
      invariant: "grant-lost",
      message:
        `lock ${name}: acknowledged grant lost: ${describeOp(g.op)} was never released, expired or superseded, ` +
        `yet the final holder is ${finalHolder === null ? "none" : String(finalHolder)}`,
    });
  }
  const maxGranted = Math.max(-Infinity, ...grants.map((g) => g.token));
  if (finalHolder !== null && finalHolder < maxGranted)
    v.push({
      invariant: "grant-lost",
      message: `lock ${name}: final holder ${finalHolder} is older than acknowledged grant ${maxGranted} (state rolled back)`,
    });
}

function checkFinalStore(
  resource: string,
  ops: readonly GuardWriteOp[],
  accepted: readonly GuardWriteOp[],
  final: FinalState,
  v: Violation[],
): void {
  const store = final.store;
  if (store === undefined || !(resource in store)) return;
  const held = store[resource] ?? null;
  const maxAccepted = Math.max(-Infinity, ...accepted.map((w) => w.input.token));
  // Writes that may be the one the store holds: accepted or ambiguous, not below maxAccepted.
  const possible = ops.filter((w) => (okOutput(w)?.result === "accepted" || outcome(w) === "ambiguous") && w.input.token >= maxAccepted);
  if (held === null) {
    if (accepted.length > 0)
      v.push({
        invariant: "final-store",
        message: `resource ${resource}: store is empty but ${accepted.length} write(s) were accepted, the highest with token ${maxAccepted}`,
      });
    return;
  }
  const match = possible.filter((w) => w.input.token === held.token && (held.value === undefined || w.input.value === held.value));
  if (match.length === 0)
    v.push({
      invariant: "final-store",
      message:
        `resource ${resource}: store holds token ${held.token}${held.value === undefined ? "" : ` value ${JSON.stringify(held.value)}`}, ` +
        `which is not the last accepted write (highest accepted token ${maxAccepted === -Infinity ? "none" : maxAccepted})`,
    });
}
