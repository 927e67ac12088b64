// Help text, made from the command table: the top level (commands, global flags, exit codes), a
// group (lease, lock, member, snapshot) and each command.

import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { GLOBAL_OPTIONS } from "./globals.ts";
import type { CommandSpec, OptionSpec } from "./spec.ts";

function flagLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, o]) => {
    const left = `${o.short !== undefined ? `-${o.short}, ` : ""}--${name}${o.type === "string" ? ` ${o.valueName ?? "VALUE"}` : ""}`;
    return [left, o.description] as const;
  });
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, d]) => `  ${l.padEnd(width)}  ${d}`);
}

export function usageLine(c: CommandSpec): string {
  if (c.usage !== undefined) return `usage: ${c.usage}`;
  const args = c.positionals.map((p) => (p.optional === true ? `[${p.name}]` : p.name));
  return `usage: tenurectl ${[...c.path, ...args].join(" ")}${Object.keys(c.options).length > 0 ? " [flags]" : ""}`;
}

export function commandHelp(c: CommandSpec): string {
  const lines = [usageLine(c), "", c.summary];
  if (c.details !== undefined) lines.push("", c.details);
  if (c.positionals.length > 0) {
    const width = Math.max(...c.positionals.map((p) => p.name.length));
    lines.push("", "arguments:", ...c.positionals.map((p) => `  ${p.name.padEnd(width)}  ${p.description}`));
  }
  if (Object.keys(c.options).length > 0) lines.push("", "flags:", ...flagLines(c.options));
  lines.push(
    "",
    "global flags (every command; tenurectl --help says more):",
    `  ${Object.keys(GLOBAL_OPTIONS)
      .map((n) => `--${n}`)
      .join(" ")}`,
  );
  return `${lines.join("\n")}\n`;
}

export function groupHelp(name: string, commands: readonly CommandSpec[]): string {
  const rows = commands.map((c) => [c.path.join(" "), c.summary] as const);
  const width = Math.max(...rows.map(([l]) => l.length));
  return `usage: tenurectl ${name} SUBCOMMAND [flags]\n\n${rows.map(([l, s]) => `  ${l.padEnd(width)}  ${s}`).join("\n")}\n\ntenurectl ${name} SUBCOMMAND --help shows a subcommand's arguments and flags.\n`;
}

export function topHelp(table: readonly CommandSpec[]): string {
  const rows = table.map(
    (c) =>
      [
        usageLine(c)
          .replace(/^usage: tenurectl /, "")
          .replace(/ \[flags\]$/, ""),
        c.summary,
      ] as const,
  );
  const width = Math.min(40, Math.max(...rows.map(([l]) => l.length)));
  return [
    "usage: tenurectl COMMAND [flags]",
    "",
    "The operator's command line for a Tenure cluster (leases, locks with fencing tokens, elections).",
    "",
    "commands:",
    ...rows.map(([l, s]) => `  ${l.padEnd(width)}  ${s}`),
    "",
    "global flags:",
    ...flagLines(GLOBAL_OPTIONS),
    "",
    EXIT_CODES_HELP,
    "",
    "tenurectl COMMAND --help shows a command's arguments and flags.",
    "",
  ].join("\n");
}
