// `npm start` as a user runs it: the launcher starts three tenured processes, clients can take
// a lock, Ctrl-C (SIGINT) stops every voter cleanly, and a second start resumes the same
// cluster with its locks and token counter. `npm start -- --witness` runs two voters and a
// tenure-witness the same way. Both run mutual TLS with the certificates the launcher creates
// under the data directory (tls/): the clients here use its "dev" client certificate, as the
// examples do by default (examples/leader_worker.ts is run against it with only --data-dir).

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

const launcher = new URL("../../tools/local_cluster.ts", import.meta.url).pathname;
const workerScript = new URL("../../examples/leader_worker.ts", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "tenure-local-"));
// Fixed ports below Linux's ephemeral range (32768+), where other tests' port-0 listeners and
// outgoing connections live, so the launcher's base+N ports cannot collide with them.
const basePort = 20000 + Math.floor(Math.random() * 5000);
const endpoints = [1, 2, 3].map((i) => `127.0.0.1:${basePort + i}`);
// Ports far enough from the three-voter cluster's that the two never collide.
const witnessBasePort = basePort + 6000;
let running: ChildProcess | null = null;

/** The launcher's "dev" client certificate under `dir`/tls, as the examples find it. */
function devCertificate(dir: string): TransportSecurity {
  const tls = join(dir, "tls");
  return { tls: { caFile: join(tls, "ca.pem"), certFile: join(tls, "client-dev.pem"), keyFile: join(tls, "client-dev.key") } };
}

after(async () => {
  // SIGINT lets the launcher stop its tenured children; SIGKILL would orphan them.
  if (running && running.exitCode === null) {
    const child = running;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGINT");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  rmSync(dataDir, { recursive: true, force: true });
});

type Obj = Record<string, unknown>;

function launch(
  extra: readonly string[] = ["--data-dir", dataDir, "--base-port", String(basePort)],
): Promise<{ child: ChildProcess; output: string[] }> {
  const child = spawn(process.execPath, ["--import", "tsx", launcher, ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  running = child;
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Stop what did start, so the next test does not meet a half-started cluster.
      child.kill("SIGINT");
      reject(new Error(`cluster did not start: ${output.slice(-6).join(" | ")}`));
    }, 40_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      // The launcher's own line once every member has logged {"event":"ready"} (issue 15).
      if (line.startsWith("cluster ready: every member serves, leader ")) {
        clearTimeout(timer);
        resolve({ child, output });
      }
    });
    child.once("exit", (code) => reject(new Error(`launcher exited with ${code}: ${output.slice(-6).join(" | ")}`)));
  });
}

async function stopWithCtrlC(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGINT");
  return exited;
}

describe("npm start", { timeout: 120_000 }, () => {
  let token = "";

  it("starts three voters, prints the endpoints, serves a lock, and stops on Ctrl-C", async () => {
    const { child, output } = await launch();
    assert.ok(
      output.some((l) => l.includes(endpoints.join(","))),
      "endpoints not printed",
    );
    assert.ok(
      output.some((l) => l.includes(join(dataDir, "tls", "ca.pem"))),
      "the CA file is not printed",
    );
    const c = new TestClient(endpoints, devCertificate(dataDir));
    const g = await c.call<Obj>("Lease", "Grant", { clientId: "demo", seq: 1, ttlMs: 3_600_000 }, 20_000);
    assert.ok(g.ok, g.ok ? "" : g.details);
    const a = await c.call<Obj>("Lock", "Acquire", { clientId: "demo", seq: 3, name: "demo", leaseId: g.value["leaseId"], wait: false });
    assert.ok(a.ok, a.ok ? "" : a.details);
    token = String(a.value["token"]);
    c.close();
    assert.equal(await stopWithCtrlC(child), 0);
    assert.equal(output.filter((l) => l.includes('"event":"stopped"')).length, 3, "not every voter stopped cleanly");
  });

  it("a second start resumes the cluster with its lock and token counter", async () => {
    const { child, output } = await launch();
    assert.ok(output.some((l) => l.includes("resumed")));
    const c = new TestClient(endpoints, devCertificate(dataDir));
    const s = await c.call<Obj>("Lock", "Status", { name: "demo" }, 20_000);
    assert.ok(s.ok, s.ok ? "" : s.details);
    assert.equal(String((s.value["holder"] as Obj)["token"]), token);
    c.close();
    // The example with its defaults but the data directory and ports: npm start's dev certificate.
    const worker = spawn(process.execPath, ["--import", "tsx", workerScript, "--data-dir", dataDir, "--endpoints", endpoints.join(",")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const events: string[] = [];
    createInterface({ input: worker.stdout! }).on("line", (l) => events.push(l));
    createInterface({ input: worker.stderr! }).on("line", (l) => events.push(l));
    try {
      await until("the example leading over TLS", 30_000, () => events.some((l) => l.includes('"event":"work"')), 50).catch(() =>
        assert.fail(`examples/leader_worker.ts did not work: ${events.slice(-5).join(" | ")}`),
      );
    } finally {
      const exited = new Promise((resolve) => worker.once("exit", resolve));
      worker.kill("SIGTERM");
      const stuck = setTimeout(() => worker.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(stuck);
    }
    assert.equal(await stopWithCtrlC(child), 0);
  });

  it("stops the cluster when its parent dies without passing SIGTERM on (npm does that)", async () => {
    // A shell in npm's place: it runs the launcher in the background and exits on SIGTERM.
    const command = [process.execPath, "--import", "tsx", launcher, "--data-dir", dataDir, "--base-port", String(basePort)]
      .map((a) => `'${a}'`)
      .join(" ");
    const parent = spawn("sh", ["-c", `${command} & wait`], { stdio: ["ignore", "pipe", "pipe"] });
    const output: string[] = [];
    const closed = new Promise<void>((resolve) => parent.stdout!.once("close", () => resolve()));
    createInterface({ input: parent.stdout! }).on("line", (l) => output.push(l));
    await until("cluster ready under the shell", 40_000, () => output.some((l) => l.startsWith("cluster ready:")), 50);
    parent.kill("SIGTERM");
    // The pipe closes only when the launcher and every member have exited.
    await until("every process gone", 20_000, async () => {
      await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
      return parent.stdout!.closed;
    });
    assert.ok(
      output.some((l) => l.includes("is gone: stopping the cluster")),
      output.slice(-5).join(" | "),
    );
    assert.equal(output.filter((l) => l.includes('"event":"stopped"')).length, 3, "not every voter stopped cleanly");
  });
});

describe("npm start -- --witness", { timeout: 90_000 }, () => {
  it("starts voters a, b and witness w, serves a lock through a or b, and stops all three on SIGTERM", async () => {
    const dir = join(dataDir, "local-witness");
    const { child, output } = await launch(["--witness", "--data-dir", dir, "--base-port", String(witnessBasePort)]);
    const [a, b, w] = [1, 2, 3].map((i) => `127.0.0.1:${witnessBasePort + i}`);
    assert.ok(
      output.some((l) => l.includes(`client endpoints: ${a},${b}`)),
      "a and b endpoints not printed",
    );
    assert.ok(
      output.some((l) => l.startsWith("[w]") && l.includes('"witness":true')),
      "w is not a tenure-witness",
    );
    const c = new TestClient([a ?? "", b ?? ""], devCertificate(dir));
    const g = await c.call<Obj>("Lease", "Grant", { clientId: "wdemo", seq: 1, ttlMs: 600_000 }, 20_000);
    assert.ok(g.ok, g.ok ? "" : g.details);
    const l = await c.call<Obj>("Lock", "Acquire", { clientId: "wdemo", seq: 3, name: "wdemo", leaseId: g.value["leaseId"], wait: false });
    assert.ok(l.ok, l.ok ? "" : l.details);
    const refused = await c.callAt<Obj>(w ?? "", "Lock", "Status", { name: "wdemo" });
    assert.ok(!refused.ok && refused.reason === "IS_WITNESS", "the witness served a client call");
    c.close();
    // Every member said whom it serves under, and they agree.
    const leaders = new Set(output.filter((l) => l.includes('"event":"ready"')).map((l) => /"leader":"(\w+)"/.exec(l)?.[1]));
    assert.equal(leaders.size, 1, `ready lines name different leaders: ${[...leaders].join(",")}`);
    // SIGTERM (a supervisor's stop), not only Ctrl-C, stops the members instead of orphaning them.
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    for (const id of ["a", "b", "w"]) {
      assert.ok(
        output.some((line) => line.startsWith(`[${id}]`) && line.includes('"event":"stopped"')),
        `${id} did not stop cleanly`,
      );
    }
  });
});
