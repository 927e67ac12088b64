// The commit path's storage costs (issue 14 point 3): (1) a commit-index-only write
// (StorageWrite.sync false, a Ready with mustSync false) runs no SQLite statement at all: it rides
// in the next synced write's transaction (or a compaction's, or close()'s); anything a peer may be
// promised (entries, a snapshot, a term, a vote) still syncs, and the ack record never claims the
// unsynced commit index before a synced write made it durable; (2) save() never reads the stored
// snapshot image back, and once the store's position is known reads nothing for its checks, so
// its cost does not grow with the state machine's size (counted with a spy on every SQLite
// statement, not timed).

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { AssertionError } from "../core/assert.ts";
import type { Entry, HardState, Snapshot } from "../core/types.ts";
import { readAckRecord } from "./ack_record.ts";
import { SqliteStorage } from "./sqlite_storage.ts";

const entry = (index: number, term = 1): Entry => ({ index, term, type: "normal", data: Uint8Array.of(index % 256) });
const hs = (commit: number, term = 1): HardState => ({ term, vote: "a", commit });
const confState = { voters: ["a"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };

function withStore(body: (store: SqliteStorage, dataDir: string) => void): void {
  const dataDir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "tenure-commit-path-")));
  // Every synced change rewrites the ack record at once, so what it claims is visible at once.
  const store = SqliteStorage.open({ dataDir, ackPolicy: { watermarkEntries: 1, watermarkIntervalMs: 0 } });
  try {
    body(store, dataDir);
  } finally {
    store.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The store's own connection setting (private; read for the test only). */
function synchronousSetting(store: SqliteStorage): unknown {
  return (store as unknown as { db: Database.Database }).db.pragma("synchronous", { simple: true });
}

/** The commit index in raft.db's rows, read over a connection of its own (what a crash would leave). */
function storedCommit(dataDir: string): number {
  const db = new Database(path.join(dataDir, "raft.db"), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare("SELECT commit_index AS c FROM hard_state").get() as { c: number } | undefined;
    return row?.c ?? -1;
  } finally {
    db.close();
  }
}

function recordOf(dataDir: string): { commit: number; lastIndex: number } {
  const read = readAckRecord(dataDir);
  assert.equal(read.kind, "ok");
  if (read.kind !== "ok") throw new Error("no record");
  return { commit: read.record.commit, lastIndex: read.record.lastIndex };
}

describe("SqliteStorage commit path: a commit-index-only write is not fsynced", () => {
  it("refuses every later write when synchronous=FULL cannot be restored after an unsynced transaction", () => {
    withStore((store) => {
      store.save({ hardState: hs(0), snapshot: null, entries: [entry(1)], sync: true });
      const sql = (store as unknown as { sql: { synchronousFull: { run(): unknown } } }).sql;
      const restore = sql.synchronousFull;
      sql.synchronousFull = {
        run: () => {
          throw new Error("disk I/O error");
        },
      };
      store.save({ hardState: hs(1), snapshot: null, entries: [], sync: false }); // held: no statement
      // A background save's transaction runs at NORMAL (its fsync follows on the thread pool).
      assert.throws(
        () => store.saveInBackground({ hardState: null, snapshot: null, entries: [entry(2)] }, () => assert.fail("reported durable")),
        /disk I\/O error/,
      );
      sql.synchronousFull = restore;
      assert.throws(
        () => store.save({ hardState: hs(1), snapshot: null, entries: [entry(2)], sync: true }),
        (e: unknown) => e instanceof AssertionError && /could not be set back to FULL/.test(e.message),
      );
    });
  });

  it("holds a commit-only change without any statement and writes it with the next synced write", () => {
    withStore((store, dataDir) => {
      const spy = spyStatements();
      try {
        store.save({ hardState: hs(0), snapshot: null, entries: [entry(1), entry(2), entry(3)], sync: true });
        assert.equal(spy.counts.get("PRAGMA synchronous = NORMAL"), undefined, "a synced write ran without FULL");
        const before = [...spy.counts.values()].reduce((a, b) => a + b, 0);
        store.save({ hardState: hs(2), snapshot: null, entries: [], sync: false });
        assert.equal(
          [...spy.counts.values()].reduce((a, b) => a + b, 0),
          before,
          "the commit-only write ran a statement",
        );
      } finally {
        spy.restore();
      }
      assert.deepEqual(store.saveCountsSinceOpen(), { synced: 1, unsynced: 1 });
      assert.equal(storedCommit(dataDir), 0, "written before the next synced write");
      assert.equal(store.load().hardState.commit, 2, "the store gives back the commit index it holds");
      store.save({ hardState: null, snapshot: null, entries: [entry(4)] }); // sync absent: synced
      assert.deepEqual(store.saveCountsSinceOpen(), { synced: 2, unsynced: 1 });
      assert.equal(storedCommit(dataDir), 2, "the synced write carried the held commit index");
      assert.equal(synchronousSetting(store), 2);
    });
  });

  it("checks a write against the held commit index: a later hard state may not take it back", () => {
    withStore((store) => {
      store.save({ hardState: hs(0), snapshot: null, entries: [entry(1), entry(2), entry(3)] });
      store.save({ hardState: hs(3), snapshot: null, entries: [], sync: false });
      assert.throws(() => store.save({ hardState: hs(2), snapshot: null, entries: [entry(4)] }), /commit 2 < stored 3/);
      assert.throws(() => store.save({ hardState: hs(1), snapshot: null, entries: [], sync: false }), /commit 1 < stored 3/);
    });
  });

  it("a compaction writes the held commit index first, so the stored commit reaches the snapshot", () => {
    withStore((store, dataDir) => {
      store.save({ hardState: hs(0), snapshot: null, entries: [entry(1), entry(2), entry(3)] });
      store.save({ hardState: hs(3), snapshot: null, entries: [], sync: false });
      store.saveSnapshotAndCompact({ metadata: { index: 3, term: 1, confState }, data: Uint8Array.of(9) });
      assert.equal(storedCommit(dataDir), 3);
    });
  });

  it("refuses entries, a snapshot, a term or a vote written without sync, and changes nothing", () => {
    withStore((store) => {
      store.save({ hardState: hs(1), snapshot: null, entries: [entry(1), entry(2)] });
      const before = store.load();
      const snapshot: Snapshot = { metadata: { index: 2, term: 1, confState }, data: Uint8Array.of(1) };
      const refused = [
        { hardState: null, snapshot: null, entries: [entry(3)], sync: false },
        { hardState: null, snapshot, entries: [], sync: false },
        { hardState: hs(1, 2), snapshot: null, entries: [], sync: false },
        { hardState: { term: 1, vote: "b", commit: 1 }, snapshot: null, entries: [], sync: false },
      ];
      for (const write of refused) assert.throws(() => store.save(write), AssertionError);
      assert.deepEqual(store.load(), before);
      assert.equal(synchronousSetting(store), 2);
    });
  });

  it("the ack record claims an unsynced commit index only once a synced write (or close) made it durable", () => {
    withStore((store, dataDir) => {
      store.save({ hardState: hs(0), snapshot: null, entries: [entry(1), entry(2), entry(3)] });
      assert.deepEqual(recordOf(dataDir), { commit: 0, lastIndex: 3 });
      store.save({ hardState: hs(2), snapshot: null, entries: [], sync: false });
      assert.equal(recordOf(dataDir).commit, 0, "claimed before any fsync covered it");
      store.save({ hardState: null, snapshot: null, entries: [entry(4)] });
      assert.deepEqual(recordOf(dataDir), { commit: 2, lastIndex: 4 });
      store.save({ hardState: hs(3), snapshot: null, entries: [], sync: false });
      assert.equal(recordOf(dataDir).commit, 2);
    });
  });

  it("a clean close makes the unsynced commit index durable and the record says so", () => {
    const dataDir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "tenure-commit-path-")));
    try {
      const store = SqliteStorage.open({ dataDir });
      store.save({ hardState: hs(0), snapshot: null, entries: [entry(1), entry(2)] });
      store.save({ hardState: hs(2), snapshot: null, entries: [], sync: false });
      store.close();
      assert.equal(recordOf(dataDir).commit, 2);
      const again = SqliteStorage.open({ dataDir });
      assert.equal(again.load().hardState.commit, 2);
      again.close();
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/** Counts every execution of a prepared SQLite statement (all connections), by its SQL text. */
function spyStatements(): { counts: Map<string, number>; restore(): void } {
  const probe = new Database(":memory:");
  const proto = Object.getPrototypeOf(probe.prepare("SELECT 1")) as Record<string, unknown>;
  probe.close();
  const counts = new Map<string, number>();
  const originals = new Map<string, unknown>();
  for (const method of ["get", "all", "iterate", "run"]) {
    const original = proto[method] as (this: Database.Statement, ...args: unknown[]) => unknown;
    originals.set(method, original);
    proto[method] = function (this: Database.Statement, ...args: unknown[]): unknown {
      counts.set(this.source, (counts.get(this.source) ?? 0) + 1);
      return original.apply(this, args);
    };
  }
  return {
    counts,
    restore: () => {
      for (const [method, original] of originals) proto[method] = original;
    },
  };
}

/** Statements run by `saves` saves over a store whose snapshot image is `imageBytes` long. */
function statementsPerSaves(imageBytes: number, saves: number): Map<string, number> {
  let counts = new Map<string, number>();
  withStore((store) => {
    const image = new Uint8Array(imageBytes).fill(7);
    const snapshot: Snapshot = { metadata: { index: 10, term: 1, confState }, data: image };
    store.save({ hardState: hs(10), snapshot, entries: [] });
    const spy = spyStatements();
    try {
      for (let i = 11; i < 11 + saves; i++) {
        store.save({ hardState: null, snapshot: null, entries: [entry(i)] });
        store.save({ hardState: hs(i), snapshot: null, entries: [], sync: false });
      }
    } finally {
      spy.restore();
    }
    counts = spy.counts;
  });
  return counts;
}

describe("SqliteStorage commit path: save() does not read the snapshot image back", () => {
  it("runs the same statements, none reading the image, with a 1 KiB and an 8 MiB snapshot", () => {
    const small = statementsPerSaves(1024, 20);
    const big = statementsPerSaves(8 * 1024 * 1024, 20);
    const readsImage = (sql: string): boolean => /\bdata\b[^;]*\bFROM\s+snapshot\b/i.test(sql);
    for (const [sql, n] of big) assert.ok(!readsImage(sql), `save() read the snapshot image ${n} times: ${sql}`);
    assert.ok([...small.values()].reduce((a, b) => a + b, 0) >= 40, "the spy saw the saves");
    assert.deepEqual(big, small, "statements per save depend on the snapshot's size");
  });
});
