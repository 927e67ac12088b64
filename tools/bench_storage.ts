// What the storage evidence checks cost (issue 13, point 1): at open (integrity_check against
// quick_check, the WAL chain check, the whole open + load) at N entries, and on the write path
// (saves per second with the ack record's default policy, with a record write on every save as
// a term/vote change would cost, and with no watermark writes). Prints markdown tables. Not a
// test: nothing here asserts a time.
//
//   node --import tsx tools/bench_storage.ts [--entries 100000] [--saves 2000]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import type { Entry } from "../server/core/types.ts";
import type { AckPolicy } from "../server/storage/ack_tracker.ts";
import { DB_FILE_NAME, SqliteStorage, WAL_FILE_NAME } from "../server/storage/sqlite_storage.ts";
import { checkWal } from "../server/storage/wal_check.ts";
import { AckRecordFile } from "../server/storage/ack_record.ts";
import type { AckRecord } from "../server/storage/ack_record.ts";
import { inspectReadOnly } from "../server/storage/sqlite_inspect.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

const ENTRY_BYTES = 100; // a lock-service command is tens of bytes
const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: "normal",
  data: new Uint8Array(ENTRY_BYTES).fill(index & 0xff),
});

function timeMs(run: () => void, repeats = 3): number {
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    run();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? 0;
}

function fill(store: SqliteStorage, entries: number, batch: number): void {
  store.save({ hardState: { term: 1, vote: "a", commit: 0 }, snapshot: null, entries: [] });
  for (let from = 1; from <= entries; from += batch) {
    const batchEntries: Entry[] = [];
    for (let i = from; i < from + batch && i <= entries; i++) batchEntries.push(entry(i, 1));
    store.save({ hardState: { term: 1, vote: "a", commit: from - 1 }, snapshot: null, entries: batchEntries });
  }
}

function benchOpen(root: string, entries: number): void {
  const dataDir = path.join(root, "open");
  const store = SqliteStorage.open({ dataDir });
  fill(store, entries, 500);
  store.close();
  const dbPath = path.join(dataDir, DB_FILE_NAME);
  const pragmaMs = (pragma: string): number =>
    timeMs(() => {
      const db = new Database(dbPath, { readonly: true });
      db.pragma(pragma, { simple: true });
      db.close();
    });
  const openMs = timeMs(() => SqliteStorage.open({ dataDir }).close());
  const openLoadMs = timeMs(() => {
    const s = SqliteStorage.open({ dataDir });
    s.load();
    s.close();
  });
  const inspectMs = timeMs(() => inspectReadOnly(dbPath, "bench"));
  const file = new AckRecordFile(dataDir);
  const record: AckRecord = {
    generation: 1,
    term: 1,
    vote: "a",
    commit: entries,
    lastIndex: entries,
    open: false,
    wal: null,
    identity: null,
  };
  const recordWriteMs = timeMs(() => file.write(record), 21);
  file.close();
  const bytes = fs.statSync(dbPath).size;
  console.log(`\n### Open, ${entries} entries of ${ENTRY_BYTES} bytes (raft.db ${(bytes / 2 ** 20).toFixed(1)} MiB, median of 3)\n`);
  console.log("| step | ms |\n|---|---|");
  console.log(`| PRAGMA quick_check | ${pragmaMs("quick_check").toFixed(1)} |`);
  console.log(`| PRAGMA integrity_check (used) | ${pragmaMs("integrity_check").toFixed(1)} |`);
  console.log(`| read-only inspection (integrity_check + stored progress) | ${inspectMs.toFixed(1)} |`);
  console.log(`| one ack record write (temp + fsync + rename + fsync dir; median of 21) | ${recordWriteMs.toFixed(1)} |`);
  console.log(`| SqliteStorage.open + close (all checks, 3 record writes, TRUNCATE checkpoint) | ${openMs.toFixed(1)} |`);
  console.log(`| open + load() (every row checksummed) + close | ${openLoadMs.toFixed(1)} |`);
}

function benchWalCheck(root: string): void {
  // A WAL as a crash leaves it: SQLite's auto-checkpoint (1000 pages) keeps it around 4 MiB; a
  // large snapshot install can grow it far beyond, so also one with checkpoints held off.
  console.log("\n### WAL chain check (checkWal) on a crash copy (median of 3)\n");
  console.log("| WAL | frames | ms |\n|---|---|---|");
  for (const [label, entries] of [
    ["after 2,000 one-entry saves", 2000],
    ["one 20,000-entry transaction", 20000],
  ] as const) {
    const dataDir = path.join(root, `wal-${entries}`);
    const store = SqliteStorage.open({ dataDir });
    fill(store, entries, entries === 2000 ? 1 : entries);
    const walPath = path.join(dataDir, WAL_FILE_NAME);
    let frames = 0;
    const ms = timeMs(() => {
      const check = checkWal(walPath);
      frames = "frames" in check ? check.frames : 0;
    });
    console.log(`| ${label} (${(fs.statSync(walPath).size / 2 ** 20).toFixed(1)} MiB) | ${frames} | ${ms.toFixed(1)} |`);
    store.close();
  }
}

function benchWrites(root: string, saves: number): void {
  const policies: [string, AckPolicy][] = [
    ["default (every 256 entries or 1 s)", { watermarkEntries: 256, watermarkIntervalMs: 1000 }],
    ["record on every save (= a term/vote change per save)", { watermarkEntries: 1, watermarkIntervalMs: 0 }],
    ["no watermark writes (the floor)", { watermarkEntries: Number.MAX_SAFE_INTEGER, watermarkIntervalMs: 2 ** 31 - 1 }],
  ];
  console.log(`\n### Write path: ${saves} saves of one entry + hard state (synchronous=FULL), interleaved, best of 3\n`);
  console.log("| ack record policy | saves/s | µs per save | record writes |\n|---|---|---|---|");
  const results = new Map<string, { perSecond: number; writes: number }>();
  for (let round = 0; round < 3; round++) {
    for (const [label, policy] of policies) {
      const dataDir = path.join(root, `w-${round}-${policy.watermarkEntries}`);
      const store = SqliteStorage.open({ dataDir, ackPolicy: policy });
      store.save({ hardState: { term: 1, vote: "a", commit: 0 }, snapshot: null, entries: [] });
      const before = store.ackRecordWrites();
      const start = performance.now();
      for (let i = 1; i <= saves; i++) {
        store.save({ hardState: { term: 1, vote: "a", commit: i - 1 }, snapshot: null, entries: [entry(i, 1)] });
      }
      const seconds = (performance.now() - start) / 1000;
      const writes = store.ackRecordWrites() - before;
      store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
      const best = results.get(label);
      if (best === undefined || saves / seconds > best.perSecond) results.set(label, { perSecond: saves / seconds, writes });
    }
  }
  for (const [label] of policies) {
    const r = results.get(label);
    if (r === undefined) continue;
    console.log(`| ${label} | ${r.perSecond.toFixed(0)} | ${(1e6 / r.perSecond).toFixed(0)} | ${r.writes} |`);
  }
}

function main(): void {
  const entries = arg("entries", 100_000);
  const saves = arg("saves", 2000);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tenure-bench-storage-"));
  try {
    console.log(`## bench_storage (node ${process.version}, ${os.cpus().length} cpus, ${root})`);
    benchOpen(root, entries);
    benchWalCheck(root);
    benchWrites(root, saves);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main();
