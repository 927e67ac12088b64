// Enforces the layout rule of issue 10 / README "Layout": server/, witness/ and client-sdk/ hold
// what ships; testing/ (simulator, chaos harness, integration tests, kits) and tools/ (launchers,
// probes, benchmarks) hold what does not. No product module may import from those folders, or
// a release would drag the harness (and its test-only switches) along. Tests (*.test.ts) beside
// product code may use the kits; they never ship.
//
// It also keeps README.md's Layout section honest: every top-level folder is named there and
// every folder named there exists.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { TEST_ROOTS } from "./test_roots.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const productDirs = ["server", "witness", "client-sdk", "cli", "proto"];
const harnessDirs = ["testing", "tools"];

function sources(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return d.name === "node_modules" ? [] : sources(p);
    return d.name.endsWith(".ts") ? [p] : [];
  });
}

/** Relative module specifiers of import/export/import() and new URL(..., import.meta.url). */
export function relativeSpecifiers(code: string): string[] {
  const out: string[] = [];
  const patterns = [
    /(?:from\s+|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']*)["']/g,
    /new URL\(\s*["'](\.{1,2}\/[^"']*)["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const p of patterns) for (const m of code.matchAll(p)) if (m[1] !== undefined) out.push(m[1]);
  return out;
}

/** Product files (not tests) whose relative imports land in a harness folder. */
export function harnessImports(files: readonly string[], read: (f: string) => string): string[] {
  const bad: string[] = [];
  for (const file of files) {
    if (file.endsWith(".test.ts")) continue;
    for (const spec of relativeSpecifiers(read(file))) {
      const target = relative(repoRoot, resolve(dirname(file), spec));
      const top = target.split("/")[0] ?? "";
      if (harnessDirs.includes(top)) bad.push(`${relative(repoRoot, file)} -> ${target}`);
    }
  }
  return bad;
}

function topLevelFolders(): string[] {
  return readdirSync(repoRoot)
    .filter((n) => !n.startsWith(".") && n !== "node_modules" && n !== "data" && n !== "dist")
    .filter((n) => statSync(join(repoRoot, n)).isDirectory())
    .sort();
}

function readmeLayoutFolders(): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = /## Layout\n([\s\S]*?)(?:\n## |$)/.exec(readme)?.[1] ?? "";
  const block = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  const names = new Set<string>();
  for (const line of block.split("\n")) {
    const m = /^([A-Za-z0-9_.-]+)\//.exec(line.trim());
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

describe("layout", () => {
  it("no product module imports the harness (testing/, tools/)", () => {
    const files = productDirs.flatMap((d) => sources(join(repoRoot, d)));
    assert.ok(files.length > 50, "product sources not found");
    assert.deepEqual(
      harnessImports(files, (f) => readFileSync(f, "utf8")),
      [],
    );
  });

  it("the rule catches a product file that imports the harness", () => {
    const fake = join(repoRoot, "server/node/fake.ts");
    const code = `import { x } from "../../testing/sim/vopr.ts";\nconst u = new URL("../../tools/local_cluster.ts", import.meta.url);`;
    assert.deepEqual(
      harnessImports([fake], () => code),
      ["server/node/fake.ts -> testing/sim/vopr.ts", "server/node/fake.ts -> tools/local_cluster.ts"],
    );
  });

  it("every test file sits under a folder the runner searches", () => {
    const all = topLevelFolders().flatMap((d) => sources(join(repoRoot, d)));
    const tests = all.map((f) => relative(repoRoot, f)).filter((f) => f.endsWith(".test.ts"));
    assert.ok(tests.length > 100, "test files not found");
    const lost = tests.filter((f) => !TEST_ROOTS.includes(f.split("/")[0] ?? ""));
    assert.deepEqual(lost, [], "add their folder to testing/test_roots.ts");
  });

  it("README's Layout section names exactly the top-level folders", () => {
    assert.deepEqual(readmeLayoutFolders(), topLevelFolders());
  });
});
