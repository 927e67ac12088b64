// The chaos run's history, converted for the linearizability checker: a clean run passes, and
// the checker catches a stale token accepted by a guard and a token granted out of order.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkLinearizability } from "./checker/linearizability.ts";
import { toCheckerHistory } from "./to_checker.ts";
import type { Op } from "./workload.ts";

const op = (o: Partial<Op> & Pick<Op, "type" | "inv" | "cmp">): Op => ({ client: 0, name: "l0", outcome: "ok", ...o });

const clean: Op[] = [
  op({ type: "acquire", client: 0, inv: 0, cmp: 10, token: 5 }),
  op({ type: "write", client: 0, inv: 11, cmp: 12, token: 5 }),
  op({ type: "release", client: 0, inv: 13, cmp: 20, token: 5 }),
  op({ type: "acquire", client: 1, inv: 21, cmp: 30, token: 9 }),
  op({ type: "write", client: 1, inv: 31, cmp: 32, token: 9 }),
  op({ type: "write", client: 0, inv: 33, cmp: 34, token: 5, outcome: "fail", error: "STALE_FENCING_TOKEN" }),
  op({ type: "abandon", client: 1, inv: 35, cmp: 35, token: 9 }),
  op({ type: "acquire", client: 2, inv: 40, cmp: 50, outcome: "info", error: "OUTCOME_UNKNOWN", ambiguous: true }),
];

describe("chaos history -> linearizability checker", () => {
  it("a clean run is linearizable", () => {
    assert.equal(checkLinearizability(toCheckerHistory(clean)).verdict, "ok");
  });

  it("a stale token accepted by the guard after a higher one is caught", () => {
    // Client 0 writes with token 5 after token 9's write was accepted, and the guard accepts it.
    const bad = clean.map((o, i) => (i === 5 ? op({ type: "write", client: 0, inv: 33, cmp: 34, token: 5 }) : o));
    const r = checkLinearizability(toCheckerHistory(bad));
    assert.equal(r.verdict, "illegal");
    assert.match(r.explanation, /resource:l0/);
  });

  it("a lower token granted after a higher grant completed is caught", () => {
    const bad = [...clean.slice(0, 5), op({ type: "acquire", client: 3, inv: 36, cmp: 38, token: 7 })];
    const r = checkLinearizability(toCheckerHistory(bad));
    assert.equal(r.verdict, "illegal");
    assert.match(r.explanation, /lock:l0/);
  });
});
