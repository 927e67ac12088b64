// DESIGN.md §1: the witness "never imports server/state or server/api". A witness that could
// reach the state machine or the client handlers could apply or serve (W2) by accident, so this
// follows every relative import from witness/*.ts, transitively, and fails if any path leads
// into either directory. Tests are held to the same rule.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";

const witnessDir = dirname(new URL(import.meta.url).pathname);
const repoRoot = resolve(witnessDir, "..");
const forbiddenDirs = ["server/state", "server/api"].map((d) => join(repoRoot, d));

/** Relative specifiers of static imports, re-exports and dynamic imports (comments dropped). */
export function relativeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  const out: string[] = [];
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g)) {
    if (m[1] !== undefined) out.push(m[1]);
  }
  return out;
}

interface Files {
  readonly read: (file: string) => string;
  readonly exists: (file: string) => boolean;
}

const disk: Files = { read: (f) => readFileSync(f, "utf8"), exists: existsSync };

/** Every file reachable from `roots` by relative imports, with the chain that reached it. */
function reachable(roots: readonly string[], files: Files): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const queue: [string, string[]][] = roots.map((r) => [r, [r]]);
  while (queue.length > 0) {
    const [file, chain] = queue.shift() ?? ["", []];
    if (seen.has(file)) continue;
    seen.set(file, chain);
    if (!file.endsWith(".ts") || !files.exists(file)) continue;
    for (const spec of relativeImports(files.read(file))) {
      const target = resolve(dirname(file), spec);
      queue.push([target, [...chain, target]]);
    }
  }
  return seen;
}

function violations(roots: readonly string[], files: Files): string[] {
  const problems: string[] = [];
  for (const [file, chain] of reachable(roots, files)) {
    if (forbiddenDirs.some((d) => file === d || file.startsWith(`${d}/`))) {
      problems.push(chain.map((f) => relative(repoRoot, f)).join(" -> "));
    }
  }
  return problems;
}

describe("witness purity", () => {
  it("nothing under witness/ reaches server/state or server/api, even indirectly", () => {
    const roots = readdirSync(witnessDir)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => join(witnessDir, f));
    assert.ok(
      roots.some((f) => f.endsWith("witness_node.ts")),
      "witness sources not found",
    );
    const walked = reachable(roots, disk);
    assert.ok(
      [...walked.keys()].some((f) => f.includes("/server/core/")),
      "the import walk found no core module",
    );
    assert.deepEqual(violations(roots, disk), []);
  });

  it("the rule itself catches an indirect import of the state machine", () => {
    const a = join(witnessDir, "fake_a.ts");
    const b = join(repoRoot, "server/node/fake_b.ts");
    const sources = new Map([
      [a, 'import { x } from "../server/node/fake_b.ts"; // import "../server/api/no.ts"'],
      [b, 'export { y } from "../state/machine.ts";'],
    ]);
    const fake: Files = { read: (f) => sources.get(f) ?? "", exists: (f) => sources.has(f) };
    // The commented-out import does not count; the re-export two hops away does.
    assert.deepEqual(relativeImports(sources.get(a) ?? ""), ["../server/node/fake_b.ts"]);
    assert.deepEqual(violations([a], fake), ["witness/fake_a.ts -> server/node/fake_b.ts -> server/state/machine.ts"]);
  });
});
