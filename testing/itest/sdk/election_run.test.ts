// election.run (Curator's LeaderSelector) across worker processes on real members over TLS
// (issue 16): the leader worker is cut off from the cluster: its leadership signal aborts before
// the next worker leads, with a higher token; then the new leader is killed with -9: the first
// worker, reconnected, campaigns again by itself and leads with a higher token still.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { ProcessCluster } from "../process_cluster.ts";
import { TcpProxy } from "../tcp_proxy.ts";

const workerScript = new URL("./election_run_worker.ts", import.meta.url).pathname;
const TTL_MS = 2_000;
const EVENT_WAIT_MS = 30_000;
type Event = { event: string; token?: number | null; isLeader?: boolean; atMs: number; worker: string };

describe("election.run hands leadership over", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  const proxies: TcpProxy[] = [];
  const workers = new Map<string, ChildProcess>();
  const events: Event[] = [];

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 200 });
  });

  after(async () => {
    for (const w of workers.values()) if (w.exitCode === null) w.kill("SIGKILL");
    await Promise.all(proxies.map((p) => p.close()));
    await cluster?.stopAll();
  });

  function start(worker: string, endpoints: readonly string[], mode: "run" | "latch" = "run"): void {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        workerScript,
        endpoints.join(","),
        "run-election",
        worker,
        String(TTL_MS),
        JSON.stringify(cluster.clientSecurity()),
        mode,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    workers.set(worker, child);
    createInterface({ input: child.stdout! }).on("line", (line) => events.push({ ...(JSON.parse(line) as Omit<Event, "worker">), worker }));
  }

  async function next(match: (e: Event) => boolean, what: string): Promise<Event> {
    const deadline = Date.now() + EVENT_WAIT_MS;
    for (;;) {
      const found = events.find(match);
      if (found) return found;
      if (Date.now() > deadline) assert.fail(`no ${what}; saw ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("on a cut-off leader (signal aborted first) and on kill -9 of the leader, each time with a higher token", async () => {
    // Worker A reaches the members through proxies of its own, so it alone can be cut off.
    for (const m of cluster.members) {
      const target = m.clientAddress;
      proxies.push(await TcpProxy.start(() => target));
    }
    start(
      "A",
      proxies.map((p) => p.address),
    );
    const aLeads = await next((e) => e.worker === "A" && e.event === "leading", "A leading");
    start("B", cluster.endpoints());

    for (const p of proxies) p.cut();
    const bLeads = await next((e) => e.worker === "B" && e.event === "leading", "B leading after A was cut off");
    const aAborted = await next((e) => e.worker === "A" && e.event === "aborted" && e.token === aLeads.token, "A's signal aborting");
    assert.ok((bLeads.token ?? 0) > (aLeads.token ?? 0), `B's token ${bLeads.token} not above A's ${aLeads.token}`);
    assert.ok(aAborted.atMs <= bLeads.atMs, `A's leadership signal aborted ${aAborted.atMs - bLeads.atMs} ms after B led`);

    // A is back; B dies without a word. A's run loop campaigns on its own and takes over.
    for (const p of proxies) p.heal();
    workers.get("B")?.kill("SIGKILL");
    const aAgain = await next((e) => e.worker === "A" && e.event === "leading" && (e.token ?? 0) > (bLeads.token ?? 0), "A leading again");
    assert.ok((aAgain.token ?? 0) > (bLeads.token ?? 0));

    // SIGTERM ends run(): the leadership is resigned and the worker says it stopped.
    workers.get("A")?.kill("SIGTERM");
    await next((e) => e.worker === "A" && e.event === "stopped", "A stopping");

    // election.latch (Curator's LeaderLatch) through the same proxies: isLeader() turns true with
    // a higher token, and false once the proxies are cut (before its lease can have expired
    // at the members: the SDK's validity is conservative).
    start(
      "L",
      proxies.map((p) => p.address),
      "latch",
    );
    const lLeads = await next((e) => e.worker === "L" && e.event === "latch" && e.isLeader === true, "L's latch leading");
    assert.ok((lLeads.token ?? 0) > (aAgain.token ?? 0), `L's token ${lLeads.token} not above A's ${aAgain.token}`);
    for (const p of proxies) p.cut();
    const lLost = await next((e) => e.worker === "L" && e.event === "latch" && e.isLeader === false, "L's latch losing");
    assert.ok(lLost.atMs - lLeads.atMs < TTL_MS + 5_000, "isLeader() turned false within the TTL and the grace");
    workers.get("L")?.kill("SIGTERM");
    await next((e) => e.worker === "L" && e.event === "stopped", "L stopping");
  });
});
