// How a test starts a server process (or tenurectl): the compiled bundle when the test runner built one
// (testing/run_tests.ts runs tools/build.ts once and sets TEST_SERVER_BUILD_DIR), else the sources
// through tsx, so a test file run on its own (`node --import tsx --test FILE`) needs no build.
//
// The suite thereby tests what production runs (plain node on dist/), and each of its few hundred
// process starts loads one file instead of ~150 modules through the TypeScript loader.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { WITNESS_NODE_FLAGS } from "../../witness/node_flags.ts";

export type ServerProgram = "tenured" | "tenure-witness" | "tenurectl";

export const BUILD_DIR_ENV = "TEST_SERVER_BUILD_DIR";

const SOURCES: Readonly<Record<ServerProgram, string>> = {
  tenured: new URL("../../server/main.ts", import.meta.url).pathname,
  "tenure-witness": new URL("../../witness/main.ts", import.meta.url).pathname,
  tenurectl: new URL("../../cli/tenurectl.ts", import.meta.url).pathname,
};

/** The node arguments before the program's own flags (the witness's heap flags included, as deploy/ runs it). */
export function serverArgs(program: ServerProgram): string[] {
  const nodeFlags = program === "tenure-witness" ? WITNESS_NODE_FLAGS : [];
  const dir = process.env[BUILD_DIR_ENV];
  if (dir === undefined || dir === "") return [...nodeFlags, "--import", "tsx", SOURCES[program]];
  const bundle = join(dir, `${program}.mjs`);
  if (!existsSync(bundle)) throw new Error(`${BUILD_DIR_ENV}=${dir} but ${bundle} does not exist (run tools/build.ts)`);
  return [...nodeFlags, bundle];
}
