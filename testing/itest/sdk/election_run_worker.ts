// A leader-only worker in its own process, so a test can kill -9 it or cut it off: it runs
// election.run(value, work) and prints JSON lines with wall-clock times, so another process's
// lines can be ordered against them: leading (token), aborted (token: its leadership signal
// fired), stopped. With mode "latch" it holds election.latch(value) instead and prints
// {event: "latch", isLeader, token} whenever isLeader() changes (polled every 20 ms).
//
//   node --import tsx election_run_worker.ts <endpoints> <election> <value> <ttlMs> <security> [run|latch]
// <security>: the cluster's clientSecurity() as JSON (TLS file paths, or {"insecure":true}).

import { TenureClient } from "../../../client-sdk/index.ts";
import type { TransportSecurity } from "../../../client-sdk/tls.ts";

function say(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...fields, atMs: Date.now() })}\n`);
}

const [endpoints = "", name = "", value = "", ttl = "2000", security = "{}", mode = "run"] = process.argv.slice(2);
// leaderHints "listed": worker A reaches the members through proxies of its own; a hint naming
// a member's own address would bypass them, and cutting the proxies would not cut A off.
const client = new TenureClient({
  endpoints: endpoints.split(","),
  leaderHints: "listed",
  ...(JSON.parse(security) as TransportSecurity),
});
const stop = new AbortController();
process.on("SIGTERM", () => stop.abort());

if (mode === "latch") {
  const latch = client.election(name).latch(value, { ttlMs: Number(ttl) });
  let was = false;
  const poll = setInterval(() => {
    const now = latch.isLeader();
    if (now !== was) say({ event: "latch", isLeader: now, token: latch.leadership?.token ?? null });
    was = now;
  }, 20);
  await new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve(), { once: true }));
  clearInterval(poll);
  await latch.close();
  say({ event: "stopped" });
  client.close();
  process.exit(0);
}

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
