// Test support: terse builders for hand-written histories, and a seeded generator of valid
// concurrent histories from a sequential simulation (mulberry32; no Math.random).

import type { FinalState } from "./invariants.ts";
import type { AcquireOp, GuardWriteOp, Operation, OpFailure, ReadHolderOp, ReleaseOp, ValidateOp } from "./history.ts";

type Amb = "amb" | "never" | "fail";
const fail = (a: Amb): OpFailure | null =>
  a === "never" ? null : { error: a === "amb" ? "TIMEOUT" : "LOCK_HELD", ambiguous: a === "amb" };
const done = (c: number, out: unknown): number | null => (out === "never" ? null : c);

export const acq = (id: number, name: string, i: number, c: number, out: number | Amb): AcquireOp => ({
  id,
  client: `c${id}`,
  kind: "acquire",
  input: { name },
  invokeMs: i,
  completeMs: done(c, out),
  output: typeof out === "number" ? { token: out } : fail(out),
});
export const rel = (id: number, name: string, token: number, i: number, c: number, out: boolean | Amb): ReleaseOp => ({
  id,
  client: `c${id}`,
  kind: "release",
  input: { name, token },
  invokeMs: i,
  completeMs: done(c, out),
  output: typeof out === "boolean" ? { released: out } : fail(out),
});
export const val = (id: number, name: string, token: number, i: number, c: number, out: boolean | Amb): ValidateOp => ({
  id,
  client: `c${id}`,
  kind: "validate",
  input: { name, token },
  invokeMs: i,
  completeMs: done(c, out),
  output: typeof out === "boolean" ? { current: out } : fail(out),
});
export const read = (id: number, name: string, i: number, c: number, out: number | null | Amb): ReadHolderOp => ({
  id,
  client: `c${id}`,
  kind: "read-holder",
  input: { name },
  invokeMs: i,
  completeMs: done(c, out),
  output: typeof out === "number" || out === null ? { token: out } : fail(out),
});
export const gw = (
  id: number,
  resource: string,
  token: number,
  i: number,
  c: number,
  out: "accepted" | "stale" | Amb,
  value?: string,
): GuardWriteOp => ({
  id,
  client: `c${id}`,
  kind: "guard-write",
  input: value === undefined ? { resource, token } : { resource, token, value },
  invokeMs: i,
  completeMs: done(c, out),
  output: out === "accepted" || out === "stale" ? { result: out } : fail(out),
});

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GenOptions {
  readonly ops?: number;
  readonly locks?: number;
  readonly resources?: number;
  readonly ambiguousRate?: number;
}

/**
 * Each operation gets an interval and a linearization point inside it; operations are applied to
 * a sequential simulation of the service (with random lease expiry) in linearization-point order,
 * which fixes their inputs and outputs. The result is linearizable by construction.
 */
export function generate(seed: number, o: GenOptions = {}): { history: Operation[]; final: FinalState } {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const n = o.ops ?? 40;
  const names = Array.from({ length: o.locks ?? 2 }, (_, i) => `L${i}`);
  const res = Array.from({ length: o.resources ?? 2 }, (_, i) => `R${i}`);
  const ambRate = o.ambiguousRate ?? 0.05;
  const slots = Array.from({ length: n }, (_, id) => {
    const invoke = Math.floor(rnd() * n * 10);
    const complete = invoke + 1 + Math.floor(rnd() * 30);
    return { id, invoke, complete, at: invoke + rnd() * (complete - invoke) };
  }).sort((a, b) => a.at - b.at);
  let counter = 0;
  const holder = new Map<string, number | null>();
  const granted: number[] = [];
  const maxW = new Map<string, number>();
  const store: Record<string, { token: number; value: string } | null> = {};
  const expired: { name: string; token: number }[] = [];
  const history: Operation[] = [];
  for (const s of slots) {
    const amb = rnd() < ambRate;
    const applies = !amb || rnd() < 0.5;
    const ambOut = rnd() < 0.5 ? "amb" : "never";
    const name = pick(names);
    const h = holder.get(name) ?? null;
    if (h !== null && rnd() < 0.15) {
      holder.set(name, null); // lease expiry, a system event
      expired.push({ name, token: h });
    }
    const cur = holder.get(name) ?? null;
    const k = rnd();
    if (k < 0.3) {
      if (cur !== null && !amb) {
        history.push(acq(s.id, name, s.invoke, s.complete, "fail"));
        continue;
      }
      if (cur === null && applies) {
        counter += 1 + Math.floor(rnd() * 2);
        holder.set(name, counter);
        granted.push(counter);
      }
      history.push(acq(s.id, name, s.invoke, s.complete, amb ? ambOut : counter));
    } else if (k < 0.45) {
      const t = cur !== null && rnd() < 0.8 ? cur : granted.length > 0 ? pick(granted) : 0;
      if (t === cur && applies) holder.set(name, null);
      history.push(rel(s.id, name, t, s.invoke, s.complete, amb ? ambOut : t === cur));
    } else if (k < 0.55) {
      const t = cur !== null && rnd() < 0.5 ? cur : granted.length > 0 ? pick(granted) : 0;
      history.push(val(s.id, name, t, s.invoke, s.complete, amb ? ambOut : t === cur));
    } else if (k < 0.7) {
      history.push(read(s.id, name, s.invoke, s.complete, amb ? ambOut : cur));
    } else {
      const r = pick(res);
      const t = granted.length > 0 ? pick(granted.slice(-4)) : 0;
      const ok = t >= (maxW.get(r) ?? -Infinity);
      if (ok && applies) {
        maxW.set(r, t);
        store[r] = { token: t, value: `v${s.id}` };
      }
      history.push(gw(s.id, r, t, s.invoke, s.complete, amb ? ambOut : ok ? "accepted" : "stale", `v${s.id}`));
    }
  }
  const holders: Record<string, number | null> = {};
  for (const nm of names) holders[nm] = holder.get(nm) ?? null;
  for (const r of res) store[r] ??= null;
  return { history: history.sort((a, b) => a.invokeMs - b.invokeMs), final: { holders, expired, store } };
}
