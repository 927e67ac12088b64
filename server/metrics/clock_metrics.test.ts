import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import { ClockRateCheck } from "./clock_metrics.ts";
import { createRegistry } from "./registry.ts";

describe("clock-rate check", () => {
  it("warns once per window whose monotonic and wall clocks ran apart by more than rho", async () => {
    const registry = createRegistry();
    let monotonicMs = 0;
    let wallMs = 1_000_000;
    const logged: Record<string, unknown>[] = [];
    const check = new ClockRateCheck(registry, {
      clocks: { monotonicMs: () => monotonicMs, wallMs: () => wallMs },
      rho: 0.01,
      windowMs: 1_000,
      log: (f) => logged.push(f),
    });
    const step = (monoMs: number, wall: number): void => {
      monotonicMs += monoMs;
      wallMs += wall;
      check.sample();
    };
    check.sample();
    step(500, 500); // half a window: nothing measured
    step(500, 495); // 1000 / 995: 0.5% fast, within rho
    let s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_clock_rate_warnings_total"), 0);
    assert.ok(Math.abs(sampleValue(s, "tenure_clock_rate_error_ratio") - (1000 / 995 - 1)) < 1e-12);
    step(1_000, 950); // 5% fast
    step(1_000, 1_100); // 9% slow
    step(1_000, 1_000);
    s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_clock_rate_warnings_total"), 2);
    assert.equal(sampleValue(s, "tenure_clock_rate_error_ratio"), 0);
    assert.deepEqual(
      logged.map((f) => [f["event"], f["monotonicElapsedMs"], f["wallElapsedMs"]]),
      [
        ["clock_rate_warning", 1_000, 950],
        ["clock_rate_warning", 1_000, 1_100],
      ],
    );
    step(1_000, -5_000); // the wall clock stepped back: a warning, not a crash
    s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_clock_rate_warnings_total"), 3);
  });
});
