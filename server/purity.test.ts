// Enforces the determinism rule of DESIGN.md §1: server/core and server/state are PURE. They
// may not import node:* or npm packages, read a clock, draw random numbers, start timers or use
// Promises. A failing simulator seed must reproduce exactly, and this is what makes it so.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = new URL(".", import.meta.url).pathname;
const pureDirs = ["core", "state"];

const importRule = { pattern: /from\s+["'](?!\.{1,2}\/)[^"']+["']/, why: "imports a package or node:* module" };
/** Checked on code with string literals blanked, so messages may say "await" or "Date". */
const forbidden: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /import\s*\(/, why: "dynamic import" },
  { pattern: /\brequire\s*\(/, why: "require()" },
  { pattern: /\bDate\b/, why: "reads the clock (Date)" },
  { pattern: /\bperformance\b/, why: "reads the clock (performance)" },
  { pattern: /\bprocess\./, why: "touches the process" },
  { pattern: /Math\.random/, why: "uses Math.random" },
  { pattern: /\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, why: "starts a timer" },
  { pattern: /\bPromise\b|\basync\b|\bawait\b/, why: "uses Promises" },
  { pattern: /\bcrypto\./, why: "uses crypto randomness" },
];

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sourceFiles(p);
    return d.name.endsWith(".ts") && !d.name.endsWith(".test.ts") ? [p] : [];
  });
}

function stripStrings(code: string): string {
  return code.replace(/`(?:\\.|[^`\\])*`|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'/g, '""');
}

function violations(source: string): string[] {
  const code = stripComments(source);
  const hits = importRule.pattern.exec(code) ? [importRule.why] : [];
  const bare = stripStrings(code);
  for (const rule of forbidden) if (rule.pattern.test(bare)) hits.push(rule.why);
  return hits;
}

/** Drops comments so that prose about "Date" or "Promises" does not trip the rule. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

describe("pure modules", () => {
  for (const dir of pureDirs) {
    it(`server/${dir} has no I/O, clock, randomness, timers or Promises`, () => {
      const files = sourceFiles(join(root, dir));
      if (dir === "core") assert.ok(files.length > 5, "server/core sources not found");
      const problems: string[] = [];
      for (const file of files) {
        for (const why of violations(readFileSync(file, "utf8"))) problems.push(`${file.slice(root.length)}: ${why}`);
      }
      assert.deepEqual(problems, []);
    });
  }

  it("the rule itself catches a forbidden import and a clock read", () => {
    const bad = 'import { readFileSync } from "node:fs";\nconst t = Date.now();\nconst m = "await";';
    assert.deepEqual(violations(bad), ["imports a package or node:* module", "reads the clock (Date)"]);
    assert.deepEqual(violations('import { x } from "./x.ts"; // Date.now()'), []);
  });

  it("server/core does not import server/state or anything above it", () => {
    for (const file of sourceFiles(join(root, "core"))) {
      const code = stripComments(readFileSync(file, "utf8"));
      assert.doesNotMatch(code, /from\s+["']\.\.\//, `${file} imports outside server/core`);
    }
  });
});
