// Issue 5's headline case, end to end on real processes: holder A takes a lock and writes through
// the storage guard; A is frozen with SIGSTOP past its lease; its deadline passes before B is
// granted; B acquires with a higher token and writes; A resumes and writes with its old token:
// the guard rejects A's write, and the store holds only B's write.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { ProcessCluster } from "../process_cluster.ts";
import { SqliteGuard } from "../../../client-sdk/guard/sqlite_guard.ts";
import { TenureClient } from "../../../client-sdk/index.ts";

const holderScript = new URL("./paused_holder_process.ts", import.meta.url).pathname;
// Long enough that A's first write lands well inside its lease on a loaded machine; B then waits
// out the rest of it (plus lock-delay) while A is frozen.
const TTL_MS = 4000;
const LOCK_DELAY_MS = 500;
type Event = Record<string, unknown>;

describe("the paused holder", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let holder: ChildProcess | null = null;
  const dir = mkdtempSync(join(tmpdir(), "tenure-paused-"));
  const dbPath = join(dir, "store.db");

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: LOCK_DELAY_MS, tickMs: 50 });
  });

  after(async () => {
    if (holder && holder.exitCode === null) {
      holder.kill("SIGCONT");
      holder.kill("SIGKILL");
    }
    await cluster?.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it("A's late write with its old token is rejected; the store holds only B's write", async () => {
    const events: Event[] = [];
    const waiters: { match: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
    const next = (match: (e: Event) => boolean): Promise<Event> =>
      new Promise((resolve, reject) => {
        const found = events.find(match);
        if (found) return resolve(found);
        waiters.push({ match, resolve });
        setTimeout(() => reject(new Error(`no event; saw ${JSON.stringify(events)}`)), 30_000).unref();
      });
    holder = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        holderScript,
        cluster.endpoints().join(","),
        "res",
        dbPath,
        String(TTL_MS),
        JSON.stringify(cluster.clientSecurity()),
      ],
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    createInterface({ input: holder.stdout! }).on("line", (line) => {
      const e = JSON.parse(line) as Event;
      events.push(e);
      for (const w of waiters.filter((x) => x.match(e))) w.resolve(e);
    });
    const locked = await next((e) => e["event"] === "locked");
    const first = await next((e) => e["event"] === "wrote" && e["value"] === "A1");
    assert.equal(first["signalAborted"], false);

    holder.kill("SIGSTOP");
    try {
      const b = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: "holder-b" });
      const lockB = await b.lock("res", { ttlMs: 30_000, wait: true, timeoutMs: 20_000 });
      const grantedWallMs = Date.now();
      assert.ok(lockB.token > Number(locked["token"]), "B's token is not higher than A's");
      // A's own deadline (send time + TTL*(1-rho) - margin) ended before B was granted.
      assert.ok(Number(locked["validUntilWallMs"]) < grantedWallMs, "B was granted while A could still believe it held the lock");
      const guardB = SqliteGuard.open(dbPath);
      guardB.run("res", lockB.token, (db) => {
        db.prepare("INSERT INTO kv (k, v, token) VALUES (?, ?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v, token = excluded.token").run(
          "key",
          "B1",
          String(lockB.token),
        );
      });
      guardB.close();
      await lockB.release();
      b.close();
    } finally {
      holder.kill("SIGCONT");
    }
    holder.stdin!.write("write A2\n");
    const late = await next((e) => e["value"] === "A2");
    assert.equal(late["event"], "rejected");
    assert.equal(late["code"], "STALE_FENCING_TOKEN");
    assert.equal(late["signalAborted"], true, "A's signal had not aborted by the time it wrote");
    const db = new Database(dbPath, { readonly: true });
    const row = db.prepare("SELECT v FROM kv WHERE k = 'key'").get() as { v: string };
    db.close();
    assert.equal(row.v, "B1");
  });
});
