// Linearizability search (Wing & Gong, with Lowe's just-in-time linearization and memoization of
// (linearized set, model state set), as in Porcupine), run per partition (P-compositionality:
// every lock name and every guarded resource is an independent object). Pure, no I/O.
//
// Definitely failed operations (ambiguous: false) are dropped: they had no effect. Ambiguous
// operations return at +Infinity and the models allow them to have had no effect, so they may be
// linearized anywhere after their invocation, or effectively never.

import { describeOp, outcome, partition, returnTime } from "./history.ts";
import type { History, Operation } from "./history.ts";
import { guardModel, lockModel } from "./models.ts";
import type { LockModelOptions, Model } from "./models.ts";

export type Verdict = "ok" | "illegal" | "unknown";

export interface PartitionResult {
  readonly object: string; // "lock:<name>" or "resource:<name>"
  readonly verdict: Verdict;
  readonly steps: number;
  /** For "illegal": which operations could not be placed, after which valid prefix. */
  readonly explanation?: string;
}

export interface LinearizabilityResult {
  readonly verdict: Verdict;
  readonly partitions: readonly PartitionResult[];
  /** One line per non-ok partition. */
  readonly explanation: string;
}

export interface CheckOptions {
  /** Search steps allowed per partition before giving up with "unknown" (default 1,000,000). */
  readonly budget?: number;
  /** Lease expiry in the lock model (models.ts LockModelOptions; default "internal"). */
  readonly lockExpiry?: LockModelOptions["expiry"];
}

interface Entry {
  readonly call: boolean;
  readonly op: number;
  readonly time: number;
  match: Entry | null; // call -> its return
  prev: Entry | null;
  next: Entry | null;
}

function buildList(ops: readonly Operation[]): Entry {
  const entries: Entry[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { call: true, op: i, time: op.invokeMs, match: null, prev: null, next: null };
    const ret: Entry = { call: false, op: i, time: returnTime(op), match: null, prev: null, next: null };
    call.match = ret;
    entries.push(call, ret);
  });
  // Calls before returns at equal times: touching operations are treated as concurrent.
  entries.sort((a, b) => a.time - b.time || (a.call === b.call ? a.op - b.op : a.call ? -1 : 1));
  const head: Entry = { call: false, op: -1, time: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

function lift(e: Entry): void {
  const m = e.match as Entry;
  (e.prev as Entry).next = e.next;
  (e.next as Entry).prev = e.prev; // the match follows, so next is non-null
  (m.prev as Entry).next = m.next;
  if (m.next) m.next.prev = m.prev;
}

function unlift(e: Entry): void {
  const m = e.match as Entry;
  (m.prev as Entry).next = m;
  if (m.next) m.next.prev = m;
  (e.prev as Entry).next = e;
  (e.next as Entry).prev = e;
}

/** Search one partition against a model. */
export function checkOperations<S, O extends Operation>(
  object: string,
  all: readonly O[],
  model: Model<S, O>,
  budget: number,
): PartitionResult {
  const ops = all.filter((op) => outcome(op) !== "failed");
  const head = buildList(ops);
  const words = Math.ceil(ops.length / 32) || 1;
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const stack: { entry: Entry; states: readonly S[] }[] = [];
  let states: readonly S[] = [model.init];
  let entry = head.next;
  let steps = 0;
  let best: { prefix: number[]; states: readonly S[]; candidates: number[]; due: number } | null = null;

  const stepAll = (from: readonly S[], op: O): S[] => {
    const out = new Map<string, S>();
    for (const s of from) for (const n of model.step(s, op)) out.set(model.key(n), n);
    return [...out.values()];
  };

  while (head.next !== null) {
    if (++steps > budget) return { object, verdict: "unknown", steps };
    if (entry === null) break; // unreachable: the list always ends with a return
    if (entry.call) {
      const op = ops[entry.op] as O;
      const next = stepAll(states, op);
      if (next.length > 0) {
        const w = entry.op >>> 5;
        const bit = 1 << (entry.op & 31);
        linearized[w] = (linearized[w] as number) | bit;
        const key = `${linearized.join(",")}|${next.map(model.key).sort().join(";")}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ entry, states });
          states = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[w] = (linearized[w] as number) & ~bit;
      }
      entry = entry.next;
    } else {
      // A return reached: nothing before it can be linearized next from this prefix.
      if (best === null || stack.length > best.prefix.length) {
        const candidates: number[] = [];
        for (let e: Entry | null = head.next; e !== null && e !== entry; e = e.next) if (e.call) candidates.push(e.op);
        best = { prefix: stack.map((f) => f.entry.op), states, candidates, due: entry.op };
      }
      const top = stack.pop();
      if (top === undefined) break;
      states = top.states;
      const w = top.entry.op >>> 5;
      linearized[w] = (linearized[w] as number) & ~(1 << (top.entry.op & 31));
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  if (head.next === null) return { object, verdict: "ok", steps };
  return { object, verdict: "illegal", steps, explanation: explain(object, ops, model, best) };
}

function explain<S, O extends Operation>(
  object: string,
  ops: readonly O[],
  model: Model<S, O>,
  best: { prefix: number[]; states: readonly S[]; candidates: number[]; due: number } | null,
): string {
  if (best === null) return `${object}: not linearizable`;
  const name = (i: number): string => describeOp(ops[i] as O);
  // Long histories: the count and the last few ids say enough to find the spot in the history.
  const ids = best.prefix.map((i) => String(ops[i]?.id));
  const prefix =
    ids.length === 0
      ? "nothing"
      : ids.length <= 12
        ? `[${ids.join(", ")}]`
        : `${ids.length} operations [..., ${ids.slice(-12).join(", ")}]`;
  return (
    `${object}: not linearizable. Longest valid prefix linearizes ${prefix} reaching ` +
    `{${best.states.map(model.describe).join(" | ")}}; then none of these can take effect next:\n` +
    best.candidates.map((i) => `    ${name(i)}`).join("\n") +
    `\n  yet ${name(best.due)} had already completed`
  );
}

/** Check a whole history: each lock against the token register, each resource against the guard. */
export function checkLinearizability(history: History, options: CheckOptions = {}): LinearizabilityResult {
  const budget = options.budget ?? 1_000_000;
  const { locks, resources } = partition(history);
  const partitions: PartitionResult[] = [];
  const lockOptions: LockModelOptions = options.lockExpiry === undefined ? {} : { expiry: options.lockExpiry };
  for (const [name, ops] of locks) partitions.push(checkOperations(`lock:${name}`, ops, lockModel(ops, lockOptions), budget));
  for (const [name, ops] of resources) partitions.push(checkOperations(`resource:${name}`, ops, guardModel(), budget));
  const verdict: Verdict = partitions.some((p) => p.verdict === "illegal")
    ? "illegal"
    : partitions.some((p) => p.verdict === "unknown")
      ? "unknown"
      : "ok";
  const explanation = partitions
    .filter((p) => p.verdict !== "ok")
    .map((p) => p.explanation ?? `${p.object}: ${p.verdict} after ${p.steps} steps (budget exhausted)`)
    .join("\n");
  return { verdict, partitions, explanation };
}
