// Waiting on a condition instead of sleeping a fixed time: a test that needs "B has queued" or
// "some grants went through the new leader" polls for exactly that. The budget is a generous
// safety bound for a loaded 2-core machine (the suite runs files in parallel), never a figure
// the test proves; tight latency figures belong in benchmarks.

import { setTimeout as sleepMs } from "node:timers/promises";

export const sleep = (ms: number): Promise<void> => sleepMs(ms);

/** Polls `probe` every `intervalMs` until it returns something other than null, undefined or
 *  false, and returns that; throws "timed out waiting for <what>" after `budgetMs`. */
export async function until<T>(
  what: string,
  budgetMs: number,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  intervalMs = 20,
): Promise<T> {
  const deadline = performance.now() + budgetMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (performance.now() >= deadline) throw new Error(`timed out after ${budgetMs} ms waiting for ${what}`);
    await sleepMs(intervalMs);
  }
}
