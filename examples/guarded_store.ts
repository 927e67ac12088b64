// A small HTTP key-value store protected by Tenure's storage guard: the data and the fencing mark
// live in one SQLite file, and every write runs in one BEGIN IMMEDIATE transaction with the token
// check, so a lock holder that was paused past its lease cannot overwrite its successor's data.
//
//   node --import tsx examples/guarded_store.ts --port 8080 --db data/guarded.db [--resource kv]
//
//   PUT    /kv/<key>   body = value; header tenure-fencing-token: <token>   -> 200 | 400 | 409
//   DELETE /kv/<key>   header tenure-fencing-token: <token>                 -> 200 | 400 | 409
//   GET    /kv/<key>   (unfenced read)                                      -> 200 | 404
//   GET    /metrics    prom-client text, incl. tenure_guard_rejections_total
//
// The whole store is ONE resource (--resource, default "kv"), protected by one Tenure lock: a
// guard compares tokens of one lock only, so one lock per resource.

import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage } from "node:http";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { register } from "prom-client";
import { withFencing } from "../client-sdk/guard/http_middleware.ts";
import { SqliteGuard } from "../client-sdk/guard/sqlite_guard.ts";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "8080" },
    host: { type: "string", default: "127.0.0.1" },
    db: { type: "string", default: "data/guarded.db" },
    resource: { type: "string", default: "kv" },
  },
});

mkdirSync(dirname(args.db), { recursive: true });
const guard = SqliteGuard.open(args.db);
guard.db.exec("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, token TEXT NOT NULL)");
const upsert = guard.db.prepare<[string, string, string]>(
  "INSERT INTO kv (key, value, token) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, token = excluded.token",
);
const remove = guard.db.prepare<[string]>("DELETE FROM kv WHERE key = ?");
const read = guard.db.prepare<[string], { value: string; token: string }>("SELECT value, token FROM kv WHERE key = ?");

const keyOf = (req: IncomingMessage): string | null => {
  const m = /^\/kv\/([^/?]+)/.exec(req.url ?? "");
  return m?.[1] === undefined ? null : decodeURIComponent(m[1]);
};

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    if ((size += c.length) > 1 << 20) throw new Error("body over 1 MiB");
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const send = (res: import("node:http").ServerResponse, status: number, payload: object) => {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(payload));
};

const server = createServer(
  // Only /kv/ writes are fenced; reads and /metrics pass through.
  withFencing(
    guard,
    { resourceOf: () => args.resource, shouldFence: (req) => req.method !== "GET" && keyOf(req) !== null },
    async (req, res) => {
      if (req.method === "GET" && req.url === "/metrics") {
        res.setHeader("content-type", register.contentType);
        res.end(await register.metrics());
        return;
      }
      const key = keyOf(req);
      if (key === null) return send(res, 404, { code: "NOT_FOUND" });
      if (req.method === "GET") {
        const row = read.get(key);
        return row === undefined ? send(res, 404, { code: "NOT_FOUND", key }) : send(res, 200, { key, ...row });
      }
      const fenced = req.fenced;
      if (fenced === undefined) return send(res, 405, { code: "METHOD_NOT_ALLOWED" });
      // Read the body BEFORE entering the guard: the write callback must be synchronous. The
      // middleware already checked the token; run() checks it again atomically with the write,
      // because a newer holder may have written while the body was arriving (a 409 from here on
      // is thrown and mapped by withFencing).
      if (req.method === "PUT") {
        const value = await body(req);
        fenced.run(() => upsert.run(key, value, fenced.token.toString()));
        return send(res, 200, { key, token: fenced.token.toString() });
      }
      if (req.method === "DELETE") {
        const { changes } = fenced.run(() => remove.run(key));
        return send(res, 200, { key, deleted: changes > 0 });
      }
      send(res, 405, { code: "METHOD_NOT_ALLOWED" });
    },
  ),
);

server.listen(Number(args.port), args.host, () => {
  const port = (server.address() as import("node:net").AddressInfo).port;
  process.stdout.write(`guarded store on http://${args.host}:${port} (db ${args.db}, resource ${JSON.stringify(args.resource)})\n`);
});
const stop = () => server.close(() => (guard.close(), process.exit(0)));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
