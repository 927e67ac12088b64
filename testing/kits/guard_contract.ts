// The contract every FencingGuard keeps, run against MemoryGuard and SqliteGuard
// (memory_guard.test.ts, sqlite_guard.test.ts). Not a test file itself: it takes a factory.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { StaleFencingTokenError } from "../../client-sdk/guard/errors.ts";
import { InvalidFencingTokenError } from "../../client-sdk/guard/errors.ts";
import { REJECTIONS_METRIC } from "../../client-sdk/guard/metrics.ts";
import type { FencingGuard } from "../../client-sdk/guard/token_store.ts";

/** A guard plus a tiny key-value store its writes go to (the protected data). */
export interface GuardUnderTest<C> {
  readonly guard: FencingGuard<C>;
  put(ctx: C, key: string, value: string): void;
  get(key: string): string | undefined;
  close(): void;
}

export type GuardFactory = (registry: Registry) => GuardUnderTest<unknown>;

async function rejections(registry: Registry, resource: string): Promise<number> {
  const m = await registry.getSingleMetric(REJECTIONS_METRIC)?.get();
  return m?.values.find((v) => v.labels["resource"] === resource)?.value ?? 0;
}

export function guardContract(name: string, make: GuardFactory): void {
  describe(`${name}: FencingGuard contract`, () => {
    const withGuard = async (fn: (g: GuardUnderTest<unknown>, reg: Registry) => Promise<void> | void) => {
      const reg = new Registry();
      const g = make(reg);
      try {
        await fn(g, reg);
      } finally {
        g.close();
      }
    };

    it("accepts a first token, equal tokens and higher tokens; remembers the highest", () =>
      withGuard((g) => {
        assert.equal(g.guard.highest("r"), null);
        assert.equal(
          g.guard.run("r", 5n, (c) => (g.put(c, "k", "a"), "ret")),
          "ret",
        );
        assert.equal(g.guard.highest("r"), 5n);
        g.guard.run("r", "5", (c) => g.put(c, "k", "b")); // equal passes: the same holder again
        g.guard.run("r", 9, (c) => g.put(c, "k", "c"));
        assert.equal(g.guard.highest("r"), 9n);
        assert.equal(g.get("k"), "c");
      }));

    it("rejects a lower token with STALE_FENCING_TOKEN and does not run the write", () =>
      withGuard(async (g, reg) => {
        g.guard.run("r", 10n, (c) => g.put(c, "k", "new"));
        let ran = false;
        assert.throws(
          () => g.guard.run("r", 9n, () => (ran = true)),
          (e: unknown) =>
            e instanceof StaleFencingTokenError &&
            e.code === "STALE_FENCING_TOKEN" &&
            e.resource === "r" &&
            e.token === 9n &&
            e.highestToken === 10n,
        );
        assert.equal(ran, false);
        const r = g.guard.tryRun("r", 3n, (c) => g.put(c, "k", "old"));
        assert.equal(r.ok, false);
        if (!r.ok) assert.deepEqual(r.error.toJSON().highest, "10");
        assert.equal(g.get("k"), "new");
        assert.equal(g.guard.highest("r"), 10n);
        assert.equal(await rejections(reg, "r"), 2);
      }));

    it("keeps resources independent", () =>
      withGuard((g) => {
        g.guard.run("a", 100n, () => undefined);
        g.guard.run("b", 1n, () => undefined);
        assert.equal(g.guard.highest("a"), 100n);
        assert.equal(g.guard.highest("b"), 1n);
      }));

    it("a throwing write leaves the mark unchanged", () =>
      withGuard((g) => {
        g.guard.run("r", 4n, () => undefined);
        assert.throws(
          () =>
            g.guard.run("r", 8n, () => {
              throw new Error("boom");
            }),
          /boom/,
        );
        assert.equal(g.guard.highest("r"), 4n);
        g.guard.run("r", 5n, () => undefined); // 5 < 8 would be stale had 8 been kept
      }));

    it("refuses an asynchronous write (it would escape the critical section)", () =>
      withGuard((g) => {
        assert.throws(() => g.guard.run("r", 1n, async () => g.put(undefined, "k", "x")), TypeError);
        assert.equal(g.guard.highest("r"), null);
      }));

    it("rejects malformed tokens before touching the store", () =>
      withGuard((g) => {
        for (const bad of ["", "abc", "-1", "0", "1.5", "18446744073709551616", 0, 1.5, 2 ** 60, -3]) {
          assert.throws(() => g.guard.run("r", bad, () => undefined), InvalidFencingTokenError, String(bad));
        }
        assert.equal(g.guard.highest("r"), null);
      }));

    it("handles tokens up to 2^64-1 in numeric (not lexical) order", () =>
      withGuard((g) => {
        g.guard.run("r", "9", () => undefined);
        g.guard.run("r", "10", () => undefined);
        assert.equal(g.guard.highest("r"), 10n);
        g.guard.run("r", "18446744073709551615", () => undefined);
        assert.equal(g.guard.tryRun("r", "18446744073709551614", () => undefined).ok, false);
      }));
  });
}
