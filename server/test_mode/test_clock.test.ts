import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { TestClock, type RealClockSource } from "./test_clock.ts";

/** A real source the test moves by hand. */
class FakeReal implements RealClockSource {
  monotonicMs = 1_000;
  wallMs = 1_700_000_000_000;
  realMonotonicMs(): number {
    return this.monotonicMs;
  }
  realWallMs(): number {
    return this.wallMs;
  }
  advance(ms: number): void {
    this.monotonicMs += ms;
    this.wallMs += ms;
  }
}

describe("TestClock", () => {
  it("with default settings follows the real clocks", () => {
    const real = new FakeReal();
    const clock = new TestClock(real);
    real.advance(250);
    assert.equal(clock.monotonicMs(), 1_250);
    assert.equal(clock.wallMs(), real.wallMs);
    assert.equal(clock.tickIntervalMs(50), 50);
  });

  it("stays continuous across rate changes: the new rate applies from the change on", () => {
    const real = new FakeReal();
    const clock = new TestClock(real);
    real.advance(100);
    clock.apply({ monotonicRate: 2 });
    assert.equal(clock.monotonicMs(), 1_100, "no jump at the change");
    real.advance(100);
    assert.equal(clock.monotonicMs(), 1_300);
    clock.apply({ monotonicRate: 0.5 });
    assert.equal(clock.monotonicMs(), 1_300);
    real.advance(100);
    assert.equal(clock.monotonicMs(), 1_350);
    assert.equal(clock.tickIntervalMs(50), 100, "a slow clock ticks less often");
  });

  it("never decreases, even if the real source steps back", () => {
    const real = new FakeReal();
    const clock = new TestClock(real);
    real.advance(500);
    const before = clock.monotonicMs();
    real.monotonicMs -= 300;
    assert.equal(clock.monotonicMs(), before);
    clock.apply({ monotonicRate: 1.5 });
    assert.ok(clock.monotonicMs() >= before);
  });

  it("steps forward by the growth of monotonicStepMs only; a smaller value is ignored", () => {
    const real = new FakeReal();
    const clock = new TestClock(real);
    clock.apply({ monotonicStepMs: 500 });
    assert.equal(clock.monotonicMs(), 1_500);
    clock.apply({ monotonicStepMs: 500 });
    assert.equal(clock.monotonicMs(), 1_500, "the same value again is no new step");
    clock.apply({ monotonicStepMs: 200 });
    assert.equal(clock.monotonicMs(), 1_500, "no step back");
    clock.apply({ monotonicStepMs: 800 });
    assert.equal(clock.monotonicMs(), 1_800, "only the growth above the largest step so far");
    assert.equal(clock.current().monotonicStepMs, 800);
  });

  it("offsets the wall clock both ways without touching the monotonic clock", () => {
    const real = new FakeReal();
    const clock = new TestClock(real);
    clock.apply({ wallOffsetMs: 3_600_000 });
    assert.equal(clock.wallMs(), real.wallMs + 3_600_000);
    clock.apply({ wallOffsetMs: -5_000 });
    assert.equal(clock.wallMs(), real.wallMs - 5_000);
    assert.equal(clock.monotonicMs(), 1_000);
  });

  it("loads a file; a bad file is reported and the previous settings stay", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tenure-clock-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "clock.json");
    const real = new FakeReal();
    const clock = new TestClock(real);
    writeFileSync(file, JSON.stringify({ wallOffsetMs: 1_000, monotonicRate: 1.5 }));
    assert.equal(clock.load(file), null);
    const good = clock.current();
    assert.deepEqual(good, { wallOffsetMs: 1_000, monotonicRate: 1.5, monotonicStepMs: 0 });
    const bad: readonly [string, RegExp][] = [
      ["{", /JSON/],
      [JSON.stringify({ monotonicRate: 3 }), /monotonicRate must be in \[0.5, 2\]/],
      [JSON.stringify({ monotonicRate: 0.1 }), /monotonicRate must be in/],
      [JSON.stringify({ wallOffsetMs: "1h" }), /wallOffsetMs must be a finite number/],
      ['{"wallOffsetMs": 1e999}', /wallOffsetMs must be a finite number/],
      [JSON.stringify({ monotonicrate: 1 }), /unknown test clock field "monotonicrate"/],
      ["[1]", /JSON object/],
    ];
    for (const [text, why] of bad) {
      writeFileSync(file, text);
      assert.match(clock.load(file) ?? "no error", why, text);
      assert.deepEqual(clock.current(), good, text);
    }
    assert.match(clock.load(join(dir, "missing.json")) ?? "", /ENOENT/);
    assert.deepEqual(clock.current(), good);
    real.advance(100);
    assert.equal(clock.monotonicMs(), 1_150, "the rate from the good file still applies");
  });
});
