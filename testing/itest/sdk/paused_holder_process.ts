// A lock holder in its own process, so a test can freeze it with SIGSTOP: it takes the lock,
// writes through the storage guard, then on each stdin line "write VALUE" writes again with the
// token it was granted, WITHOUT checking its signal first (the paused-holder bug every lock user
// risks). It prints JSON lines: locked (token, validUntil as wall-clock ms), wrote, rejected.
//
//   node --import tsx paused_holder_process.ts <endpoints> <lockName> <dbPath> <ttlMs> <security>
// <security>: the cluster's clientSecurity() as JSON (TLS file paths, or {"insecure":true}).

import { createInterface } from "node:readline";
import { SqliteGuard } from "../../../client-sdk/guard/sqlite_guard.ts";
import { TenureClient } from "../../../client-sdk/index.ts";
import type { TransportSecurity } from "../../../client-sdk/tls.ts";

function say(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(fields)}\n`);
}

async function main(): Promise<void> {
  const [endpoints = "", name = "", dbPath = "", ttl = "1500", security = "{}"] = process.argv.slice(2);
  const client = new TenureClient({
    endpoints: endpoints.split(","),
    ...(JSON.parse(security) as TransportSecurity),
    clientId: "paused-holder",
  });
  const guard = SqliteGuard.open(dbPath);
  guard.run("setup", 1, (db) => db.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT, token TEXT)"));
  const lock = await client.lock(name, { ttlMs: Number(ttl), wait: true });
  // validUntil is on the monotonic clock; convert to wall-clock ms so another process can compare.
  say({ event: "locked", token: lock.token, validUntilWallMs: performance.timeOrigin + lock.validUntil });
  const write = (value: string): void => {
    const r = guard.tryRun(name, lock.token, (db) => {
      db.prepare("INSERT INTO kv (k, v, token) VALUES (?, ?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v, token = excluded.token").run(
        "key",
        value,
        String(lock.token),
      );
    });
    say(
      r.ok
        ? { event: "wrote", value, signalAborted: lock.signal.aborted }
        : { event: "rejected", value, code: r.error.code, signalAborted: lock.signal.aborted },
    );
  };
  write("A1");
  createInterface({ input: process.stdin }).on("line", (line) => {
    const m = /^write (\S+)$/.exec(line.trim());
    if (m?.[1]) write(m[1]);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
