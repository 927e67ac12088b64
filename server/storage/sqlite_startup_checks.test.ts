// The evidence checks at open on real files: a "crash copy" of a data directory (raft.db, its
// WAL and the ack record copied while the store is open, which is what kill -9 leaves behind),
// damaged as a disk or an operator would, must be refused with a message that says what was
// found, or (with an intact ack record: issue 13 point 2) recovered: evidence kept, the store cut
// back to what is provably intact or rebuilt empty, term and vote never back, recovery() telling
// the node to start its core in recovery; an undamaged crash copy must open with everything in it.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import type { Entry, PersistedState } from "../core/types.ts";
import { ACK_RECORD_FILE_NAME, decodeAckRecord, encodeAckRecord, readAckRecord } from "./ack_record.ts";
import { crc32 } from "./checksum.ts";
import type { AckRecord } from "./ack_record.ts";
import { StorageCorruptError } from "./raft_storage.ts";
import type { StorageWrite } from "./raft_storage.ts";
import { DB_FILE_NAME, SqliteStorage, WAL_FILE_NAME } from "./sqlite_storage.ts";
import type { SqliteStorageOptions, StorageRecovery } from "./sqlite_storage.ts";
import { WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES } from "./wal_check.ts";

const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "tenure-evidence-")));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => {
  const dir = path.join(root, `d${dirs++}`);
  fs.mkdirSync(dir);
  return dir;
};

const entry = (index: number, term: number): Entry => ({ index, term, type: "normal", data: new Uint8Array(200).fill(index & 0xff) });
const range = (from: number, to: number, term: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const write = (parts: Partial<StorageWrite>): StorageWrite => ({ hardState: null, snapshot: null, entries: [], ...parts });

/** What a member's Ready loop does: entries one batch per save, commit following. */
function fillLog(store: SqliteStorage, options: { term: number; upTo: number; batch: number }): void {
  store.save(write({ hardState: { term: options.term, vote: "a", commit: 0 } }));
  for (let from = 1; from <= options.upTo; from += options.batch) {
    const to = Math.min(options.upTo, from + options.batch - 1);
    store.save(write({ entries: range(from, to, options.term), hardState: { term: options.term, vote: "a", commit: from - 1 } }));
  }
}

/** The files kill -9 leaves: copied while the store is open (no LOCK, no -shm). */
function crashCopy(dataDir: string): string {
  const copy = newDir();
  for (const name of [DB_FILE_NAME, WAL_FILE_NAME, ACK_RECORD_FILE_NAME]) {
    const from = path.join(dataDir, name);
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(copy, name));
  }
  return copy;
}

function refusal(dataDir: string, options: Partial<SqliteStorageOptions> = {}): string {
  try {
    const store = SqliteStorage.open({ dataDir, ...options });
    const last = store.load().entries.at(-1)?.index;
    store.close();
    return `opened and served, last index ${String(last)}`;
  } catch (error) {
    assert.ok(error instanceof StorageCorruptError, `not a StorageCorruptError: ${String(error)}`);
    return error.message;
  }
}

const IDENTITY = { clusterId: "c1", nodeId: "a" };

/** A store killed after 300 entries (term 3, vote a) with the record written every 16 entries. */
function crashedStore(): { readonly dir: string; readonly store: SqliteStorage } {
  const dir = newDir();
  const store = SqliteStorage.open({ dataDir: dir, ackPolicy: { watermarkEntries: 16, watermarkIntervalMs: 60_000 } });
  store.setIdentity(IDENTITY);
  fillLog(store, { term: 3, upTo: 300, batch: 4 });
  return { dir, store };
}

function recordOf(dir: string): AckRecord {
  const r = readAckRecord(dir);
  assert.ok(r.kind === "ok", JSON.stringify(r));
  return r.record;
}

/** Opens a damaged copy that must recover: what it found, what it loads, its warnings (store left open). */
function openRecovering(dataDir: string): {
  readonly store: SqliteStorage;
  readonly recovery: StorageRecovery;
  readonly state: PersistedState;
  readonly warnings: Record<string, unknown>[];
} {
  const warnings: Record<string, unknown>[] = [];
  const store = SqliteStorage.open({ dataDir, warn: (w) => warnings.push(w) });
  const recovery = store.recovery();
  assert.ok(recovery !== null, "opened without recovering");
  return { store, recovery, state: store.load(), warnings };
}

function flipAt(file: string, offset: number): void {
  const image = fs.readFileSync(file);
  for (let i = 0; i < 8; i++) image[offset + i] = (image[offset + i] ?? 0) ^ 0x5a;
  fs.writeFileSync(file, image);
}

describe("SqliteStorage evidence checks at open", () => {
  it("an undamaged crash copy opens with every entry, term and vote (no false alarm)", () => {
    const { dir, store } = crashedStore();
    try {
      const copy = crashCopy(dir);
      assert.ok(fs.statSync(path.join(copy, WAL_FILE_NAME)).size > 0, "the WAL holds the live pages");
      const reopened = SqliteStorage.open({ dataDir: copy });
      const state = reopened.load();
      assert.equal(state.entries.length, 300);
      assert.deepStrictEqual(state.hardState, { term: 3, vote: "a", commit: 296 });
      reopened.close();
    } finally {
      store.close();
    }
  });

  for (const fraction of [0.1, 0.5, 0.9]) {
    it(`WAL bytes flipped at ${fraction * 100}% of its frames: evidence kept, WAL cut, recovers until the recorded index`, () => {
      const { dir, store } = crashedStore();
      try {
        const recorded = recordOf(dir);
        const copy = crashCopy(dir);
        const walPath = path.join(copy, WAL_FILE_NAME);
        const frameBytes = WAL_FRAME_HEADER_BYTES + 4096;
        const frames = Math.floor((fs.statSync(walPath).size - WAL_HEADER_BYTES) / frameBytes);
        const frame = Math.max(1, Math.floor(frames * fraction));
        flipAt(walPath, WAL_HEADER_BYTES + (frame - 1) * frameBytes + WAL_FRAME_HEADER_BYTES + 64);
        const damaged = fs.readFileSync(walPath);
        const { recovery, state, warnings } = openRecovering(copy);
        assert.match(
          recovery.found.join(" | "),
          new RegExp(`${walPath}: corrupt at frame ${frame} \\(byte offset ${WAL_HEADER_BYTES + (frame - 1) * frameBytes}\\)`),
        );
        assert.equal(recovery.untilIndex, recorded.lastIndex);
        const kept = path.join(copy, `${WAL_FILE_NAME}.corrupt-${recorded.generation}`);
        assert.deepEqual(recovery.evidence, [kept]);
        assert.ok(fs.readFileSync(kept).equals(damaged), "the evidence is the WAL as it was found");
        // What survives is the prefix before the damaged frame: never more than was there.
        const last = state.entries.at(-1)?.index ?? 0;
        assert.ok(last < recorded.lastIndex, `last index ${last}`);
        assert.deepEqual(
          state.entries.map((e) => e.index),
          range(1, last, 3).map((e) => e.index),
        );
        assert.equal(state.hardState.term, 3);
        assert.equal(state.hardState.vote, "a");
        assert.equal(warnings[0]?.["event"], "storage_recovery");
        assert.equal(warnings[0]?.["untilIndex"], recorded.lastIndex);
      } finally {
        store.close();
      }
    });
  }

  it("a restart in the middle of a recovery recovers again; once the log reaches untilIndex it is over", () => {
    const { dir, store } = crashedStore();
    try {
      const copy = crashCopy(dir);
      fs.rmSync(path.join(copy, WAL_FILE_NAME));
      const first = openRecovering(copy);
      const until = first.recovery.untilIndex;
      first.store.close(); // recovering still: the record keeps claiming untilIndex
      const again = openRecovering(copy);
      assert.equal(again.recovery.untilIndex, until);
      assert.match(again.recovery.found.join(" | "), /lost acknowledged data: .*last log index: expected >= \d+/);
      const last = again.state.entries.at(-1)?.index ?? 0;
      // Caught up (what the leader sends a recovering member): the entries up to untilIndex.
      again.store.save(write({ entries: range(last + 1, until, 3) }));
      again.store.close();
      const done = SqliteStorage.open({ dataDir: copy });
      assert.equal(done.recovery(), null);
      assert.equal(done.load().entries.at(-1)?.index, until);
      done.close();
    } finally {
      store.close();
    }
  });

  it("WAL truncated to half or to 30%: recovers (same salts, shorter than recorded), the truncated WAL kept", () => {
    for (const fraction of [0.5, 0.3]) {
      const { dir, store } = crashedStore();
      try {
        const copy = crashCopy(dir);
        const walPath = path.join(copy, WAL_FILE_NAME);
        fs.truncateSync(walPath, Math.floor(fs.statSync(walPath).size * fraction));
        const { recovery } = openRecovering(copy);
        assert.match(recovery.found[0] ?? "", /raft\.db-wal is \d+ bytes, but .*ack_record \(generation \d+\) says .* it was truncated/);
        assert.equal(recovery.untilIndex, recordOf(dir).lastIndex);
        assert.equal(recovery.evidence.length, 1);
      } finally {
        store.close();
      }
    }
  });

  it("a WAL cut after the last record write is NOT detected (the documented window)", () => {
    const { dir, store } = crashedStore();
    try {
      const before = readAckRecord(dir);
      assert.equal(before.kind, "ok");
      const recorded = before.kind === "ok" ? before.record : null;
      const copy = crashCopy(dir);
      const walPath = path.join(copy, WAL_FILE_NAME);
      const frameBytes = WAL_FRAME_HEADER_BYTES + 4096;
      const end = fs.statSync(walPath).size;
      // Drop the last frame only: a transaction written after the last record write.
      fs.truncateSync(walPath, end - frameBytes);
      assert.ok((recorded?.wal?.bytes ?? 0) <= end - frameBytes, "the record was written before that transaction");
      assert.match(refusal(copy), /^opened and served, last index (29\d|300)$/);
    } finally {
      store.close();
    }
  });

  it("WAL deleted after a crash: recovers (found missing, not 'empty')", () => {
    const { dir, store } = crashedStore();
    try {
      const copy = crashCopy(dir);
      fs.rmSync(path.join(copy, WAL_FILE_NAME));
      const { recovery, state } = openRecovering(copy);
      assert.match(
        recovery.found[0] ?? "",
        /raft\.db-wal is missing, but .*ack_record \(generation \d+\) says the store was open .*term >= 3, last index >= \d+\)/,
      );
      assert.deepEqual(recovery.evidence, [], "nothing to keep");
      assert.equal(recovery.untilIndex, recordOf(dir).lastIndex);
      assert.equal(state.hardState.term, 3, "term from the record (raft.db alone held term 0)");
      assert.equal(state.hardState.vote, "a");
    } finally {
      store.close();
    }
  });

  it("a process that ends without close(): SQLite's own close at exit deletes the WAL; the next open is normal", () => {
    // better-sqlite3 closes open databases when the event loop drains (not on process.exit);
    // SQLite's close checkpoints the WAL into raft.db and deletes it while the record still says
    // "open". Nothing is lost, so nothing may be reported (a member once refused to restart so).
    const dir = newDir();
    const child = `
      import { SqliteStorage } from ${JSON.stringify(new URL("./sqlite_storage.ts", import.meta.url).href)};
      const store = SqliteStorage.open({ dataDir: ${JSON.stringify(dir)} });
      store.setIdentity({ clusterId: "c1", nodeId: "a" });
      const entry = (i) => ({ index: i, term: 2, type: "normal", data: new Uint8Array(100).fill(i & 0xff) });
      for (let i = 1; i <= 40; i++) store.save({ hardState: { term: 2, vote: "a", commit: i - 1 }, snapshot: null, entries: [entry(i)] });
    `;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", child], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(fs.existsSync(path.join(dir, WAL_FILE_NAME)), false, "SQLite's close at exit deleted the WAL");
    assert.equal(recordOf(dir).open, true, "the record still says open");
    const warnings: Record<string, unknown>[] = [];
    const store = SqliteStorage.open({ dataDir: dir, warn: (w) => warnings.push(w) });
    try {
      assert.equal(store.recovery(), null, JSON.stringify(warnings));
      const state = store.load();
      assert.equal(state.entries.length, 40);
      assert.deepStrictEqual(state.hardState, { term: 2, vote: "a", commit: 39 });
    } finally {
      store.close();
    }
  });

  it("the newest WAL writes lost (hard state and log rolled back): term and vote raised to the record's, recovers", () => {
    const dir = newDir();
    const store = SqliteStorage.open({ dataDir: dir, ackPolicy: { watermarkEntries: 1, watermarkIntervalMs: 60_000 } });
    try {
      store.setIdentity(IDENTITY);
      fillLog(store, { term: 3, upTo: 40, batch: 4 });
      const older = crashCopy(dir);
      store.save(write({ hardState: { term: 4, vote: "b", commit: 36 }, entries: range(41, 48, 4) }));
      const copy = crashCopy(dir);
      // The newest writes lost as a disk loses them (zeros where they were): same salts, same
      // size, a chain that ends cleanly; only the record shows the loss.
      const walPath = path.join(copy, WAL_FILE_NAME);
      const size = fs.statSync(walPath).size;
      fs.copyFileSync(path.join(older, WAL_FILE_NAME), walPath);
      fs.truncateSync(walPath, size);
      const { recovery, state, warnings } = openRecovering(copy);
      assert.match(recovery.found.join(" | "), /lost acknowledged data: term: expected >= 4, found 3; /);
      assert.match(recovery.found.join(" | "), /last log index: expected >= 48, found 40/);
      assert.equal(recovery.untilIndex, 48);
      assert.deepStrictEqual(state.hardState, { term: 4, vote: "b", commit: 36 });
      assert.deepStrictEqual(warnings[0]?.["raisedHardState"], { term: 4, vote: "b" });
    } finally {
      store.close();
    }
  });

  it("raft.db bytes flipped in a row: moved aside, an empty store with the record's identity, hard state and untilIndex", () => {
    const { dir, store } = crashedStore();
    store.close(); // a clean close: raft.db holds everything
    const copy = crashCopy(dir);
    fs.writeFileSync(path.join(copy, "incarnation"), "another helper's file\n");
    const recorded = recordOf(copy);
    const dbPath = path.join(copy, DB_FILE_NAME);
    const db = new Database(dbPath);
    db.prepare("UPDATE entries SET data = zeroblob(200) WHERE idx = 150").run();
    db.close();
    const damaged = fs.readFileSync(dbPath);
    const { recovery, state, store: reopened } = openRecovering(copy);
    try {
      assert.match(recovery.found[0] ?? "", /table entries: index 150: checksum mismatch/);
      const aside = path.join(copy, `${DB_FILE_NAME}.corrupt-${recorded.generation}`);
      assert.deepEqual(recovery.evidence, [aside]);
      assert.ok(fs.readFileSync(path.join(aside, DB_FILE_NAME)).equals(damaged), "raft.db moved aside as it was");
      assert.equal(recovery.untilIndex, 300);
      assert.deepStrictEqual(state, { hardState: { term: 3, vote: "a", commit: 0 }, snapshot: null, entries: [] });
      assert.deepStrictEqual(reopened.identity(), IDENTITY, "not a new member: no bootstrap");
      assert.equal(fs.readFileSync(path.join(copy, "incarnation"), "utf8"), "another helper's file\n");
    } finally {
      reopened.close();
    }
  });

  it("raft.db damaged but the record predates identities: refused, nothing moved", () => {
    const dir = newDir();
    const store = SqliteStorage.open({ dataDir: dir });
    store.save(write({ hardState: { term: 2, vote: "a", commit: 0 }, entries: range(1, 5, 2) }));
    store.close();
    const db = new Database(path.join(dir, DB_FILE_NAME));
    db.prepare("UPDATE entries SET data = zeroblob(200) WHERE idx = 3").run();
    db.close();
    assert.match(
      refusal(dir),
      /table entries: index 3: checksum mismatch; raft\.db would have to be rebuilt, but .*ack_record holds no member identity/,
    );
    assert.ok(fs.existsSync(path.join(dir, DB_FILE_NAME)), "raft.db left where it was");
  });

  it("the ack record deleted or damaged: refused (the store cannot show what it acknowledged)", () => {
    const { dir, store } = crashedStore();
    try {
      const deleted = crashCopy(dir);
      fs.rmSync(path.join(deleted, ACK_RECORD_FILE_NAME));
      assert.match(refusal(deleted), /ack_record is missing, but raft\.db \(schema 2\) was always written with one/);
      const damaged = crashCopy(dir);
      flipAt(path.join(damaged, ACK_RECORD_FILE_NAME), 60);
      assert.match(refusal(damaged), /ack_record: checksum mismatch: the record of what this member acknowledged is damaged/);
    } finally {
      store.close();
    }
  });

  it("term and vote are in the record before save() returns; the watermark follows every N entries", () => {
    const dir = newDir();
    const store = SqliteStorage.open({ dataDir: dir, ackPolicy: { watermarkEntries: 10, watermarkIntervalMs: 60_000 } });
    try {
      store.save(write({ hardState: { term: 7, vote: "c", commit: 0 } }));
      const afterVote = readAckRecord(dir);
      assert.ok(afterVote.kind === "ok" && afterVote.record.term === 7 && afterVote.record.vote === "c");
      const writesBefore = store.ackRecordWrites();
      store.save(write({ entries: range(1, 9, 7) }));
      assert.equal(store.ackRecordWrites(), writesBefore, "9 entries: not yet");
      store.save(write({ entries: range(10, 10, 7) }));
      assert.equal(store.ackRecordWrites(), writesBefore + 1);
      const r = readAckRecord(dir);
      assert.ok(r.kind === "ok" && r.record.lastIndex === 10 && r.record.open);
    } finally {
      store.close();
    }
    const closed = readAckRecord(dir);
    assert.ok(closed.kind === "ok" && !closed.record.open && closed.record.lastIndex === 10, JSON.stringify(closed));
    assert.ok(!fs.existsSync(path.join(dir, WAL_FILE_NAME)), "a clean close checkpoints the WAL away");
  });

  it("an idle member's watermark catches up after the interval (timer)", async () => {
    const dir = newDir();
    const store = SqliteStorage.open({ dataDir: dir, ackPolicy: { watermarkEntries: 1000, watermarkIntervalMs: 50 } });
    try {
      store.save(write({ hardState: { term: 1, vote: "a", commit: 0 }, entries: range(1, 3, 1) }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const r = readAckRecord(dir);
      assert.ok(r.kind === "ok" && r.record.lastIndex === 3, JSON.stringify(r));
    } finally {
      store.close();
    }
  });

  it("conflict truncation below the watermark lowers the record first: no false alarm after a crash", () => {
    const dir = newDir();
    const store = SqliteStorage.open({ dataDir: dir, ackPolicy: { watermarkEntries: 1, watermarkIntervalMs: 60_000 } });
    try {
      store.save(write({ hardState: { term: 2, vote: "a", commit: 5 }, entries: range(1, 50, 2) }));
      store.save(write({ hardState: { term: 3, vote: "", commit: 5 }, entries: range(10, 12, 3) }));
      const copy = crashCopy(dir);
      const reopened = SqliteStorage.open({ dataDir: copy });
      assert.equal(reopened.load().entries.at(-1)?.index, 12);
      reopened.close();
    } finally {
      store.close();
    }
  });

  it("a store written before ack records (schema 1) gets one, with a warning", () => {
    const dir = newDir();
    const store = SqliteStorage.open({ dataDir: dir });
    store.save(write({ hardState: { term: 2, vote: "a", commit: 0 }, entries: range(1, 5, 2) }));
    store.close();
    fs.rmSync(path.join(dir, ACK_RECORD_FILE_NAME));
    const db = new Database(path.join(dir, DB_FILE_NAME));
    db.pragma("user_version = 1");
    db.close();
    const warnings: Record<string, unknown>[] = [];
    const upgraded = SqliteStorage.open({ dataDir: dir, warn: (w) => warnings.push(w) });
    assert.equal(upgraded.load().entries.length, 5);
    upgraded.close();
    assert.equal(warnings[0]?.["event"], "ack_record_created");
    const r = readAckRecord(dir);
    assert.ok(r.kind === "ok" && r.record.term === 2 && r.record.lastIndex === 5);
  });

  it("raft.db deleted, the record kept: an empty store with the record's identity and term, recovering", () => {
    const { dir, store } = crashedStore();
    try {
      const copy = crashCopy(dir);
      fs.rmSync(path.join(copy, DB_FILE_NAME));
      fs.rmSync(path.join(copy, WAL_FILE_NAME));
      const { recovery, state, store: reopened } = openRecovering(copy);
      assert.match(recovery.found.join(" | "), /lost acknowledged data: term: expected >= 3, found 0/);
      assert.equal(state.hardState.term, 3);
      assert.deepStrictEqual(reopened.identity(), IDENTITY);
    } finally {
      store.close();
    }
  });

  it("a v1 record (before identities) is read with identity null; the next write is v2 with it", () => {
    const v2 = encodeAckRecord({ generation: 1, term: 2, vote: "a", commit: 1, lastIndex: 2, open: false, wal: null, identity: null });
    const json = v2.slice(v2.indexOf("{"), -1);
    const v1Json = JSON.stringify({ generation: 1, term: 2, vote: "a", commit: 1, lastIndex: 2, open: false, wal: null });
    const v1 = `tenure-ack-record v1 crc32=${crc32(new TextEncoder().encode(v1Json)).toString(16).padStart(8, "0")} ${v1Json}\n`;
    assert.ok(json.includes('"identity":null'));
    const decoded = decodeAckRecord(v1);
    assert.ok(typeof decoded !== "string", String(decoded));
    assert.equal(decoded.identity, null);
    assert.equal(decoded.term, 2);
    const dir = newDir();
    const s1 = SqliteStorage.open({ dataDir: dir });
    s1.setIdentity(IDENTITY);
    assert.deepStrictEqual(recordOf(dir).identity, IDENTITY);
    assert.match(fs.readFileSync(path.join(dir, ACK_RECORD_FILE_NAME), "utf8"), /^tenure-ack-record v2 /);
    s1.close();
  });

  it("the record format round trips and refuses any flipped byte", () => {
    const record: AckRecord = {
      generation: 9,
      term: 4,
      vote: "b",
      commit: 10,
      lastIndex: 12,
      open: true,
      wal: { salt1: 1, salt2: 2, bytes: 3 },
      identity: { clusterId: "c1", nodeId: "b" },
    };
    const text = encodeAckRecord(record);
    assert.deepStrictEqual(decodeAckRecord(text), record);
    for (let i = 0; i < text.length - 1; i++) {
      const flipped = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 0x01) + text.slice(i + 1);
      assert.equal(typeof decodeAckRecord(flipped), "string", `byte ${i} flipped was accepted`);
    }
  });
});
