import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import type { ConfState, Snapshot } from "../core/types.ts";
import { MemoryStorage } from "../storage/memory_storage.ts";
import { createRegistry } from "./registry.ts";
import { MeteredStorage } from "./storage_metrics.ts";

const CS: ConfState = { voters: ["a"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
const entry = (index: number) => ({ term: 1, index, type: "normal" as const, data: new Uint8Array([index]) });

describe("storage metrics", () => {
  it("times each save and snapshot, records the snapshot size, counts a recovery at start", async () => {
    const registry = createRegistry();
    const inner = MemoryStorage.open();
    let nowMs = 0;
    const clock = (): number => nowMs;
    const storage = new MeteredStorage(inner, registry, { recoveredAtStart: true }, clock);
    const slowSave = inner.save.bind(inner);
    inner.save = (w) => {
      nowMs += 3; // the write and its fsync take 3 ms
      slowSave(w);
    };
    storage.save({ hardState: { term: 1, vote: "a", commit: 0 }, snapshot: null, entries: [entry(1), entry(2)] });
    storage.save({ hardState: null, snapshot: null, entries: [entry(3)] });
    const snapshot: Snapshot = { metadata: { index: 2, term: 1, confState: CS }, data: new Uint8Array(1234) };
    storage.saveSnapshotAndCompact(snapshot);
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_storage_save_seconds_count"), 2);
    assert.ok(Math.abs(sampleValue(s, "tenure_storage_save_seconds_sum") - 0.006) < 1e-9);
    assert.equal(sampleValue(s, "tenure_storage_save_seconds_bucket", { le: "0.0025" }), 0);
    assert.equal(sampleValue(s, "tenure_storage_save_seconds_bucket", { le: "0.005" }), 2);
    assert.equal(sampleValue(s, "tenure_snapshot_save_seconds_count"), 1);
    assert.equal(sampleValue(s, "tenure_snapshot_bytes"), 1234);
    assert.equal(sampleValue(s, "tenure_snapshots_total", { origin: "self" }), 1);
    assert.equal(sampleValue(s, "tenure_storage_recoveries_total"), 1);
    // The wrapper changes nothing in what is stored.
    assert.deepEqual(storage.load(), inner.load());
    assert.equal(storage.load().entries.at(-1)?.index, 3);
  });

  it("a snapshot received in a save counts as the leader's; no recovery at a clean start", async () => {
    const registry = createRegistry();
    const storage = new MeteredStorage(MemoryStorage.open(), registry, { recoveredAtStart: false });
    const snapshot: Snapshot = { metadata: { index: 5, term: 2, confState: CS }, data: new Uint8Array(99) };
    storage.save({ hardState: { term: 2, vote: "", commit: 5 }, snapshot, entries: [] });
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_snapshot_bytes"), 99);
    assert.equal(sampleValue(s, "tenure_snapshots_total", { origin: "leader" }), 1);
    assert.equal(sampleValue(s, "tenure_storage_recoveries_total"), 0);
  });

  it("a background save is timed from its start to its report, and passed through to a store that has one", async () => {
    const registry = createRegistry();
    const inner = MemoryStorage.open();
    let nowMs = 0;
    const held: ((error: Error | null) => void)[] = [];
    const background = Object.assign(inner, {
      saveInBackground: (w: Parameters<MemoryStorage["save"]>[0], done: (error: Error | null) => void) => {
        inner.save(w);
        held.push(done);
      },
    });
    const storage = new MeteredStorage(background, registry, { recoveredAtStart: false }, () => nowMs);
    const reports: (Error | null)[] = [];
    storage.saveInBackground({ hardState: { term: 1, vote: "a", commit: 0 }, snapshot: null, entries: [entry(1)] }, (e) => reports.push(e));
    nowMs += 4; // its fsync returns 4 ms later
    assert.equal(held.length, 1, "the inner store's own background save ran");
    assert.equal(
      sampleValue(parseExposition(await registry.metrics()), "tenure_storage_save_seconds_count"),
      0,
      "not timed before it returned",
    );
    held.shift()?.(null);
    assert.equal(reports[0], null);
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_storage_save_seconds_count"), 1);
    assert.ok(Math.abs(sampleValue(s, "tenure_storage_save_seconds_sum") - 0.004) < 1e-9);
    // A failed one is reported, not timed.
    storage.saveInBackground({ hardState: null, snapshot: null, entries: [entry(2)] }, (e) => reports.push(e));
    held.shift()?.(new Error("EIO"));
    assert.match(String(reports[1]?.message), /EIO/);
    assert.equal(sampleValue(parseExposition(await registry.metrics()), "tenure_storage_save_seconds_count"), 1);
  });

  it("a background save on a store without one is a save() reported later", async () => {
    const storage = new MeteredStorage(MemoryStorage.open(), createRegistry(), { recoveredAtStart: false });
    const reports: (Error | null)[] = [];
    storage.saveInBackground({ hardState: { term: 1, vote: "a", commit: 0 }, snapshot: null, entries: [entry(1)] }, (e) => reports.push(e));
    assert.equal(reports.length, 0, "reported after the call returns, as a real background save");
    assert.equal(storage.load().entries.at(-1)?.index, 1, "written at once");
    await Promise.resolve();
    assert.equal(reports[0], null);
  });
});
