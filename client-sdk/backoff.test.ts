import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelayMs, backoffWindowMs } from "./backoff.ts";

describe("backoff with full jitter", () => {
  const opts = { baseMs: 10, capMs: 500 };

  it("the window doubles from base and stops at the cap", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffWindowMs(a, opts)),
      [10, 20, 40, 80, 160, 320, 500, 500],
    );
    assert.equal(backoffWindowMs(10_000, opts), 500); // no overflow to Infinity
    assert.equal(backoffWindowMs(-3, opts), 10);
  });

  it("the delay is uniform in [0, window): random 0 gives 0, random just below 1 stays below the window", () => {
    for (let a = 0; a < 12; a++) {
      const w = backoffWindowMs(a, opts);
      assert.equal(
        backoffDelayMs(a, () => 0, opts),
        0,
      );
      const top = backoffDelayMs(a, () => 0.999999, opts);
      assert.ok(top < w && top >= w - 1, `attempt ${a}: ${top} vs window ${w}`);
      assert.equal(
        backoffDelayMs(a, () => 0.5, opts),
        Math.floor(w / 2),
      );
    }
  });

  it("a broken random source never yields a negative or out-of-window delay", () => {
    for (const r of [-1, 1, 2, Number.NaN]) {
      const d = backoffDelayMs(3, () => r, opts);
      assert.ok(d >= 0 && d < backoffWindowMs(3, opts), `random ${r} -> ${d}`);
    }
  });

  it("many draws stay within bounds and spread over the window (full, not equal, jitter)", () => {
    let seed = 42;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const draws = Array.from({ length: 2000 }, () => backoffDelayMs(6, random, opts));
    assert.ok(draws.every((d) => d >= 0 && d < 500));
    assert.ok(Math.min(...draws) < 25, "full jitter reaches near zero");
    assert.ok(Math.max(...draws) > 475, "and near the cap");
  });
});
