// server/state is PURE (DESIGN.md 1): this test fails on any import of node:* or npm packages, and
// on clocks, randomness, timers or asynchrony in its non-test sources.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

const BANNED: readonly [RegExp, string][] = [
  [/\bDate\b/, "Date"],
  [/\bMath\.random\b/, "Math.random"],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask|clearTimeout|clearInterval)\b/, "timers"],
  [/\bPromise\b/, "Promise"],
  [/\basync\b/, "async"],
  [/\bawait\b/, "await"],
  [/\b(process|performance|globalThis|require)\b/, "host globals"],
  [/\bimport\s*\(/, "dynamic import"],
];

/** Drops comments so that prose about "no Date" does not trip the scan. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

function violations(source: string): string[] {
  const code = stripComments(source);
  const found: string[] = [];
  for (const match of code.matchAll(/\b(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/g)) {
    const spec = match[1] ?? "";
    const allowed = spec.startsWith("./") || spec.startsWith("../core/");
    if (!allowed) found.push(`import of "${spec}"`);
  }
  for (const match of code.matchAll(/^\s*import\s*["']([^"']+)["']/gm)) found.push(`side-effect import "${match[1]}"`);
  for (const [pattern, what] of BANNED) if (pattern.test(code)) found.push(what);
  return found;
}

describe("server/state purity", () => {
  it("non-test sources import only ./ and ../core/ and use no clock, randomness, timers or async", () => {
    const files = readdirSync(here).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    assert.ok(files.length >= 10, "scanned the state sources");
    for (const file of files) {
      assert.deepEqual(violations(readFileSync(join(here, file), "utf8")), [], file);
    }
  });

  it("the scan catches what it bans (control)", () => {
    const bad = [
      'import { readFileSync } from "node:fs";',
      'import type { Foo } from "yaml";',
      "const t = Date.now();",
      "const r = Math.random();",
      "setTimeout(() => 0, 5);",
      "const p = new Promise<void>((r) => r());",
      "async function f(): Promise<void> {}",
      'import "some-polyfill";',
    ];
    for (const line of bad) assert.notDeepEqual(violations(line), [], line);
    assert.deepEqual(violations('// Date and Promise in a comment\nimport { x } from "./x.ts";'), []);
  });
});
