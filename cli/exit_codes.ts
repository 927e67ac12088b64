// tenurectl's exit codes, the contract scripts rely on (shown by `tenurectl --help`). A failure is
// sorted by what the caller should do next: 1 the cluster answered and said no (try something
// else), 2 the command line is wrong (fix it), 3 the cluster did not answer in time (try again
// later). `lock NAME -- cmd` exits with the child's own status instead (128 + signal if killed).

import { TenureError } from "../client-sdk/index.ts";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNAVAILABLE = 3;

export const EXIT_CODES_HELP = [
  "exit codes:",
  "  0  ok (token check: the token is current)",
  "  1  the operation failed: refused, not held, lock busy, wait timed out, token not current",
  "  2  usage error: unknown command or flag, bad value (also a value the server refused as invalid)",
  "  3  unavailable: no member answered, no leader, leader overloaded, deadline passed, outcome unknown",
  "  lock NAME -- cmd: the child's exit status (128 + signal number when it was killed)",
].join("\n");

/** A command-line mistake: exit 2 with this message (and the usage line of the command). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The exit code for an error thrown by a command. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE;
  const e = TenureError.from(error);
  switch (e.code) {
    case "INVALID_ARGUMENT":
      return EXIT_USAGE;
    case "UNAVAILABLE":
    case "NOT_LEADER":
    case "NO_LEADER":
    case "OUTCOME_UNKNOWN":
    case "OVERLOADED":
    case "CANCELLED":
    case "CLOSED":
      return EXIT_UNAVAILABLE;
    case "DEADLINE_EXCEEDED":
      // The server's own TIMEOUT is a wait that ended unsatisfied (a lock still held): a "no".
      // Without a reason the deadline passed on our side: the cluster did not answer in time.
      return e.reason === "TIMEOUT" ? EXIT_FAILED : EXIT_UNAVAILABLE;
    default:
      return EXIT_FAILED;
  }
}

/** `lock -- cmd`: the child's status as a shell reports it. */
export function childExitCode(code: number | null, signal: NodeJS.Signals | null, signalNumber: (s: NodeJS.Signals) => number): number {
  if (code !== null) return code;
  if (signal !== null) return 128 + signalNumber(signal);
  return EXIT_FAILED;
}
