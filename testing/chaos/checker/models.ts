// Sequential models for the linearizability search (README.md). A model is nondeterministic:
// step returns every state the operation may lead to (empty: the operation is impossible here),
// and the search tracks sets of states (Porcupine's NondeterministicModel, powerset construction).
//
// Lease expiry is a system-performed event no client records. The lock model therefore lets the
// checker insert an internal "expire" step before any operation: from every state, the state with
// the lock freed is also reachable. This keeps grants made after a lease ran out checkable without
// assuming any bound on clocks; what remains checked is token order (every grant's token exceeds
// every earlier grant's), that the holder read / validated / released is the CURRENT token (never
// an older one), and that definitive "released: true" answers name the current holder.
//
// A recorder that does see every expiry (the lock simulation reads them from the log: every
// expiry, revoke and hand-off is a release in its history) turns the internal step off
// (`expiry: "recorded"`): then nothing frees a lock but a release, and a stale read of a free
// lock is caught as well as a stale read of an old holder.

import { okOutput, outcome } from "./history.ts";
import type { GuardWriteOp, LockOp, Operation } from "./history.ts";

export interface Model<S, O extends Operation> {
  readonly init: S;
  step(state: S, op: O): readonly S[];
  key(state: S): string;
  describe(state: S): string;
}

/** A token never reported by any client: granted by an ambiguous acquire nobody observed. */
export const GHOST = "ghost";

export interface LockState {
  /** Highest token granted so far (-Infinity before the first grant). */
  readonly last: number;
  readonly holder: number | null | typeof GHOST;
}

export interface LockModelOptions {
  /**
   * "internal" (default; the chaos harness): lease expiry is a system event no client records,
   * so the model may free the lock before any operation. "recorded": the history holds every way
   * a holder ends (release, revoke, expiry, hand-off) as a release, so no internal step.
   * Either way ValidateToken may answer false for the holder (its lease lapsed in leader time and
   * the expiry is not applied yet: the holder is still the holder, Lock.Status still shows it),
   * but never true for anyone else.
   */
  readonly expiry?: "internal" | "recorded";
}

/**
 * The token register of one lock. `ops` is the lock's partition: tokens that clients observed
 * (read, validated, released) but no successful acquire returned are "orphans" an ambiguous
 * acquire may have been granted.
 */
export function lockModel(ops: readonly LockOp[], options: LockModelOptions = {}): Model<LockState, LockOp> {
  const internalExpiry = (options.expiry ?? "internal") === "internal";
  const granted = new Set<number>();
  const seen = new Set<number>();
  for (const op of ops) {
    if (op.kind === "acquire") {
      const out = okOutput(op);
      if (out !== undefined) granted.add(out.token);
    } else if (op.kind === "read-holder") {
      const out = okOutput(op);
      if (out !== undefined && out.token !== null) seen.add(out.token);
    } else if (op.kind === "validate") {
      if (okOutput(op)?.current === true) seen.add(op.input.token);
    } else if (okOutput(op)?.released === true) seen.add(op.input.token);
  }
  const orphans = [...seen].filter((t) => !granted.has(t)).sort((a, b) => a - b);

  const stepFree = (s: LockState, op: LockOp): LockState[] => {
    const amb = outcome(op) === "ambiguous";
    switch (op.kind) {
      case "acquire": {
        if (s.holder !== null) return []; // the closure below offers the expired state
        if (amb) {
          const next: LockState[] = [s, { last: s.last, holder: GHOST }];
          for (const o of orphans) if (o > s.last) next.push({ last: o, holder: o });
          return next;
        }
        const t = okOutput(op)?.token;
        return t !== undefined && t > s.last ? [{ last: t, holder: t }] : [];
      }
      case "release": {
        const isHolder = s.holder === op.input.token;
        if (amb) return isHolder ? [s, { last: s.last, holder: null }] : [s];
        const released = okOutput(op)?.released;
        if (released === true) return isHolder ? [{ last: s.last, holder: null }] : [];
        return isHolder ? [] : [s];
      }
      case "validate": {
        if (amb) return [s];
        // false: the token is not the holder, or it is and its lease lapsed (no state change).
        if (okOutput(op)?.current !== true) return [s];
        return s.holder === op.input.token ? [s] : [];
      }
      case "read-holder": {
        if (amb) return [s];
        const t = okOutput(op)?.token;
        return t === s.holder ? [s] : []; // a ghost holder is never observed
      }
    }
  };

  return {
    init: { last: -Infinity, holder: null },
    step(s, op) {
      const out = stepFree(s, op);
      if (internalExpiry && s.holder !== null) out.push(...stepFree({ last: s.last, holder: null }, op)); // expiry
      return out;
    },
    key: (s) => `${s.last}/${String(s.holder)}`,
    describe: (s) => `holder=${s.holder === null ? "none" : String(s.holder)}, last granted=${s.last === -Infinity ? "none" : s.last}`,
  };
}

export interface GuardState {
  /** Highest token accepted so far (-Infinity before the first write). */
  readonly max: number;
}

/** The storage guard of one resource: token >= max is accepted and raises max; lower is stale. */
export function guardModel(): Model<GuardState, GuardWriteOp> {
  return {
    init: { max: -Infinity },
    step(s, op) {
      const t = op.input.token;
      const fresh = t >= s.max;
      if (outcome(op) === "ambiguous") return fresh ? [s, { max: t }] : [s];
      const result = okOutput(op)?.result;
      if (result === "accepted") return fresh ? [{ max: t }] : [];
      return fresh ? [] : [s];
    },
    key: (s) => String(s.max),
    describe: (s) => `highest accepted=${s.max === -Infinity ? "none" : s.max}`,
  };
}
