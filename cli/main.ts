// tenurectl's driver: parse, resolve the global flags, run the command with one client, map what
// it threw to an exit code (exit_codes.ts). Kept apart from the process (tenurectl.ts) so tests
// run it with their own argv, streams and signal.

import { TenureClient, TenureError } from "../client-sdk/index.ts";
import { COMMANDS } from "./commands.ts";
import { EXIT_OK, exitCodeOf, UsageError } from "./exit_codes.ts";
import { resolveGlobals } from "./globals.ts";
import { usageLine } from "./help.ts";
import { Output, type Sink } from "./output.ts";
import { CommandUsageError, parseCommandLine } from "./parse.ts";
import type { CommandSpec } from "./spec.ts";

export interface MainIo {
  readonly stdout: Sink;
  readonly stderr: Sink;
  /** Aborted when tenurectl is asked to stop (SIGINT, SIGTERM). */
  readonly signal: AbortSignal;
}

export async function main(argv: readonly string[], io: MainIo, table: readonly CommandSpec[] = COMMANDS): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv, table);
  } catch (error) {
    const usage = error instanceof CommandUsageError ? `\n${error.usage}` : "";
    io.stderr.write(`tenurectl: ${error instanceof Error ? error.message : String(error)}${usage}\n`);
    return exitCodeOf(error);
  }
  if (parsed.kind === "help") {
    io.stdout.write(parsed.text);
    return EXIT_OK;
  }
  let out = new Output("table", io.stdout, io.stderr);
  let client: TenureClient | null = null;
  try {
    const globals = resolveGlobals(parsed.values);
    out = new Output(globals.output, io.stdout, io.stderr);
    return await parsed.command.run({
      globals,
      values: parsed.values,
      positionals: parsed.positionals,
      child: parsed.child,
      out,
      signal: io.signal,
      client: () => {
        client ??= new TenureClient({
          endpoints: globals.endpoints,
          ...globals.security,
          ...(globals.bearerToken !== undefined ? { bearerToken: globals.bearerToken } : {}),
          defaultTimeoutMs: globals.timeoutMs,
        });
        return client;
      },
    });
  } catch (error) {
    const code = exitCodeOf(error);
    if (error instanceof UsageError) out.error(`${error.message}\n${usageLine(parsed.command)}`);
    else {
      const e = TenureError.from(error);
      out.error(`${parsed.command.path.join(" ")}: ${e.code}: ${e.message}`);
    }
    return code;
  } finally {
    (client as TenureClient | null)?.close();
  }
}
