import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { guardContract } from "../../testing/kits/guard_contract.ts";
import { SqliteGuard } from "./sqlite_guard.ts";

const dir = mkdtempSync(join(tmpdir(), "tenure-guard-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

guardContract("SqliteGuard", (registry) => {
  const guard = SqliteGuard.open(join(dir, `contract-${n++}.db`), { registry });
  guard.db.exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
  const put = guard.db.prepare("INSERT INTO kv VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v");
  const get = guard.db.prepare<[string], string>("SELECT v FROM kv WHERE k = ?").pluck();
  return {
    guard,
    put: (_ctx, k, v) => void put.run(k, v),
    get: (k) => get.get(k),
    close: () => guard.close(),
  };
});

describe("SqliteGuard", () => {
  it("configures WAL and synchronous=FULL and keeps the mark across reopening", () => {
    const path = join(dir, "durable.db");
    const g = SqliteGuard.open(path, { registry: null });
    assert.equal(g.db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(g.db.pragma("synchronous", { simple: true }), 2);
    g.run("r", 42n, () => undefined);
    g.close();
    const again = SqliteGuard.open(path, { registry: null });
    assert.equal(again.highest("r"), 42n);
    assert.equal(again.tryRun("r", 41n, () => undefined).ok, false);
    again.close();
  });

  it("rolls back the protected write when the write callback throws after writing", () => {
    const g = SqliteGuard.open(join(dir, "rollback.db"), { registry: null });
    g.db.exec("CREATE TABLE t (v TEXT)");
    assert.throws(
      () =>
        g.run("r", 3n, (db) => {
          db.prepare("INSERT INTO t VALUES ('x')").run();
          throw new Error("after the insert");
        }),
      /after the insert/,
    );
    assert.equal(g.db.prepare("SELECT count(*) FROM t").pluck().get(), 0);
    assert.equal(g.highest("r"), null);
    g.close();
  });

  it("is atomic with the write across processes: accepted tokens never decrease, data = last accepted", async () => {
    const path = join(dir, "shared.db");
    const setup = new Database(path);
    setup.pragma("journal_mode = WAL");
    setup.exec(
      "CREATE TABLE accepted (seq INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL, writer TEXT NOT NULL);" +
        "CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT); INSERT INTO data VALUES ('counter', NULL);",
    );
    setup.close();
    const writers = 4;
    const perWriter = 150;
    const script = new URL("../../testing/kits/sqlite_writer.fixture.ts", import.meta.url).pathname;
    const startAt = String(Date.now() + 1500);
    const results = await Promise.all(
      Array.from({ length: writers }, (_, i) =>
        promisify(execFile)(process.execPath, ["--import", "tsx", script, path, `w${i}`, String(perWriter), startAt]),
      ),
    );
    const counts = results.map((r) => JSON.parse(r.stdout) as { accepted: number; stale: number });
    if (process.env["GUARD_DEBUG"]) console.log(JSON.stringify(counts));
    const db = new Database(path, { readonly: true });
    const rows = db.prepare("SELECT token, writer FROM accepted ORDER BY seq").all() as { token: string; writer: string }[];
    const value = db.prepare("SELECT value FROM data WHERE key = 'counter'").pluck().get();
    const mark = db.prepare("SELECT highest FROM tenure_fencing WHERE resource = 'counter'").pluck().get();
    db.close();
    assert.equal(
      counts.reduce((s, c) => s + c.accepted + c.stale, 0),
      writers * perWriter,
    );
    assert.equal(
      rows.length,
      counts.reduce((s, c) => s + c.accepted, 0),
    );
    // Both outcomes happened, and writers really interleaved (not one after another).
    assert.ok(
      counts.some((c) => c.stale > 0),
      JSON.stringify(counts),
    );
    assert.ok(new Set(rows.map((r) => r.writer)).size >= 2, JSON.stringify(counts));
    for (let i = 1; i < rows.length; i++) {
      assert.ok(BigInt(rows[i]!.token) >= BigInt(rows[i - 1]!.token), `accepted ${rows[i - 1]!.token} then ${rows[i]!.token}`);
    }
    const last = rows.at(-1)!;
    assert.equal(value, `${last.writer}:${last.token}`);
    assert.equal(mark, last.token);
  });
});
