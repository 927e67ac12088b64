// The harness's guard stores while another process holds the SQLite write lock (a client
// process paused mid-write): the write waits without freezing the event loop, then commits.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { GuardStores } from "./workload.ts";

describe("GuardStores under a held write lock", () => {
  it("keeps the event loop running while it waits, then writes once the lock is gone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tenure-guardstores-"));
    const stores = new GuardStores(dir, ["l"]);
    const other = new Database(join(dir, "guard-l.sqlite"));
    try {
      other.exec("BEGIN IMMEDIATE");
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      setTimeout(() => other.exec("COMMIT"), 300);
      const r = await stores.write("l", 5, 1);
      clearInterval(ticker);
      assert.deepEqual(r, { ok: true });
      assert.ok(ticks >= 5, `the event loop stalled while waiting (${ticks} ticks in ~300 ms)`);
      assert.deepEqual(stores.audit("l"), [5n]);
      assert.equal((await stores.write("l", 4, 1)).error, "STALE_FENCING_TOKEN");
    } finally {
      other.close();
      stores.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
