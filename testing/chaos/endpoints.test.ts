// The chaos suite pointed at a deployment it did not start and at the user's own guard over HTTP:
// a cluster started apart (ProcessCluster), examples/guarded_store.ts as the guarded store, our
// own client process paused as the only fault. Then the same against a broken "guard" that
// accepts every write: the checks must catch the stale writes it let through.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { ProcessCluster } from "../itest/process_cluster.ts";
import { runChaos } from "./run.ts";
import { untilCaught } from "./teeth_kit.ts";

const storeScript = new URL("../../examples/guarded_store.ts", import.meta.url).pathname;

function startGuardedStore(dbPath: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", storeScript, "--port", "0", "--db", dbPath], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("guarded store did not start")), 30_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /on (http:\/\/[^ ]+)/.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.once("exit", (code) => reject(new Error(`guarded store exited with ${code}`)));
  });
}

/** Stores every PUT and answers 200: no fencing at all. */
function startBrokenGuard(): Promise<{ server: Server; url: string }> {
  const data = new Map<string, string>();
  const server = createServer((req, res) => {
    const key = decodeURIComponent((req.url ?? "").replace(/^\/kv\//, ""));
    if (req.method === "PUT") {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        data.set(key, body);
        res.end(JSON.stringify({ key }));
      });
      return;
    }
    const value = data.get(key);
    res.statusCode = value === undefined ? 404 : 200;
    res.end(JSON.stringify(value === undefined ? { code: "NOT_FOUND" } : { key, value }));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })),
  );
}

describe("chaos against an existing deployment and a user's guard", { timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  const dir = mkdtempSync(join(tmpdir(), "tenure-chaos-ext-"));

  before(async () => {
    cluster = await ProcessCluster.start({ tickMs: 20, electionTimeoutTicks: 10 });
  });

  after(async () => {
    await cluster.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs clean with examples/guarded_store.ts as the guard, pausing only its own client", async () => {
    const store = await startGuardedStore(join(dir, "store.db"));
    const lines: string[] = [];
    try {
      const r = await runChaos({
        seconds: 15,
        seed: 21,
        topology: "three",
        clients: 4,
        locks: 1,
        outDir: join(dir, "ok"),
        endpoints: cluster.endpoints(),
        security: cluster.clientSecurity(),
        guardUrl: store.url,
        log: (l) => lines.push(l),
      });
      assert.deepEqual(r.violations, [], lines.join("\n"));
      assert.ok(r.faults["client-pause"] >= 1, lines.join("\n"));
      assert.equal(r.faults.kill + r.faults.partition + r.faults.membership, 0, "no member faults against a deployment we do not own");
      assert.ok((r.byType["write:ok"] ?? 0) >= 10, lines.join("\n"));
    } finally {
      store.child.kill("SIGTERM");
    }
  });

  it("catches a user guard that accepts stale tokens", async () => {
    const broken = await startBrokenGuard();
    try {
      // A second seed runs only when the first draw missed (untilCaught): the catch needs a pause
      // to land right after a grant, which a loaded machine can miss on one draw (it did, seed 22).
      const r = await untilCaught(
        [22, 23],
        async (seed) => {
          const lines: string[] = [];
          const run = await runChaos({
            seconds: 25,
            seed,
            topology: "three",
            clients: 4,
            locks: 1,
            outDir: join(dir, `broken-${seed}`),
            endpoints: cluster.endpoints(),
            security: cluster.clientSecurity(),
            guardUrl: broken.url,
            // A stale write needs the client process frozen right after a grant and past its lease
            // (TTL 2 s + lock-delay) while another holder writes: every pause is one, so the run
            // does not depend on the one or two long pauses the default draw gives.
            // At least 4.5 s: past TTL + lock-delay (2.5 s) there must be time left for the next
            // holder to be granted and write before the paused one wakes; with 3.7 s pauses a full
            // suite run once saw none do so (seed 22, 3 pauses, no violation to catch).
            clientPauseGrantWaitMs: 10_000,
            clientPauseMs: { min: 4500, max: 8000 },
            log: (l) => lines.push(l),
          });
          return { violations: run.violations, log: lines.join("\n") };
        },
        (v) => v.includes("resource:") && v.includes("not linearizable"),
      );
      assert.ok(r.caught, `stale accepted writes not caught:\n${r.log}`);
    } finally {
      await new Promise<void>((res) => broken.server.close(() => res()));
    }
  });
});
