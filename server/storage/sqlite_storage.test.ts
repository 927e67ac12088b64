import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import type { Entry } from "../core/types.ts";
import { LOCK_FILE_NAME } from "./lock_file.ts";
import { StorageCorruptError, StorageLockedError } from "./raft_storage.ts";
import type { StorageWrite } from "./raft_storage.ts";
import { DB_FILE_NAME, SqliteStorage } from "./sqlite_storage.ts";
import { runStorageContract } from "../../testing/kits/storage_contract.ts";
import type { StorageCorruption, StorageHarness } from "../../testing/kits/storage_contract.ts";

function makeDataDir(): string {
  // realpath: the store names its resolved directory in errors (tmpdir may be a symlink).
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "tenure-storage-")));
}

/** Damages the closed store through a second connection, as a disk or operator fault would. */
function corruptDb(dataDir: string, corruption: StorageCorruption): void {
  const db = new Database(path.join(dataDir, DB_FILE_NAME));
  try {
    switch (corruption.kind) {
      case "flipEntryByte": {
        const row = db.prepare("SELECT data FROM entries WHERE idx = ?").get(corruption.index);
        const data = Buffer.from((row as { data: Buffer }).data);
        data[0] = (data[0] ?? 0) ^ 0x01;
        db.prepare("UPDATE entries SET data = ? WHERE idx = ?").run(data, corruption.index);
        return;
      }
      case "deleteEntry": {
        const result = db.prepare("DELETE FROM entries WHERE idx = ?").run(corruption.index);
        assert.equal(result.changes, 1);
        return;
      }
      case "flipHardStateTerm": {
        const row = db.prepare("SELECT term FROM hard_state WHERE id = 1").get();
        const term = (row as { term: number }).term ^ 1;
        db.prepare("UPDATE hard_state SET term = ? WHERE id = 1").run(term);
        return;
      }
    }
  } finally {
    db.close();
  }
}

function makeHarness(): StorageHarness & { readonly dataDir: string } {
  const dataDir = makeDataDir();
  let current = SqliteStorage.open({ dataDir });
  return {
    dataDir,
    store: current,
    reopen: () => {
      current.close();
      current = SqliteStorage.open({ dataDir });
      return current;
    },
    cleanup: () => {
      current.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    corrupt: (corruption) => {
      current.close();
      corruptDb(dataDir, corruption);
    },
  };
}

runStorageContract("SqliteStorage", makeHarness);

function withHarness(body: (harness: ReturnType<typeof makeHarness>) => void): void {
  const harness = makeHarness();
  try {
    body(harness);
  } finally {
    harness.cleanup();
  }
}

const entry = (index: number, term: number, data: Uint8Array): Entry => ({
  index,
  term,
  type: "normal",
  data,
});

const appendWrite = (entries: Entry[]): StorageWrite => ({
  hardState: { term: entries.at(-1)?.term ?? 0, vote: "a", commit: 0 },
  snapshot: null,
  entries,
});

/** A pid that is certainly not running: a child that has already exited. */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ["-e", ""]).pid;
  assert.ok(pid !== undefined && pid > 0);
  return pid;
}

describe("SqliteStorage on disk", () => {
  it("names the data directory, table and index when it refuses a corrupt row", () => {
    withHarness(({ store, reopen, corrupt, dataDir }) => {
      store.save(appendWrite([1, 2, 3].map((i) => entry(i, 1, Uint8Array.of(i)))));
      corrupt?.({ kind: "flipEntryByte", index: 2 });
      assert.throws(
        () => reopen().load(),
        (e: unknown) =>
          e instanceof StorageCorruptError && e.message.includes(dataDir) && /table entries: index 2: checksum mismatch/.test(e.message),
      );
    });
  });

  it("refuses a database file with a byte flipped on disk", () => {
    withHarness(({ store, reopen, dataDir }) => {
      const marker = new TextEncoder().encode("tenure-raw-flip-marker-0123456789abcdef");
      store.save(appendWrite([entry(1, 1, marker)]));
      store.close(); // checkpoints the WAL into raft.db
      const file = path.join(dataDir, DB_FILE_NAME);
      const image = fs.readFileSync(file);
      const offset = image.indexOf(Buffer.from(marker));
      assert.ok(offset > 0, "marker not found in the database file");
      image[offset + 5] = (image[offset + 5] ?? 0) ^ 0x20;
      fs.writeFileSync(file, image);
      assert.throws(() => reopen().load(), StorageCorruptError);
    });
  });

  it("refuses a data directory whose raft.db is not a database", () => {
    const dataDir = makeDataDir();
    try {
      fs.writeFileSync(path.join(dataDir, DB_FILE_NAME), "x".repeat(4096));
      assert.throws(() => SqliteStorage.open({ dataDir }), StorageCorruptError);
      assert.ok(!fs.existsSync(path.join(dataDir, LOCK_FILE_NAME)), "LOCK left behind");
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("rows are visible to another connection as soon as save() returns", () => {
    withHarness(({ store, dataDir }) => {
      store.save(appendWrite([entry(1, 1, Uint8Array.of(7)), entry(2, 1, Uint8Array.of(8))]));
      const reader = new Database(path.join(dataDir, DB_FILE_NAME), { readonly: true });
      try {
        assert.equal(reader.pragma("journal_mode", { simple: true }), "wal");
        const count = reader.prepare("SELECT COUNT(*) AS n FROM entries").get();
        assert.deepStrictEqual(count, { n: 2 });
        const hard = reader.prepare("SELECT term, vote FROM hard_state").get();
        assert.deepStrictEqual(hard, { term: 1, vote: "a" });
      } finally {
        reader.close();
      }
    });
  });

  it("save() is one transaction: a failure on its last row rolls back its first", () => {
    withHarness(({ store, dataDir }) => {
      store.save(appendWrite([entry(1, 1, Uint8Array.of(1))]));
      const before = store.load();
      // A trigger makes the hard-state row (written after the entries) fail inside save().
      const saboteur = new Database(path.join(dataDir, DB_FILE_NAME));
      try {
        saboteur.exec("CREATE TRIGGER sabotage BEFORE INSERT ON hard_state BEGIN " + "SELECT RAISE(ABORT, 'injected fault'); END");
      } finally {
        saboteur.close();
      }
      const next = appendWrite([entry(2, 2, Uint8Array.of(2)), entry(3, 2, Uint8Array.of(3))]);
      assert.throws(() => store.save(next), /injected fault/);
      assert.deepStrictEqual(store.load(), before);
    });
  });

  it("a second open of an open directory throws StorageLockedError; close releases it", () => {
    withHarness(({ store, reopen, dataDir }) => {
      assert.throws(
        () => SqliteStorage.open({ dataDir }),
        (e: unknown) => e instanceof StorageLockedError && e.message.includes(dataDir) && e.message.includes(String(process.pid)),
      );
      const lockPath = path.join(dataDir, LOCK_FILE_NAME);
      assert.equal(fs.readFileSync(lockPath, "utf8").trim(), String(process.pid));
      store.close();
      assert.ok(!fs.existsSync(lockPath), "close() must remove LOCK");
      reopen().load();
    });
  });

  it("refuses a directory locked by another live process", async () => {
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    const dataDir = makeDataDir();
    try {
      assert.ok(child.pid !== undefined);
      fs.writeFileSync(path.join(dataDir, LOCK_FILE_NAME), `${child.pid}\n`);
      assert.throws(
        () => SqliteStorage.open({ dataDir }),
        (e: unknown) => e instanceof StorageLockedError && e.message.includes(`pid ${child.pid}`),
      );
    } finally {
      child.kill();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("takes over a stale LOCK: dead pid, garbage, or this pid from a previous life", () => {
    for (const content of [`${deadPid()}\n`, "", "not a pid", `${process.pid}\n`]) {
      const dataDir = makeDataDir();
      try {
        fs.writeFileSync(path.join(dataDir, LOCK_FILE_NAME), content);
        const store = SqliteStorage.open({ dataDir });
        const lock = fs.readFileSync(path.join(dataDir, LOCK_FILE_NAME), "utf8");
        assert.equal(lock.trim(), String(process.pid), `took over ${JSON.stringify(content)}`);
        store.close();
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    }
  });
});
