// The command line: find the command's words in the table, then let node's util.parseArgs (strict)
// read the flags of that command plus the global ones. Unknown commands and flags are refused
// before anything runs, with the nearest valid name; --help anywhere answers with the help of the
// command it follows.

import { parseArgs } from "node:util";
import { closest, distance } from "fastest-levenshtein";
import { UsageError } from "./exit_codes.ts";
import { GLOBAL_OPTIONS } from "./globals.ts";
import { commandHelp, groupHelp, topHelp } from "./help.ts";
import type { CommandSpec, OptionSpec, Values } from "./spec.ts";

export type Parsed =
  | { readonly kind: "help"; readonly text: string }
  | {
      readonly kind: "run";
      readonly command: CommandSpec;
      readonly values: Values;
      readonly positionals: readonly string[];
      readonly child: readonly string[];
    };

/** A usage error that carries the usage line of the command it is about. */
export class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

const SUGGESTION_DISTANCE_MAX = 3;

/** " (did you mean X?)" when some candidate is close enough to be what was meant. */
export function suggestion(given: string, candidates: readonly string[]): string {
  if (candidates.length === 0) return "";
  // A prefix says more than an edit distance: --ttl is --ttl-ms, not --ca.
  const prefixed = candidates.filter((c) => c.startsWith(given));
  if (prefixed.length === 1) return ` (did you mean ${prefixed[0]}?)`;
  const nearest = closest(given, [...candidates]);
  const d = distance(given, nearest);
  return d <= SUGGESTION_DISTANCE_MAX && d < Math.max(given.length, 2) ? ` (did you mean ${nearest}?)` : "";
}

/** Every flag name of every command with its type: a name means one thing everywhere, so the
 *  words of the command can be found before it is known which command they name. */
function flagTypes(table: readonly CommandSpec[]): Map<string, OptionSpec["type"]> {
  const types = new Map<string, OptionSpec["type"]>();
  for (const [name, o] of Object.entries(GLOBAL_OPTIONS)) types.set(name, o.type);
  for (const c of table) for (const [name, o] of Object.entries(c.options)) types.set(name, o.type);
  return types;
}

/** The indexes of the non-flag words (a string flag's value is not a word). */
function wordIndexes(tokens: readonly string[], types: Map<string, OptionSpec["type"]>): number[] {
  const out: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] ?? "";
    if (t.startsWith("--")) {
      if (!t.includes("=") && types.get(t.slice(2)) === "string") i++;
    } else if (t.startsWith("-") && t.length > 1) {
      // short flags are booleans (-h)
    } else out.push(i);
  }
  return out;
}

export function parseCommandLine(argv: readonly string[], table: readonly CommandSpec[]): Parsed {
  const dashes = argv.indexOf("--");
  const tokens = dashes < 0 ? [...argv] : argv.slice(0, dashes);
  const child = dashes < 0 ? [] : argv.slice(dashes + 1);
  const helpAsked = tokens.includes("--help") || tokens.includes("-h");
  const words = wordIndexes(tokens, flagTypes(table));
  const w = (k: number): string | undefined => {
    const i = words[k];
    return i === undefined ? undefined : tokens[i];
  };
  let first = w(0);
  let shift = 0;
  if (first === "help") {
    // `tenurectl help lease grant` is `tenurectl lease grant --help`
    shift = 1;
    first = w(1);
    if (first === undefined) return { kind: "help", text: topHelp(table) };
  }
  if (first === undefined) {
    if (helpAsked) return { kind: "help", text: topHelp(table) };
    throw new CommandUsageError("no command given", "usage: tenurectl COMMAND [flags] (tenurectl --help lists the commands)");
  }
  const tops = [...new Set(table.map((c) => c.path[0] ?? ""))];
  const group = table.filter((c) => c.path[0] === first);
  if (group.length === 0) {
    throw new CommandUsageError(
      `unknown command "${first}"${suggestion(first, tops)}`,
      "usage: tenurectl COMMAND [flags] (tenurectl --help lists the commands)",
    );
  }
  const second = w(shift + 1);
  let command = group.find((c) => c.path.length === 2 && c.path[1] === second);
  const used = command ? 2 : 1;
  if (!command) {
    command = group.find((c) => c.path.length === 1);
    if (!command) {
      const subs = group.map((c) => c.path[1] ?? "");
      if (second === undefined) {
        if (helpAsked || shift === 1) return { kind: "help", text: groupHelp(first, group) };
        throw new CommandUsageError(`${first} needs a subcommand: ${subs.join(", ")}`, `usage: tenurectl ${first} ${subs.join("|")} ...`);
      }
      throw new CommandUsageError(
        `unknown subcommand "${first} ${second}"${suggestion(second, subs)}`,
        `usage: tenurectl ${first} ${subs.join("|")} ...`,
      );
    }
  }
  if (helpAsked || shift === 1) return { kind: "help", text: commandHelp(command) };
  const usage = commandHelp(command).split("\n")[0] ?? "";
  const drop = new Set(words.slice(0, shift + used));
  const rest = tokens.filter((_, i) => !drop.has(i));
  const options: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...command.options };
  // Our own check first: it names the nearest flag, which parseArgs's message does not.
  for (let i = 0; i < rest.length; i++) {
    const t = rest[i] ?? "";
    if (!t.startsWith("-") || t === "-") continue;
    // A string flag's value is not a flag, even when it starts with "-".
    if (t.startsWith("--") && !t.includes("=") && options[t.slice(2)]?.type === "string") i++;
    const name = t.startsWith("--") ? (t.slice(2).split("=")[0] ?? "") : t.slice(1);
    const known = t.startsWith("--") ? name in options : Object.values(options).some((o) => o.short === name);
    if (!known)
      throw new CommandUsageError(
        `unknown flag ${t.split("=")[0]}${suggestion(
          `--${name}`,
          Object.keys(options).map((n) => `--${n}`),
        )}`,
        usage,
      );
  }
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: Object.fromEntries(
        Object.entries(options).map(([n, o]) => [n, { type: o.type, ...(o.short !== undefined ? { short: o.short } : {}) }]),
      ),
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new CommandUsageError(error instanceof Error ? error.message : String(error), usage);
  }
  const positionals = parsed.positionals;
  const required = command.positionals.filter((p) => p.optional !== true).length;
  if (positionals.length < required) {
    const missing = command.positionals.slice(positionals.length).filter((p) => p.optional !== true);
    throw new CommandUsageError(`missing ${missing.map((p) => p.name).join(" ")}`, usage);
  }
  if (positionals.length > command.positionals.length) {
    throw new CommandUsageError(`unexpected argument "${positionals[command.positionals.length]}"`, usage);
  }
  if (command.childCommand === true && child.length === 0) throw new CommandUsageError("give the command to run after --", usage);
  if (command.childCommand !== true && dashes >= 0) throw new CommandUsageError(`"${command.path.join(" ")}" takes no -- command`, usage);
  return { kind: "run", command, values: parsed.values as Values, positionals, child };
}
