// The WAL's fsync off the event loop (wal_sync.ts) and SqliteStorage.saveInBackground on it:
// `done` only after the sync of the live WAL returned, nothing else of the store meanwhile, a
// close while it runs, and what a reopened store then holds.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { Entry } from "../core/types.ts";
import { SqliteStorage, WAL_FILE_NAME } from "./sqlite_storage.ts";
import { type SyncFile, WalSync } from "./wal_sync.ts";

function makeDataDir(): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "tenure-walsync-")));
}

/** Runs `body` in a fresh data directory, removed after it (whether it passed or threw). */
async function inDataDir(body: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = makeDataDir();
  try {
    await body(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const entry = (index: number, term = 1): Entry => ({ index, term, type: "normal", data: new Uint8Array([index % 256]) });

function opened(dataDir: string): SqliteStorage {
  const store = SqliteStorage.open({ dataDir });
  if (store.identity() === null) store.setIdentity({ clusterId: "c", nodeId: "a" });
  return store;
}

function inBackground(store: SqliteStorage, entries: Entry[], commit: number): Promise<Error | null> {
  return new Promise((resolve) => store.saveInBackground({ hardState: { term: 1, vote: "a", commit }, snapshot: null, entries }, resolve));
}

describe("WalSync", () => {
  it("syncs a descriptor of the WAL file and reports only when the sync returned", () =>
    inDataDir(async (dir) => {
      const walPath = path.join(dir, "x.db-wal");
      fs.writeFileSync(walPath, "frames");
      const calls: { fd: number; finish: (error: NodeJS.ErrnoException | null) => void }[] = [];
      const held: SyncFile = (fd, callback) => calls.push({ fd, finish: callback });
      const sync = new WalSync(walPath, held);
      const reports: (Error | null)[] = [];
      sync.sync((error) => reports.push(error));
      assert.equal(calls.length, 1);
      assert.equal(fs.fstatSync(calls[0]?.fd ?? -1).ino, fs.statSync(walPath).ino, "the descriptor names the WAL");
      assert.equal(sync.syncing(), true);
      assert.throws(() => sync.sync(() => {}), /in flight/);
      await new Promise((r) => setImmediate(r));
      assert.equal(reports.length, 0, "nothing reported before the sync returned");
      calls[0]?.finish(null);
      assert.equal(reports[0], null);
      assert.equal(sync.syncing(), false);
      sync.sync((error) => reports.push(error));
      const eio = Object.assign(new Error("EIO: i/o error"), { code: "EIO" });
      calls[1]?.finish(eio);
      assert.match(String(reports[1]?.message), /fdatasync of .*x\.db-wal failed: EIO/);
      sync.close();
    }));

  it("close() during a sync closes the descriptor only after the sync returned", () =>
    inDataDir((dir) => {
      const walPath = path.join(dir, "x.db-wal");
      fs.writeFileSync(walPath, "frames");
      let finish: ((error: NodeJS.ErrnoException | null) => void) | null = null;
      let fd = -1;
      const sync = new WalSync(walPath, (d, callback) => {
        fd = d;
        finish = callback;
      });
      let reported: Error | null | undefined;
      sync.sync((error) => {
        reported = error;
      });
      sync.close();
      assert.doesNotThrow(() => fs.fstatSync(fd), "still open while the thread pool may use it");
      (finish as unknown as (error: NodeJS.ErrnoException | null) => void)(null);
      assert.equal(reported, null);
      assert.throws(() => fs.fstatSync(fd), /EBADF/, "closed once the sync returned");
      assert.throws(() => sync.sync(() => {}), /after close/);
    }));

  it("refuses to sync a WAL path that no longer names the file it opened", () =>
    inDataDir((dir) => {
      const walPath = path.join(dir, "x.db-wal");
      fs.writeFileSync(walPath, "frames");
      const sync = new WalSync(walPath, (_fd, callback) => callback(null));
      sync.sync(() => {});
      fs.rmSync(walPath);
      fs.writeFileSync(walPath, "another file");
      assert.throws(() => sync.sync(() => {}), /replaced under an open store/);
      sync.close();
    }));
});

describe("SqliteStorage.saveInBackground", () => {
  it("reports the write durable later, counts it synced only then, and a reopened store holds it", () =>
    inDataDir(async (dir) => {
      const store = opened(dir);
      const before = store.saveCountsSinceOpen().synced;
      let reported = false;
      const done = inBackground(store, [entry(1), entry(2)], 0).then((error) => {
        reported = true;
        return error;
      });
      assert.equal(reported, false, "not reported from inside the call");
      assert.equal(store.saveCountsSinceOpen().synced, before, "not counted before its fsync returned");
      assert.equal(await done, null);
      assert.equal(store.saveCountsSinceOpen().synced, before + 1);
      assert.equal(await inBackground(store, [entry(3)], 2), null);
      store.close();
      const again = opened(dir);
      const state = again.load();
      assert.deepEqual(
        state.entries.map((e) => e.index),
        [1, 2, 3],
      );
      assert.equal(state.hardState.commit, 2);
      again.close();
    }));

  it("refuses any other call while its fsync runs (the Ready loop writes nothing else) and works on after it", () =>
    inDataDir(async (dir) => {
      const store = opened(dir);
      const done = inBackground(store, [entry(1)], 0);
      const write = { hardState: null, snapshot: null, entries: [entry(2)] };
      assert.throws(() => store.save(write), /while a background save's fsync is in flight/);
      assert.throws(() => store.load(), /in flight/);
      assert.equal(await done, null);
      store.save(write);
      assert.deepEqual(
        store.load().entries.map((e) => e.index),
        [1, 2],
      );
      store.close();
    }));

  it("a close() while its fsync runs still reports it (the close's checkpoint made it durable) and reopens whole", () =>
    inDataDir(async (dir) => {
      const store = opened(dir);
      const done = inBackground(store, [entry(1), entry(2)], 1);
      store.close();
      assert.equal(await done, null);
      assert.equal(fs.statSync(path.join(dir, WAL_FILE_NAME), { throwIfNoEntry: false })?.size ?? 0, 0, "checkpointed away");
      const again = opened(dir);
      assert.deepEqual(
        again.load().entries.map((e) => e.index),
        [1, 2],
      );
      again.close();
    }));

  it("refuses an unsynced write (a commit-index-only change has nothing to wait for)", () =>
    inDataDir((dir) => {
      const store = opened(dir);
      store.save({ hardState: { term: 1, vote: "a", commit: 0 }, snapshot: null, entries: [entry(1)] });
      assert.throws(
        () => store.saveInBackground({ hardState: { term: 1, vote: "a", commit: 1 }, snapshot: null, entries: [], sync: false }, () => {}),
        /unsynced write; use save\(\)/,
      );
      store.close();
    }));
});
