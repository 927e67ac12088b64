// The shape of tenurectl's command table: every command declares its words, arguments and flags,
// and the parser (parse.ts), the help (help.ts) and the dispatcher (tenurectl.ts) read only this.

import type { TenureClient } from "../client-sdk/index.ts";
import type { GlobalOptions } from "./globals.ts";
import type { Output } from "./output.ts";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly description: string;
  /** The value's placeholder in the help (string flags), e.g. MS. */
  readonly valueName?: string;
  readonly short?: string;
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly optional?: boolean;
}

export type Values = Readonly<Record<string, string | boolean | undefined>>;

export interface CommandContext {
  readonly globals: GlobalOptions;
  readonly values: Values;
  readonly positionals: readonly string[];
  /** The words after `--` (lock NAME -- command args). */
  readonly child: readonly string[];
  readonly out: Output;
  /** One client for the whole command (made on first use, closed when the command ends). */
  client(): TenureClient;
  /** Aborted by SIGINT / SIGTERM to tenurectl. */
  readonly signal: AbortSignal;
}

export interface CommandSpec {
  /** The command's words: ["status"], ["lease", "grant"]. */
  readonly path: readonly string[];
  readonly summary: string;
  /** More help text, shown by --help under the usage line. */
  readonly details?: string;
  readonly positionals: readonly PositionalSpec[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Takes `-- command args...` (and requires it). */
  readonly childCommand?: boolean;
  /** Shown in the usage line instead of the generated one (for `lock NAME -- cmd`). */
  readonly usage?: string;
  run(ctx: CommandContext): Promise<number>;
}
