import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { StaleFencingTokenError } from "./errors.ts";
import { guardContract } from "../../testing/kits/guard_contract.ts";
import { MemoryGuard } from "./memory_guard.ts";

guardContract("MemoryGuard", (registry) => {
  const data = new Map<string, string>();
  const guard = new MemoryGuard<unknown>(data, { registry });
  return {
    guard,
    put: (_ctx, k, v) => void data.set(k, v),
    get: (k) => data.get(k),
    close: () => {},
  };
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("MemoryGuard.runAsync", () => {
  it("keeps the check atomic with an asynchronous write under many concurrent writers", async () => {
    const state = { value: 0n };
    const accepted: bigint[] = [];
    const guard = new MemoryGuard(state, { registry: null });
    let stale = 0;
    const writers = Array.from({ length: 300 }, async (_, i) => {
      const token = BigInt(Math.floor(i / 3) + 1 + Math.floor(Math.random() * 20));
      await sleep(Math.random() * 3);
      try {
        await guard.runAsync("r", token, async (s) => {
          await sleep(Math.random() * 2); // a stale writer would interleave here without the mutex
          s.value = token;
          accepted.push(token);
        });
      } catch (e) {
        assert.ok(e instanceof StaleFencingTokenError);
        stale++;
      }
    });
    await Promise.all(writers);
    assert.equal(accepted.length + stale, 300);
    for (let i = 1; i < accepted.length; i++) assert.ok(accepted[i]! >= accepted[i - 1]!, `accepted ${accepted.join(",")}`);
    assert.equal(state.value, accepted.at(-1));
    assert.equal(guard.highest("r"), accepted.at(-1));
  });

  it("refuses a synchronous run while a runAsync holds the resource", async () => {
    const guard = new MemoryGuard(undefined, { registry: new Registry() });
    let release!: () => void;
    let writing!: () => void;
    const started = new Promise<void>((r) => (writing = r));
    const pending = guard.runAsync("r", 1n, () => new Promise<void>((r) => ((release = r), writing())));
    await started; // the write is running: the resource is held
    assert.throws(() => guard.run("r", 2n, () => undefined), /runAsync in progress/);
    release();
    await pending;
    guard.run("r", 2n, () => undefined);
    assert.equal(guard.highest("r"), 2n);
  });
});
