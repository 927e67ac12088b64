// A concurrent writer for sqlite_guard.test.ts, run in a child process: it opens the shared
// database file and makes `count` guarded writes with random, loosely rising tokens. Each accepted
// write appends to an accepted-log table INSIDE the guard transaction, so the log's rowid order
// is the commit order, and sets the one protected value.

import { SqliteGuard } from "../../client-sdk/guard/sqlite_guard.ts";

const [path, id, countArg, startAtArg] = process.argv.slice(2);
if (path === undefined || id === undefined || countArg === undefined) throw new Error("usage: path id count [startAtMs]");
const guard = SqliteGuard.open(path, { registry: null });
// Start together (process start-up times differ by more than a whole run of writes).
const startAt = Number(startAtArg ?? 0);
while (Date.now() < startAt) await new Promise((r) => setTimeout(r, 1));
let accepted = 0;
let stale = 0;
for (let i = 0; i < Number(countArg); i++) {
  // Rising with wall-clock time plus jitter, so writers that overlap overtake each other (both
  // outcomes are frequent, equal tokens happen) and a writer that starts late on a loaded
  // machine still gets tokens above those of one that already finished.
  const elapsedMs = Math.max(0, Date.now() - startAt);
  const token = BigInt(elapsedMs * 10 + 1 + Math.floor(Math.random() * 25));
  const r = guard.tryRun("counter", token, (db) => {
    db.prepare("INSERT INTO accepted (token, writer) VALUES (?, ?)").run(token.toString(), id);
    db.prepare("UPDATE data SET value = ? WHERE key = 'counter'").run(`${id}:${token}`);
  });
  if (r.ok) accepted++;
  else stale++;
}
guard.close();
process.stdout.write(JSON.stringify({ accepted, stale }));
