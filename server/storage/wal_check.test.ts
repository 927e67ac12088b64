// wal_check.ts on real SQLite WAL files: written by better-sqlite3 with checkpointing off, copied
// while the connection is open (so the WAL holds every frame), then damaged. Each damage case
// also asks SQLite itself what it recovers from the damaged copy, to show the premise: SQLite
// silently drops committed rows, and only our check says so.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES, checkWal, walChecksum } from "./wal_check.ts";
import type { WalCheck } from "./wal_check.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "tenure-walcheck-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let caseCount = 0;

interface WalCopy {
  readonly dbPath: string;
  readonly walPath: string;
  /** Frames per committed transaction, in order (from SQLite's own view of the WAL). */
  readonly pageSizeBytes: number;
}

/** Writes `transactions` transactions of `rowsPerTransaction` rows with checkpoints off and copies
 *  raft.db and its WAL (the copy of raft.db holds only the schema-less first page). */
function writeWal(options: {
  transactions: number;
  rowsPerTransaction: number;
  checkpointAfter?: number;
  extraAfterCheckpoint?: number;
}): WalCopy {
  const dir = path.join(root, `case-${caseCount++}`);
  fs.mkdirSync(dir);
  const livePath = path.join(dir, "live.db");
  const db = new Database(livePath);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("wal_autocheckpoint = 0");
  db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
  let k = 0;
  const commit = db.transaction((rows: number) => {
    for (let i = 0; i < rows; i++, k++) insert.run(k, Buffer.alloc(300, k & 0xff));
  });
  for (let t = 0; t < options.transactions; t++) {
    commit(options.rowsPerTransaction);
    if (t + 1 === options.checkpointAfter) {
      db.pragma("wal_checkpoint(PASSIVE)");
      for (let e = 0; e < (options.extraAfterCheckpoint ?? 1); e++) commit(1); // restarts the WAL: new salts
      break;
    }
  }
  const dbPath = path.join(dir, "copy.db");
  fs.copyFileSync(livePath, dbPath);
  fs.copyFileSync(`${livePath}-wal`, `${dbPath}-wal`);
  const pageSizeBytes = db.pragma("page_size", { simple: true }) as number;
  db.close();
  return { dbPath, walPath: `${dbPath}-wal`, pageSizeBytes };
}

/** Rows SQLite itself recovers from a copy of (db, wal): what a member would have served. */
function rowsSqliteSees(copy: WalCopy): number {
  const dir = fs.mkdtempSync(path.join(root, "sqlite-view-"));
  const dbPath = path.join(dir, "view.db");
  fs.copyFileSync(copy.dbPath, dbPath);
  if (fs.existsSync(copy.walPath)) fs.copyFileSync(copy.walPath, `${dbPath}-wal`);
  const db = new Database(dbPath);
  try {
    const hasTable = db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 't'").get() as { n: number };
    if (hasTable.n === 0) return 0;
    return (db.prepare("SELECT COUNT(*) AS n FROM t").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function frameBytes(copy: WalCopy): number {
  return WAL_FRAME_HEADER_BYTES + copy.pageSizeBytes;
}

function frameAt(copy: WalCopy, offset: number): number {
  return Math.floor((offset - WAL_HEADER_BYTES) / frameBytes(copy)) + 1;
}

function flipBytes(file: string, offset: number, count = 8): void {
  const image = fs.readFileSync(file);
  for (let i = 0; i < count; i++) image[offset + i] = (image[offset + i] ?? 0) ^ 0xa5;
  fs.writeFileSync(file, image);
}

function kindOf(check: WalCheck): string {
  return check.kind;
}

describe("checkWal on real SQLite WAL files", () => {
  it("a WAL as SQLite wrote it is clean: every frame chains, the last one is a commit", () => {
    const copy = writeWal({ transactions: 40, rowsPerTransaction: 5 });
    const check = checkWal(copy.walPath);
    assert.equal(check.kind, "clean", JSON.stringify(check));
    if (check.kind !== "clean") return;
    assert.equal(check.pageSizeBytes, copy.pageSizeBytes);
    assert.equal(check.frames, (fs.statSync(copy.walPath).size - WAL_HEADER_BYTES) / frameBytes(copy));
    assert.equal(check.chainFrames, check.frames);
    assert.equal(check.lastCommitFrame, check.frames);
    assert.equal(rowsSqliteSees(copy), 200);
  });

  for (const fraction of [0.1, 0.5, 0.9]) {
    it(`eight bytes flipped at ${fraction * 100}% of the WAL: corrupt, naming the frame and byte offset`, () => {
      const copy = writeWal({ transactions: 40, rowsPerTransaction: 5 });
      const bytes = fs.statSync(copy.walPath).size;
      // Inside a page, past the frame header, so it is the page data that is damaged.
      const frame = frameAt(copy, Math.floor(bytes * fraction));
      const offset = WAL_HEADER_BYTES + (frame - 1) * frameBytes(copy) + WAL_FRAME_HEADER_BYTES + 100;
      flipBytes(copy.walPath, offset);
      const check = checkWal(copy.walPath);
      assert.equal(check.kind, "corrupt", JSON.stringify(check));
      if (check.kind !== "corrupt") return;
      assert.equal(check.frame, frame);
      assert.equal(check.offsetBytes, WAL_HEADER_BYTES + (frame - 1) * frameBytes(copy));
      assert.match(check.detail, new RegExp(`frame ${frame}: checksum mismatch, yet commit frame \\d+`));
      // The premise: SQLite itself recovers fewer rows and says nothing.
      assert.ok(rowsSqliteSees(copy) < 200, `SQLite still saw ${rowsSqliteSees(copy)} rows`);
    });
  }

  it("a flipped frame header checksum or salt is corrupt too (the next frames vouch for it)", () => {
    for (const field of [16, 8]) {
      const copy = writeWal({ transactions: 20, rowsPerTransaction: 5 });
      const frame = 5;
      flipBytes(copy.walPath, WAL_HEADER_BYTES + (frame - 1) * frameBytes(copy) + field, 4);
      const check = checkWal(copy.walPath);
      assert.equal(check.kind, "corrupt", `field at ${field}: ${JSON.stringify(check)}`);
      if (check.kind === "corrupt") assert.equal(check.frame, frame);
    }
  });

  it("a WAL cut in the middle of a frame is a torn tail: SQLite keeps the committed prefix", () => {
    const copy = writeWal({ transactions: 40, rowsPerTransaction: 5 });
    const bytes = fs.statSync(copy.walPath).size;
    fs.truncateSync(copy.walPath, Math.floor(bytes / 2) + 7);
    const check = checkWal(copy.walPath);
    assert.equal(check.kind, "tornTail", JSON.stringify(check));
    if (check.kind !== "tornTail") return;
    assert.ok(check.lastCommitFrame > 0 && check.lastCommitFrame <= check.frames);
    // Not detectable from the WAL alone: this is what the ack record's watermark is for.
    assert.ok(rowsSqliteSees(copy) < 200);
  });

  it("a WAL cut at a frame boundary before the last commit: torn tail, or clean when the cut lands on a commit", () => {
    const copy = writeWal({ transactions: 40, rowsPerTransaction: 5 });
    const full = checkWal(copy.walPath);
    assert.equal(full.kind, "clean");
    const frames = full.kind === "clean" ? full.frames : 0;
    fs.truncateSync(copy.walPath, WAL_HEADER_BYTES + Math.floor(frames / 2) * frameBytes(copy));
    assert.ok(["clean", "tornTail"].includes(kindOf(checkWal(copy.walPath))));
  });

  it("uncommitted frames after the last commit are a torn tail at the first of them", () => {
    const copy = writeWal({ transactions: 10, rowsPerTransaction: 40 });
    const full = checkWal(copy.walPath);
    assert.equal(full.kind, "clean");
    const frames = full.kind === "clean" ? full.frames : 0;
    fs.truncateSync(copy.walPath, WAL_HEADER_BYTES + (frames - 1) * frameBytes(copy)); // drop the last commit frame
    const check = checkWal(copy.walPath);
    assert.equal(check.kind, "tornTail", JSON.stringify(check));
    if (check.kind !== "tornTail") return;
    assert.equal(check.tornAtFrame, check.lastCommitFrame + 1);
    assert.ok(check.tornAtFrame < frames);
  });

  it("stale uncommitted frames that chain among themselves but hold no commit are not proof", () => {
    // What recovery after a crash mid-transaction, then a shorter transaction, leaves: a frame
    // overwritten, then frames of the dead transaction that re-verify but never commit.
    const copy = writeWal({ transactions: 10, rowsPerTransaction: 40 });
    const full = checkWal(copy.walPath);
    const frames = full.kind === "clean" ? full.frames : 0;
    fs.truncateSync(copy.walPath, WAL_HEADER_BYTES + (frames - 1) * frameBytes(copy));
    const torn = checkWal(copy.walPath);
    assert.equal(torn.kind, "tornTail");
    const firstStale = torn.kind === "tornTail" ? torn.tornAtFrame : 0;
    flipBytes(copy.walPath, WAL_HEADER_BYTES + (firstStale - 1) * frameBytes(copy) + WAL_FRAME_HEADER_BYTES);
    assert.equal(kindOf(checkWal(copy.walPath)), "tornTail");
  });

  it("damage inside the last transaction cannot be told from a torn tail (the documented limit)", () => {
    const copy = writeWal({ transactions: 20, rowsPerTransaction: 5 });
    const bytes = fs.statSync(copy.walPath).size;
    flipBytes(copy.walPath, bytes - 100);
    assert.equal(kindOf(checkWal(copy.walPath)), "tornTail");
  });

  it("after a checkpoint SQLite restarts the WAL: older frames with other salts are clean, not torn", () => {
    const copy = writeWal({ transactions: 30, rowsPerTransaction: 5, checkpointAfter: 30, extraAfterCheckpoint: 2 });
    const check = checkWal(copy.walPath);
    assert.equal(check.kind, "clean", JSON.stringify(check));
    if (check.kind !== "clean") return;
    assert.ok(check.frames > check.chainFrames, "the old generation's frames are still in the file");
    assert.equal(check.lastCommitFrame, check.chainFrames);
    assert.equal(rowsSqliteSees(copy), 152);
  });

  it("a damaged WAL header that frames still vouch for is corrupt at frame 0", () => {
    for (const [offset, count] of [
      [0, 4], // magic
      [24, 8], // header checksum
      [4, 4], // format version
    ] as const) {
      const copy = writeWal({ transactions: 10, rowsPerTransaction: 5 });
      flipBytes(copy.walPath, offset, count);
      const check = checkWal(copy.walPath, copy.pageSizeBytes);
      assert.equal(check.kind, "corrupt", `header bytes ${offset}+${count}: ${JSON.stringify(check)}`);
      if (check.kind === "corrupt") assert.equal(check.frame, 0);
      assert.equal(rowsSqliteSees(copy), 0, "SQLite ignores the whole WAL");
    }
  });

  it("absent and shorter-than-a-header WALs are reported as such", () => {
    const copy = writeWal({ transactions: 1, rowsPerTransaction: 1 });
    fs.truncateSync(copy.walPath, 0);
    assert.deepStrictEqual(checkWal(copy.walPath), { kind: "empty", bytes: 0 });
    fs.rmSync(copy.walPath);
    assert.deepStrictEqual(checkWal(copy.walPath), { kind: "absent" });
  });

  it("the big-endian checksum variant: a WAL re-signed big-endian is read by SQLite and is clean", () => {
    const copy = writeWal({ transactions: 10, rowsPerTransaction: 5 });
    resignBigEndian(copy);
    const check = checkWal(copy.walPath);
    assert.equal(check.kind, "clean", JSON.stringify(check));
    assert.equal(rowsSqliteSees(copy), 50, "SQLite accepts our big-endian checksums");
  });
});

/** Rewrites the magic to 0x377f0683 and every checksum with big-endian words. */
function resignBigEndian(copy: WalCopy): void {
  const image = new Uint8Array(fs.readFileSync(copy.walPath));
  const view = new DataView(image.buffer);
  view.setUint32(0, 0x377f0683);
  let seed = walChecksum([0, 0], image.subarray(0, 24), true);
  view.setUint32(24, seed[0]);
  view.setUint32(28, seed[1]);
  const step = frameBytes(copy);
  for (let at = WAL_HEADER_BYTES; at + step <= image.length; at += step) {
    seed = walChecksum(seed, image.subarray(at, at + 8), true);
    seed = walChecksum(seed, image.subarray(at + WAL_FRAME_HEADER_BYTES, at + step), true);
    view.setUint32(at + 16, seed[0]);
    view.setUint32(at + 20, seed[1]);
  }
  fs.writeFileSync(copy.walPath, image);
}
