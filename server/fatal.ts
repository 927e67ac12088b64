// The one way a Tenure process stops itself: DESIGN.md "a broken invariant stops the process; an
// expected failure is a value", and style-anchors §5.4 (assertions are never caught; storage
// failure is fatal to the node).
//
// Two questions, two functions:
//   isFatal(err)       a site that catches exceptions asks it: is this an error after which
//                      nothing this process says can be trusted? AssertionError (our own state
//                      broke its rules) and StorageCorruptError (the disk does not hold what it
//                      claims) are. An ordinary exception in one client call is not: it is
//                      answered INTERNAL and the server carries on (server/api/status_map.ts).
//   fatal(err, where)  writes ONE JSON line to stderr, synchronously, and exits with
//                      FATAL_EXIT_CODE, so the supervisor restarts the member and the storage
//                      checks decide at start whether it may rejoin. Callbacks that sit directly
//                      under the event loop (the node's process pass, the Raft tick, an exception
//                      nobody caught) call it for every error: nothing above them could handle it.
//
// Tests replace the exit with setFatalHandler, the only test hook here. The deterministic
// simulator never comes through this module: it drives the core and node directly and treats a
// thrown AssertionError as a violation of the run.

import { writeSync } from "node:fs";
import { AssertionError } from "./core/assert.ts";
import { StorageCorruptError } from "./storage/raft_storage.ts";

/** sysexits EX_SOFTWARE: "an internal software error has been detected". Distinct from 1 and 2. */
export const FATAL_EXIT_CODE = 70;

export interface FatalReport {
  readonly error: unknown;
  /** What the process was doing, e.g. "peer message from b (heartbeat)", "client call Lock.Acquire". */
  readonly where: string;
  readonly exitCode: number;
  /** The JSON line written to stderr, without its newline. */
  readonly line: string;
}

export type FatalHandler = (report: FatalReport) => void;

export interface FatalOptions {
  /** Default FATAL_EXIT_CODE; startup failures use 1, or 2 for a bad configuration. */
  readonly exitCode?: number;
  /** Default true; a configuration error is the user's, and a stack would only hide its message. */
  readonly withStack?: boolean;
}

/** True for errors after which this process must not go on serving. */
export function isFatal(error: unknown): boolean {
  return error instanceof AssertionError || error instanceof StorageCorruptError;
}

/** `{"event":"fatal","error":"AssertionError: ...","where":"...",...}`: one line, no newline. */
export function fatalLine(error: unknown, where: string, options: FatalOptions = {}): string {
  const described = error instanceof Error ? `${error.name}: ${error.message}` : `thrown non-Error: ${String(error)}`;
  const stack = options.withStack !== false && error instanceof Error ? error.stack : undefined;
  return JSON.stringify({ event: "fatal", error: described, where, timeMs: Date.now(), stack });
}

const exitProcess: FatalHandler = (report) => {
  try {
    // writeSync, not process.stderr.write: the line must be out before process.exit.
    writeSync(2, `${report.line}\n`);
  } catch {
    // stderr is gone (closed pipe): exit all the same.
  }
  process.exit(report.exitCode);
};

let handler: FatalHandler = exitProcess;

/**
 * Stops the process. Never returns in a real process. Under a test handler it returns, and the
 * caller then goes on as for an ordinary error (e.g. answers INTERNAL), so tests can observe both.
 */
export function fatal(error: unknown, where: string, options: FatalOptions = {}): void {
  const exitCode = options.exitCode ?? FATAL_EXIT_CODE;
  handler({ error, where, exitCode, line: fatalLine(error, where, options) });
}

/** Runs `fn`; any throw is fatal (for callbacks directly under the event loop). */
export function runOrFatal(where: string, fn: () => void): void {
  try {
    fn();
  } catch (error) {
    fatal(error, where);
  }
}

/**
 * TEST-ONLY: replaces the write-and-exit so a test can see fatal() without losing its runner.
 * Returns the function that restores the previous handler.
 */
export function setFatalHandler(next: FatalHandler): () => void {
  const previous = handler;
  handler = next;
  return () => {
    handler = previous;
  };
}
