// tenurectl: the operator's command line for a Tenure cluster (`tenurectl --help`). The process
// part only: SIGINT/SIGTERM become the commands' abort signal (a second one exits at once), and
// the exit code is main()'s.

import { EXIT_FAILED } from "./exit_codes.ts";
import { main } from "./main.ts";

const stop = new AbortController();
let interrupts = 0;
for (const s of ["SIGINT", "SIGTERM"] as const) {
  process.on(s, () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(128 + (s === "SIGINT" ? 2 : 15));
    stop.abort(new Error(`interrupted by ${s}`));
  });
}

try {
  process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: stop.signal });
} catch (error) {
  process.stderr.write(`tenurectl: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = EXIT_FAILED;
}
// The gRPC channels are closed; anything left (a stray timer) must not hold the exit.
process.exit();
