// A small data-driven test runner in the style of cockroachdb/datadriven (used by etcd-io/raft's
// interaction tests). A script is a sequence of stanzas:
//
//   # comments and blank lines between stanzas are ignored
//   command pos1 key=value list=(a b c)
//   ----
//   expected output, up to the next blank line (or end of file)
//
// One command per stanza. The handler returns the actual output; the runner compares it with the
// expected text and fails with a diff naming file and line. With REWRITE=1 in the environment the
// file is rewritten with the actual outputs instead (review the git diff before committing it: a
// rewrite accepts whatever the code does now). Output may not contain blank lines, since a blank
// line ends the stanza; the runner writes "ok" for empty output.

import { readFileSync, writeFileSync } from "node:fs";

export type ArgValue = string | readonly string[];

export interface TestCommand {
  readonly name: string;
  /** Bare words after the command name, in order. */
  readonly positional: readonly string[];
  /** key=value and key=(a b c) arguments. */
  readonly args: ReadonlyMap<string, ArgValue>;
  /** 1-based line of the command, for error messages. */
  readonly line: number;
  readonly raw: string;
}

interface Stanza {
  readonly command: TestCommand;
  readonly expected: string;
  /** 0-based line range [outStart, outEnd) holding the expected output. */
  readonly outStart: number;
  readonly outEnd: number;
}

/** Splits `cmd a k=v k=(x y)` into words, keeping parenthesised lists together. */
export function parseCommand(raw: string, line: number): TestCommand {
  const words: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of raw.trim()) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (depth < 0) throw new Error(`line ${line}: unbalanced ')' in: ${raw}`);
    if (/\s/.test(ch) && depth === 0) {
      if (cur) words.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  if (depth !== 0) throw new Error(`line ${line}: unbalanced '(' in: ${raw}`);
  if (cur) words.push(cur);
  const [name, ...rest] = words;
  if (name === undefined) throw new Error(`line ${line}: empty command`);
  const positional: string[] = [];
  const args = new Map<string, ArgValue>();
  for (const w of rest) {
    const eq = w.indexOf("=");
    if (eq < 0) {
      positional.push(w);
      continue;
    }
    const key = w.slice(0, eq);
    const value = w.slice(eq + 1);
    if (args.has(key)) throw new Error(`line ${line}: argument ${key} given twice`);
    const list = value.startsWith("(") && value.endsWith(")");
    args.set(
      key,
      list
        ? value
            .slice(1, -1)
            .split(/\s+/)
            .filter((s) => s.length > 0)
        : value,
    );
  }
  return { name, positional, args, line, raw: raw.trim() };
}

function parseStanzas(text: string, file: string): Stanza[] {
  const lines = text.split("\n");
  const out: Stanza[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i] ?? "";
    if (l.trim() === "" || l.trimStart().startsWith("#")) {
      i++;
      continue;
    }
    const cmdLine = i + 1;
    // Continuation lines (ending in "\") join the command; everything else up to ---- is an error.
    let raw = l;
    i++;
    while (raw.endsWith("\\") && i < lines.length) raw = `${raw.slice(0, -1)} ${lines[i++] ?? ""}`;
    if ((lines[i] ?? "").trim() !== "----") throw new Error(`${file}:${cmdLine}: expected ---- after the command`);
    i++;
    const outStart = i;
    while (i < lines.length && (lines[i] ?? "").trim() !== "") i++;
    out.push({
      command: parseCommand(raw, cmdLine),
      expected: lines.slice(outStart, i).join("\n"),
      outStart,
      outEnd: i,
    });
  }
  return out;
}

/** Minimal line diff (LCS); outputs are small, so O(n*m) is fine. */
export function lineDiff(expected: string, actual: string): string {
  const a = expected.split("\n");
  const b = actual.split("\n");
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      const row = lcs[i] as number[];
      row[j] = a[i] === b[j] ? (lcs[i + 1]?.[j + 1] ?? 0) + 1 : Math.max(lcs[i + 1]?.[j] ?? 0, row[j + 1] ?? 0);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push(`  ${a[i++]}`);
      j++;
    } else if (i < n && (j >= m || (lcs[i + 1]?.[j] ?? 0) >= (lcs[i]?.[j + 1] ?? 0))) {
      out.push(`- ${a[i++]}`);
    } else {
      out.push(`+ ${b[j++]}`);
    }
  }
  return out.join("\n");
}

function normalize(output: string): string {
  const trimmed = output.replace(/\s+$/, "");
  return trimmed === "" ? "ok" : trimmed;
}

export interface DataDrivenOptions {
  /**
   * false: run every command but compare no output (and never rewrite): only what the handler
   * itself checks (assertion commands) can fail the script. Used to show that a script's
   * assertions catch a change of behaviour that a rewrite of its expected output would accept.
   */
  readonly compareOutput?: boolean;
}

/**
 * Runs every stanza of `file` through `handler` (in order: later stanzas see earlier state).
 * Throws at the first mismatch, since later outputs usually depend on it. Under REWRITE=1 the
 * file's expected outputs are replaced by the actual ones. A handler's exception is rethrown
 * with the file and line, the original as its `cause`.
 */
export function runDataDriven(file: string, handler: (cmd: TestCommand) => string, options: DataDrivenOptions = {}): void {
  const text = readFileSync(file, "utf8");
  const stanzas = parseStanzas(text, file);
  const compare = options.compareOutput !== false;
  const rewrite = compare && process.env["REWRITE"] === "1";
  const actuals: string[] = [];
  for (const s of stanzas) {
    let actual: string;
    try {
      actual = normalize(handler(s.command));
    } catch (err) {
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      throw new Error(`${file}:${s.command.line}: ${s.command.raw}\ncommand threw: ${msg}`, { cause: err });
    }
    if (actual.split("\n").some((l) => l.trim() === "")) {
      throw new Error(`${file}:${s.command.line}: output contains a blank line, which would end the stanza`);
    }
    actuals.push(actual);
    if (compare && !rewrite && actual !== s.expected) {
      throw new Error(
        `${file}:${s.command.line}: output of "${s.command.raw}" differs (- expected, + actual):\n` +
          lineDiff(s.expected, actual) +
          `\n(rerun with REWRITE=1 to accept the new output, then review the diff)`,
      );
    }
  }
  if (!rewrite) return;
  const lines = text.split("\n");
  for (let k = stanzas.length - 1; k >= 0; k--) {
    const s = stanzas[k] as Stanza;
    lines.splice(s.outStart, s.outEnd - s.outStart, ...(actuals[k] ?? "ok").split("\n"));
  }
  writeFileSync(file, lines.join("\n"));
}
