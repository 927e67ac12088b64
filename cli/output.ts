// Results go to stdout, as a table for people or one JSON document for scripts (--output json);
// messages and lock-run events go to stderr (JSON lines with --output json, so a supervisor can
// parse them).

import type { OutputFormat } from "./globals.ts";

export interface Sink {
  write(text: string): unknown;
}

export class Output {
  constructor(
    readonly format: OutputFormat,
    private readonly stdout: Sink,
    private readonly stderr: Sink,
  ) {}

  /** One result: `json` as it is, or the table/lines `text` makes for it. */
  result(json: unknown, text: () => string): void {
    this.stdout.write(this.format === "json" ? `${JSON.stringify(json)}\n` : ensureNewline(text()));
  }

  /** Something that happened while a command runs (lock -- cmd, elect, observe). */
  event(event: string, fields: Readonly<Record<string, unknown>>, text: string): void {
    this.stderr.write(this.format === "json" ? `${JSON.stringify({ event, ...fields })}\n` : `tenurectl: ${text}\n`);
  }

  error(message: string): void {
    this.stderr.write(`tenurectl: ${message}\n`);
  }
}

function ensureNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}

/** Aligned columns with a header row. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

/** "key  value" lines, keys aligned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return `${pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`;
}
