// A leader-only worker in its own process, so a test can kill -9 it or cut it off: it runs
// election.run(value, work) and prints JSON lines with wall-clock times, so another process's
// lines can be ordered against them: leading (token), aborted (token: its leadership signal
// fired), stopped.
//
//   node --import tsx election_run_worker.ts <endpoints> <election> <value> <ttlMs> <security>
// <security>: the cluster's clientSecurity() as JSON (TLS file paths, or {"insecure":true}).

import { TenureClient } from "../../../client-sdk/index.ts";
import type { TransportSecurity } from "../../../client-sdk/tls.ts";

function say(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...fields, atMs: Date.now() })}\n`);
}

const [endpoints = "", name = "", value = "", ttl = "2000", security = "{}"] = process.argv.slice(2);
const client = new TenureClient({ endpoints: endpoints.split(","), ...(JSON.parse(security) as TransportSecurity) });
const stop = new AbortController();
process.on("SIGTERM", () => stop.abort());

await client
  .election(name)
  .run(
    value,
    async (leadership) => {
      say({ event: "leading", token: leadership.token });
      await new Promise<void>((resolve) => {
        if (leadership.signal.aborted) resolve();
        leadership.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      say({ event: "aborted", token: leadership.token });
    },
    { ttlMs: Number(ttl), signal: stop.signal },
  )
  .catch((e: unknown) => say({ event: "error", error: String(e) }));
say({ event: "stopped" });
client.close();
