// The client package as a user gets it (issue 16): built (tools/build_packages.ts), packed with
// `npm pack`, installed from the tarball into a scratch project outside the repository, and run
// with plain node (no tsx, no repository on the module path) against a cluster of real members
// over mutual TLS: a lock, an election and a guarded write. What the tarball lacks (a proto
// file, a type, a dependency), or what an import needs from the repository, fails here.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { buildClientPackage, packClientPackage } from "../../tools/build_packages.ts";
import { ProcessCluster } from "./process_cluster.ts";

const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));

const run = promisify(execFile);

/** The user's program: only the package's public names, plain ESM JavaScript. */
const USER_PROGRAM = `
import { TenureClient, TenureError } from "@tenure/client";
import { MemoryGuard, StaleFencingTokenError } from "@tenure/client/guard";

const [endpoints, caFile, certFile, keyFile] = process.argv.slice(2);
const client = new TenureClient({ endpoints: endpoints.split(","), tls: { caFile, certFile, keyFile } });
const out = {};
try {
  const first = await client.withLock("pkg-lock", ({ token }) => token, { ttlMs: 10_000 }, { timeoutMs: 20_000 });
  const second = await client.withLock("pkg-lock", ({ token }) => token, { ttlMs: 10_000 }, { timeoutMs: 20_000 });
  out.lockTokens = [first, second];

  const election = client.election("pkg-election");
  const leadership = await election.campaign("worker-1", { ttlMs: 10_000 }, { timeoutMs: 20_000 });
  out.leader = (await election.leader({ timeoutMs: 10_000 }))?.value ?? null;
  out.leadershipToken = leadership.token;
  await leadership.resign();

  const guard = new MemoryGuard({ registry: null });
  guard.run("store", second, () => "written");
  try {
    guard.run("store", first, () => "written");
    out.staleRefused = false;
  } catch (e) {
    out.staleRefused = e instanceof StaleFencingTokenError;
  }
  out.errorClass = typeof TenureError === "function";
} finally {
  client.close();
}
process.stdout.write(JSON.stringify(out) + "\\n");
`;

/** A user's TypeScript against the package's declarations (compiled, never run). */
const TYPED_PROGRAM = `import { TenureClient, TenureError, type LockState, type LockStatus } from "@tenure/client";
import { MemoryGuard } from "@tenure/client/guard";
const client = new TenureClient({ endpoints: ["127.0.0.1:7001"], leaderHints: "listed", insecure: true });
const status: LockStatus = await client.lockStatus("x", { timeoutMs: 1000 });
const state: LockState = status.state;
await client.withLock("n", async ({ token, signal }) => { void token; void signal; });
await client.election("e").run("v", async (l) => { void l.token; void l.signal; }, { ttlMs: 5000 });
const latch = client.election("e").latch("v");
const leading: boolean = latch.isLeader();
void [state, leading, new MemoryGuard(new Map<string, string>()), TenureError];
client.close();
`;

describe("@tenure/client packed, installed and run with plain node", { timeout: 180_000 }, () => {
  // Started once the package is built and installed: idle members would only compete with the
  // build, npm and tsc for the CPU.
  let cluster: ProcessCluster | undefined;
  const scratch = mkdtempSync(join(tmpdir(), "tenure-user-project-"));

  after(async () => {
    await cluster?.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("installs from the tarball and runs a lock, an election and a guarded write", async () => {
    buildClientPackage();
    const tarball = packClientPackage(join(scratch, "tarballs"));
    const project = join(scratch, "app");
    await run("mkdir", ["-p", project]);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    // --prefer-offline: the package's dependencies come from npm's cache (npm ci filled it).
    await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", tarball], {
      cwd: project,
      timeout: 120_000,
    });
    const installed = readdirSync(join(project, "node_modules"));
    assert.ok(installed.includes("@tenure"), `installed: ${installed.join(", ")}`);
    assert.ok(!installed.includes("tsx"), "the package pulled in tsx");
    writeFileSync(join(project, "main.mjs"), USER_PROGRAM);
    cluster = await ProcessCluster.start({ lockDelayMs: 200 });
    const { caFile, certFile, keyFile } = cluster.clientTls();
    assert.ok(caFile !== undefined && certFile !== undefined && keyFile !== undefined, "the test cluster's TLS files");
    const endpoints = cluster.members.map((m) => m.clientAddress).join(",");
    const { stdout } = await run(process.execPath, ["main.mjs", endpoints, caFile, certFile, keyFile], {
      cwd: project,
      timeout: 60_000,
      // Plain node: nothing from the repository's loader setup leaks into the user's process.
      env: { PATH: process.env["PATH"] ?? "" },
    });
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
      lockTokens: number[];
      leader: string | null;
      leadershipToken: number;
      staleRefused: boolean;
      errorClass: boolean;
    };
    const [first, second] = result.lockTokens;
    assert.ok(first !== undefined && second !== undefined && second > first, `lock tokens ${result.lockTokens.join(",")}`);
    assert.equal(result.leader, "worker-1");
    assert.ok(result.leadershipToken > second, "the election's token is above the lock's: one counter");
    assert.equal(result.staleRefused, true, "the guard accepted a stale token");
    assert.equal(result.errorClass, true);

    // The types: a user's strict TypeScript compiles against the installed declarations
    // (skipLibCheck off, so a broken .d.ts fails), and the internals are not visible. One tsc
    // run for both (each costs seconds of CPU): typed.ts must compile clean, internals.ts must
    // fail on exactly its two uses of internals.
    const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [join(repoRoot, "node_modules/@types")],
          pretty: false,
        },
        files: ["typed.ts", "internals.ts"],
      }),
    );
    writeFileSync(join(project, "typed.ts"), TYPED_PROGRAM);
    writeFileSync(
      join(project, "internals.ts"),
      `import { TenureClient } from "@tenure/client";\nconst client = new TenureClient({ endpoints: ["127.0.0.1:7001"], insecure: true });\nvoid client.rpc;\nvoid client.transport;\n`,
    );
    const out = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project, timeout: 60_000 }).then(
      () => assert.fail("internals.ts compiled: TenureClient's internals are visible"),
      (e: { stdout?: string }) => e.stdout ?? String(e),
    );
    const errors = out.split("\n").filter((l) => /error TS\d+/.test(l));
    const outsideInternals = errors.filter((l) => !l.startsWith("internals.ts("));
    assert.deepEqual(outsideInternals, [], `the documented surface does not type-check:\n${out}`);
    assert.equal(errors.length, 2, out);
    assert.match(out, /Property 'rpc' does not exist on type 'TenureClient'/);
    assert.match(out, /Property 'transport' does not exist on type 'TenureClient'/);
  });
});
