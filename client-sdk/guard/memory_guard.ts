// An in-memory guard with the same contract as SqliteGuard, for tests and for single-process
// resources whose data also lives in memory. It is NOT durable: after a restart it has forgotten
// every token, so a real resource must persist its mark with its data (use SqliteGuard).

import { StaleFencingTokenError } from "./errors.ts";
import type { GuardMetricsOptions } from "./metrics.ts";
import { rejectionRecorder } from "./metrics.ts";
import { assertSynchronous, parseFencingToken } from "./token_store.ts";
import type { FencingGuard, FencingToken, RunResult } from "./token_store.ts";

export interface MemoryGuardOptions extends GuardMetricsOptions {
  /** Called on every stale token, after the metric. */
  readonly onReject?: (e: StaleFencingTokenError) => void;
}

export class MemoryGuard<C = undefined> implements FencingGuard<C> {
  private readonly marks = new Map<string, bigint>();
  // Resources with a runAsync in progress. A synchronous run cannot wait for them, and running
  // beside them would break the atomicity runAsync promises, so it is refused instead.
  private readonly tails = new Map<string, Promise<void>>();
  private readonly record: (e: StaleFencingTokenError) => void;

  /** `context` is what every write callback receives (e.g. the Map holding the protected data). */
  constructor(
    readonly context: C,
    private readonly options: MemoryGuardOptions = {},
  ) {
    this.record = rejectionRecorder(options);
  }

  highest(resource: string): bigint | null {
    return this.marks.get(resource) ?? null;
  }

  run<T>(resource: string, token: FencingToken, write: (ctx: C) => T): T {
    const r = this.tryRun(resource, token, write);
    if (!r.ok) throw r.error;
    return r.value;
  }

  tryRun<T>(resource: string, token: FencingToken, write: (ctx: C) => T): RunResult<T> {
    const t = parseFencingToken(token);
    if (this.tails.has(resource)) {
      throw new Error(`resource ${JSON.stringify(resource)} has a runAsync in progress; use runAsync for it throughout`);
    }
    const stale = this.check(resource, t);
    if (stale !== null) return { ok: false, error: stale };
    // Single-threaded and synchronous: nothing else runs between the check and the raise. The
    // mark is raised only after the write returns, so a throwing write leaves it unchanged (as a
    // rolled-back SQLite transaction would); the caller's own data is its to undo.
    const value = write(this.context);
    assertSynchronous(value);
    this.marks.set(resource, t);
    return { ok: true, value };
  }

  /**
   * For asynchronous writes: a per-resource mutex (a promise chain) holds the critical section
   * from the check until `write` settles, so a stale writer cannot interleave. Atomic only within
   * this process and only against other callers that use runAsync for the same resource.
   */
  async runAsync<T>(resource: string, token: FencingToken, write: (ctx: C) => Promise<T> | T): Promise<T> {
    const t = parseFencingToken(token);
    const previous = this.tails.get(resource) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(resource, tail);
    await previous;
    try {
      const stale = this.check(resource, t);
      if (stale !== null) throw stale;
      const value = await write(this.context);
      this.marks.set(resource, t);
      return value;
    } finally {
      release();
      if (this.tails.get(resource) === tail) this.tails.delete(resource);
    }
  }

  private check(resource: string, t: bigint): StaleFencingTokenError | null {
    const highest = this.marks.get(resource);
    if (highest === undefined || t >= highest) return null;
    const e = new StaleFencingTokenError(resource, t, highest);
    this.record(e);
    this.options.onReject?.(e);
    return e;
  }
}
