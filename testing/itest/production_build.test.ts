// The compiled server as production runs it (issue 16): tools/build.ts bundles tenured and
// tenure-witness into a scratch copy, its node_modules pruned to the production dependencies
// (`npm prune --omit=dev`: no tsx, no TypeScript, no esbuild), and three voters run there with
// plain node over mutual TLS. What the bundle still needs from a dev dependency or from the
// sources fails here; the idle RSS of a compiled voter is printed (issue 16: under 80 MB).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { buildServer } from "../../tools/build.ts";
import { ProcessCluster } from "./process_cluster.ts";
import { BUILD_DIR_ENV } from "./server_command.ts";

const run = promisify(execFile);
const repoRoot = new URL("../../", import.meta.url).pathname;

/** VmRSS of a live process, in bytes (Linux /proc). */
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

describe("the compiled server with production dependencies only", { timeout: 180_000 }, () => {
  const scratch = mkdtempSync(join(tmpdir(), "tenure-production-"));
  const previousBuildDir = process.env[BUILD_DIR_ENV];
  let cluster: ProcessCluster | null = null;

  after(async () => {
    await cluster?.stopAll();
    if (previousBuildDir === undefined) delete process.env[BUILD_DIR_ENV];
    else process.env[BUILD_DIR_ENV] = previousBuildDir;
    rmSync(scratch, { recursive: true, force: true });
  });

  it("runs three voters with plain node, without tsx installed", async () => {
    for (const f of ["package.json", "package-lock.json"]) copyFileSync(join(repoRoot, f), join(scratch, f));
    // Hard links of the installed tree (no native rebuild of better-sqlite3), then the production
    // install's shape: every dev dependency removed.
    await run("cp", ["-al", join(repoRoot, "node_modules"), join(scratch, "node_modules")]);
    await run("npm", ["prune", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: scratch, timeout: 120_000 });
    for (const dev of ["tsx", "typescript", "esbuild", "@biomejs/biome", "node-forge"]) {
      assert.ok(!existsSync(join(scratch, "node_modules", dev)), `${dev} is still installed`);
    }
    const dist = await buildServer(join(scratch, "dist"));
    process.env[BUILD_DIR_ENV] = dist;
    cluster = await ProcessCluster.start({});
    const c = cluster.testClient();
    const leader = await c.leaderId(20_000);
    assert.ok(leader !== "", "no leader");
    const grant = await c.call<Record<string, unknown>>("Lease", "Grant", { clientId: "prod", seq: 1, ttlMs: 60_000 }, 10_000);
    assert.ok(grant.ok, grant.ok ? "" : grant.details);
    c.close();
    const pids = cluster.members.map((m) => {
      const started = (cluster?.logs.get(m.id) ?? []).find((l) => l.includes('"event":"started"')) ?? "";
      const pid = Number(/"pid":(\d+)/.exec(started)?.[1]);
      assert.ok(Number.isSafeInteger(pid) && pid > 0, `no pid in ${m.id}'s started line`);
      return { id: m.id, pid };
    });
    // Each member runs the scratch bundle, not the repository's sources.
    for (const { pid } of pids) {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      assert.ok(cmdline.includes(join(dist, "tenured.mjs")), cmdline.join(" "));
      assert.ok(!cmdline.includes("tsx"), cmdline.join(" "));
    }
    // Idle for a moment (tens of heartbeat rounds), then RSS: a figure printed, not a bound
    // (memory goals are shown by the benchmark, tools/bench).
    await new Promise((r) => setTimeout(r, 2_000));
    const rss = pids.map(({ id, pid }) => `${id} ${(rssBytes(pid) / 2 ** 20).toFixed(1)} MiB`);
    console.log(`compiled voters idle RSS: ${rss.join(", ")}`);
  });
});
