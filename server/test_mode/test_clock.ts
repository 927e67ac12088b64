// TEST-ONLY: a controllable clock for the chaos harness's clock faults (testing/chaos/), used by
// tenured and tenure-witness only under --test-mode --test-clock-file. Jepsen's clock nemesis
// skews and steps the system clock of a real process; this does the same to one Node process:
// the wall clock gets an offset (it may jump back and forth, as an operator or an NTP step does),
// and the monotonic clock that drives leader time and Raft ticks runs at a chosen rate and may
// jump forward. The harness writes the JSON file, then sends SIGUSR2:
//
//   {"wallOffsetMs": 3600000, "monotonicRate": 1.02, "monotonicStepMs": 500}
//
// Every field is optional (defaults 0, 1, 0): a file describes the whole clock, not a change.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { ServerConfig } from "../config.ts";
import { runOrFatal } from "../fatal.ts";

export interface TestClockSettings {
  /** Added to the real wall clock; any sign. */
  readonly wallOffsetMs: number;
  /** Monotonic milliseconds per real millisecond, in [0.5, 2]. */
  readonly monotonicRate: number;
  /**
   * Cumulative forward jump of the monotonic clock. A value above the largest seen so far jumps
   * by the difference; a smaller one is ignored (a monotonic clock cannot go back).
   */
  readonly monotonicStepMs: number;
}

export interface RealClockSource {
  realMonotonicMs(): number;
  realWallMs(): number;
}

export const DEFAULT_TEST_CLOCK_SETTINGS: TestClockSettings = { wallOffsetMs: 0, monotonicRate: 1, monotonicStepMs: 0 };
export const MONOTONIC_RATE_MIN = 0.5;
export const MONOTONIC_RATE_MAX = 2;

// Captured at load, before installTestClock replaces Date.now: the real source must never read
// the skewed clock it feeds.
const realDateNow = Date.now.bind(Date);
const REAL_SOURCE: RealClockSource = { realMonotonicMs: () => performance.now(), realWallMs: realDateNow };

export class TestClock {
  private settings: TestClockSettings = DEFAULT_TEST_CLOCK_SETTINGS;
  /** Real monotonic time of the last rate change, and the clock's value at that moment. */
  private baseRealMs: number;
  private baseValueMs: number;
  /** The largest value returned: the clamp that keeps monotonicMs() from ever decreasing. */
  private lastValueMs: number;

  constructor(private readonly real: RealClockSource = REAL_SOURCE) {
    this.baseRealMs = real.realMonotonicMs();
    this.baseValueMs = this.baseRealMs;
    this.lastValueMs = this.baseValueMs;
  }

  current(): TestClockSettings {
    return this.settings;
  }

  monotonicMs(): number {
    return this.valueAt(this.real.realMonotonicMs());
  }

  wallMs(): number {
    return this.real.realWallMs() + this.settings.wallOffsetMs;
  }

  /** The real interval between Raft ticks: a fast clock ticks more often. */
  tickIntervalMs(tickMs: number): number {
    return tickMs / this.settings.monotonicRate;
  }

  /** Validates, then switches rate and offset at this instant without a jump (except the step). */
  apply(settings: Partial<TestClockSettings>): void {
    const next = validSettings(settings);
    const nowRealMs = this.real.realMonotonicMs();
    const stepMs = Math.max(0, next.monotonicStepMs - this.settings.monotonicStepMs);
    this.baseValueMs = this.valueAt(nowRealMs) + stepMs;
    this.baseRealMs = nowRealMs;
    this.lastValueMs = Math.max(this.lastValueMs, this.baseValueMs);
    this.settings = { ...next, monotonicStepMs: Math.max(next.monotonicStepMs, this.settings.monotonicStepMs) };
  }

  /** Reads and applies the file; on any error keeps the current settings and returns the error. */
  load(path: string): string | null {
    try {
      this.apply(JSON.parse(readFileSync(path, "utf8")) as Partial<TestClockSettings>);
      return null;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  /**
   * Calls onTick every tickIntervalMs(tickMs) of real time, re-reading the rate before each
   * tick. Due times advance from the previous due time, not from when the timer fired, so timer
   * lateness does not add a rate error of its own. Returns the stop function.
   */
  startTicker(tickMs: number, onTick: () => void): () => void {
    let dueRealMs = this.real.realMonotonicMs();
    let timer: NodeJS.Timeout | null = null;
    const schedule = (): void => {
      const nowRealMs = this.real.realMonotonicMs();
      // After a long stall (SIGSTOP) start again from now instead of firing a burst of ticks.
      dueRealMs = Math.max(dueRealMs + this.tickIntervalMs(tickMs), nowRealMs);
      timer = setTimeout(() => {
        onTick();
        schedule();
      }, dueRealMs - nowRealMs);
    };
    schedule();
    return () => {
      if (timer !== null) clearTimeout(timer);
    };
  }

  private valueAt(realMs: number): number {
    const value = this.baseValueMs + (realMs - this.baseRealMs) * this.settings.monotonicRate;
    this.lastValueMs = Math.max(this.lastValueMs, value);
    return this.lastValueMs;
  }
}

function validSettings(raw: unknown): TestClockSettings {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error("the test clock file must hold a JSON object");
  }
  const fields = raw as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    // A misspelt key would otherwise be silently ignored and the fault never happen.
    if (!(key in DEFAULT_TEST_CLOCK_SETTINGS)) throw new Error(`unknown test clock field "${key}"`);
  }
  const out = { ...DEFAULT_TEST_CLOCK_SETTINGS };
  for (const key of Object.keys(DEFAULT_TEST_CLOCK_SETTINGS) as (keyof TestClockSettings)[]) {
    const v = fields[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${key} must be a finite number, got ${JSON.stringify(v)}`);
    out[key] = v;
  }
  if (out.monotonicRate < MONOTONIC_RATE_MIN || out.monotonicRate > MONOTONIC_RATE_MAX) {
    throw new Error(`monotonicRate must be in [${MONOTONIC_RATE_MIN}, ${MONOTONIC_RATE_MAX}], got ${out.monotonicRate}`);
  }
  return out;
}

type Log = (fields: Record<string, unknown>) => void;

/**
 * Process-wide install: loads the file, re-reads it on SIGUSR2, and replaces Date.now so every
 * wall-clock reader in the process (logs, wait deadlines, gRPC deadlines) sees the skewed time.
 * A bad file is logged and the previous settings stay: a clock fault must never crash a member.
 */
export function installTestClock(path: string, log: Log): TestClock {
  const clock = new TestClock();
  const reload = (): void => {
    const error = clock.load(path);
    if (error !== null) log({ event: "test-clock", level: "error", file: path, error, kept: clock.current() });
    else log({ event: "test-clock", ...clock.current() });
  };
  Date.now = () => clock.wallMs();
  reload();
  process.on("SIGUSR2", reload);
  return clock;
}

/**
 * The start of a member's test mode (tenured and tenure-witness alike): a loud warning, and
 * the test clock when a file is given. Returns null outside test mode or without a clock file,
 * and the caller then keeps its production clock and ticker unchanged.
 */
export function startTestMode(config: ServerConfig, log: Log): TestClock | null {
  if (!config.testMode) return null;
  log({
    event: "test-mode",
    warning: "TEST MODE: test-only clock/bug switches are enabled; never run this in production",
    testClockFile: config.testClockFile,
    testBugs: config.testBugs,
  });
  return config.testClockFile === null ? null : installTestClock(config.testClockFile, log);
}

/**
 * Raft ticks every tickMs: a plain setInterval in production (testClock null), exactly as
 * without test mode; under a test clock the interval follows its rate, so a rate error reaches
 * the election and heartbeat timers too. Returns the stop function.
 */
export function startTicker(testClock: TestClock | null, tickMs: number, onTick: () => void): () => void {
  // A tick runs the core and proposes timers: any throw leaves that state unknown, so it is fatal.
  const tick = (): void => runOrFatal("raft tick", onTick);
  if (testClock !== null) return testClock.startTicker(tickMs, tick);
  const timer = setInterval(tick, tickMs);
  return () => clearInterval(timer);
}
