// `npm start` as a user runs it: the launcher starts three tenured processes, clients can take
// a lock, Ctrl-C (SIGINT) stops every voter cleanly, and a second start resumes the same
// cluster with its locks and token counter.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import { TestClient } from "./itest/test_client.ts";

const launcher = new URL("./local_cluster.ts", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "tenure-local-"));
const basePort = 30000 + Math.floor(Math.random() * 20000);
const endpoints = [1, 2, 3].map((i) => `127.0.0.1:${basePort + i}`);
let running: ChildProcess | null = null;

after(() => {
  if (running && running.exitCode === null) running.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

type Obj = Record<string, unknown>;

function launch(): Promise<{ child: ChildProcess; output: string[] }> {
  const child = spawn(process.execPath, ["--import", "tsx", launcher, "--data-dir", dataDir, "--base-port", String(basePort)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  running = child;
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    let started = 0;
    const timer = setTimeout(() => reject(new Error(`cluster did not start: ${output.slice(-6).join(" | ")}`)), 40_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      if (line.includes('"event":"started"') && ++started === 3) {
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
    assert.ok(output.some((l) => l.includes(endpoints.join(","))), "endpoints not printed");
    const c = new TestClient(endpoints);
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
    const c = new TestClient(endpoints);
    const s = await c.call<Obj>("Lock", "Status", { name: "demo" }, 20_000);
    assert.ok(s.ok, s.ok ? "" : s.details);
    assert.equal(String((s.value["holder"] as Obj)["token"]), token);
    c.close();
    assert.equal(await stopWithCtrlC(child), 0);
  });
});
