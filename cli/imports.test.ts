// cli/ ships: it may use the SDK and the protos, never the server's internals (it talks to the
// cluster over the client API like any client) nor the harness (testing/, tools/).

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

const cliDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(cliDir, "..");
const ALLOWED_TOP = new Set(["cli", "client-sdk", "proto"]);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return files(p);
    return /\.(ts|mjs)$/.test(d.name) && !d.name.endsWith(".test.ts") ? [p] : [];
  });
}

export function outsideImports(file: string, code: string): string[] {
  const out: string[] = [];
  const re = /(?:from\s+|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']*)["']/g;
  for (const m of code.matchAll(re)) {
    const target = relative(repoRoot, resolve(dirname(file), m[1] ?? ""));
    if (!ALLOWED_TOP.has(target.split("/")[0] ?? "")) out.push(`${relative(repoRoot, file)} -> ${target}`);
  }
  return out;
}

describe("cli imports", () => {
  it("imports only cli/, client-sdk/ and proto/", () => {
    const all = files(cliDir);
    assert.ok(all.length > 10);
    assert.deepEqual(
      all.flatMap((f) => outsideImports(f, readFileSync(f, "utf8"))),
      [],
    );
  });

  it("the rule catches a server import", () => {
    assert.deepEqual(outsideImports(join(cliDir, "x.ts"), 'import { a } from "../server/backup/backup_client.ts";'), [
      "cli/x.ts -> server/backup/backup_client.ts",
    ]);
  });
});
