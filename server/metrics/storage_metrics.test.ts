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
});
