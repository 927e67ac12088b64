import { test } from "node:test";
import assert from "node:assert/strict";
import { checkLinearizability } from "./linearizability.ts";
import { checkInvariants } from "./invariants.ts";
import { okOutput, precedes } from "./history.ts";
import type { AcquireOp, GuardWriteOp, Operation } from "./history.ts";
import { acq, generate, read } from "./testkit.ts";

const SEEDS = Array.from({ length: 40 }, (_, i) => 1000 + i);

test("valid concurrent histories from a seeded sequential simulation pass both checkers", () => {
  for (const seed of SEEDS) {
    const { history, final } = generate(seed);
    const r = checkLinearizability(history);
    assert.equal(r.verdict, "ok", `seed ${seed}: ${r.explanation}`);
    assert.deepEqual(checkInvariants(history, final), [], `seed ${seed}`);
  }
});

function swapTokens(h: Operation[]): Operation[] | null {
  const acqs = h.filter((op): op is AcquireOp => op.kind === "acquire" && okOutput(op) !== undefined);
  for (const a of acqs)
    for (const b of acqs)
      if (a.input.name === b.input.name && precedes(a, b)) {
        const ta = okOutput(a)?.token as number;
        const tb = okOutput(b)?.token as number;
        return h.map((op) => (op === a ? { ...a, output: { token: tb } } : op === b ? { ...b, output: { token: ta } } : op));
      }
  return null;
}

function lowerGuard(h: Operation[]): Operation[] | null {
  const acc = h.filter((op): op is GuardWriteOp => op.kind === "guard-write" && okOutput(op)?.result === "accepted");
  for (const a of acc)
    for (const b of acc)
      if (a.input.resource === b.input.resource && precedes(a, b))
        return h.map((op) => (op === b ? { ...b, input: { ...b.input, token: a.input.token - 1 } } : op));
  return null;
}

test("mutated histories (two tokens swapped, a guard token lowered) fail", () => {
  let swapped = 0;
  let lowered = 0;
  for (const seed of SEEDS) {
    const { history } = generate(seed);
    const s = swapTokens(history);
    if (s !== null) {
      swapped++;
      assert.equal(checkLinearizability(s).verdict, "illegal", `seed ${seed} swap`);
      assert.ok(
        checkInvariants(s).some((v) => v.invariant === "token-order"),
        `seed ${seed} swap`,
      );
    }
    const l = lowerGuard(history);
    if (l !== null) {
      lowered++;
      assert.equal(checkLinearizability(l).verdict, "illegal", `seed ${seed} lower`);
      assert.ok(
        checkInvariants(l).some((v) => v.invariant === "guard-stale-accepted"),
        `seed ${seed} lower`,
      );
    }
  }
  assert.ok(swapped >= 20 && lowered >= 20, `mutations applied: swap ${swapped}, lower ${lowered}`);
});

test("the step budget returns unknown on an adversarial history", () => {
  // 24 overlapping acquires (any increasing subset is a reachable prefix) and a read that fits nowhere
  const h: Operation[] = Array.from({ length: 24 }, (_, i) => acq(i, "a", 0, 100, i + 1));
  h.push(read(99, "a", 0, 100, 1000));
  const start = Date.now();
  const r = checkLinearizability(h, { budget: 20_000 });
  assert.equal(r.verdict, "unknown");
  assert.match(r.explanation, /budget/);
  assert.ok(Date.now() - start < 3000);
});
