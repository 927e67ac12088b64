import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSubcommand, runSubcommand } from "./cli.ts";

/** Runs a subcommand with stderr captured; returns its exit code and what it wrote there. */
async function run(name: "backup" | "restore", argv: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await runSubcommand(name, argv), stderr };
  } finally {
    process.stderr.write = write;
  }
}

describe("tenured backup / restore flags", () => {
  it("are subcommands only by their exact names", () => {
    assert.ok(isSubcommand("backup") && isSubcommand("restore"));
    assert.ok(!isSubcommand("--id") && !isSubcommand(undefined) && !isSubcommand("Backup"));
  });

  it("refuse an unknown flag or a stray argument with exit 2 and the usage line", async () => {
    const unknown = await run("restore", ["--from", "f", "--bootstrap"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Unknown option '--bootstrap'[\s\S]*usage: tenured restore --from FILE/);
    const stray = await run("backup", ["extra"]);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /usage: tenured backup/);
  });

  it("refuse missing or contradictory flags before touching anything", async () => {
    const missing = await run("restore", ["--from", "f", "--id", "a", "--cluster-id", "n", "--members", "a=h:1/h:2"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--data-dir is required/);
    const both = await run("backup", ["--endpoints", "h:1", "--out", "o", "--insecure", "--tls-ca", "ca.pem"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--insecure and --tls-\* contradict each other/);
    const noTls = await run("backup", ["--endpoints", "h:1", "--out", "o"]);
    assert.equal(noTls.code, 2);
    assert.match(noTls.stderr, /--tls-ca is required/);
    const farPort = await run("backup", ["--endpoints", "h:1,h:65536", "--out", "o", "--insecure"]);
    assert.equal(farPort.code, 2);
    assert.match(farPort.stderr, /--endpoints: endpoint "h:65536": port "65536" is not 1\.\.65535/);
    const badId = await run("restore", ["--from", "f", "--data-dir", "d", "--id", "a", "--cluster-id", "bad id", "--members", "a=h:1/h:2"]);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /--cluster-id must match/);
  });

  it("a refusal of the restore itself is exit 1 with its message", async () => {
    const r = await run("restore", [
      "--from",
      "/nonexistent/b.bak",
      "--data-dir",
      "/nonexistent/d",
      "--id",
      "a",
      "--cluster-id",
      "n",
      "--members",
      "a=h:1/h:2",
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tenured restore: cannot read --from \/nonexistent\/b\.bak/);
  });
});
