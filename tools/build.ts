// Builds the server processes to plain JavaScript: dist/tenured.mjs, dist/tenure-witness.mjs and
// the CLI dist/tenurectl.mjs,
// each one ESM bundle of the product's own modules, run with plain `node` (no tsx at run time).
//
//   node --import tsx tools/build.ts [--out-dir DIR]     (npm run build)
//
// Why a bundle (esbuild) instead of tsc's one-file-per-module output: the sources import each other
// with ".ts" extensions (run directly by tsx), which tsc does not rewrite; and a process that loads
// one file instead of ~150 modules through a TypeScript loader starts in a fraction of the CPU
// time, which is most of the cost of the test suite's real-process tests (testing/run_tests.ts
// builds once per run and hands the directory on in TEST_SERVER_BUILD_DIR).
//
// Packages from node_modules stay external (better-sqlite3 is a native addon; grpc-js, prom-client
// and yaml are loaded as installed), so the bundle needs `npm ci --omit=dev` beside it, nothing
// else. The .proto files are copied beside the bundle: proto/tenure_protos.ts resolves PROTO_ROOT
// from its own module's location, which inside a bundle is the bundle's directory.

import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildOptions, build } from "esbuild";
import { WITNESS_NODE_FLAGS } from "../witness/node_flags.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The programs the build makes: output file name -> entry module. */
export const BUILD_ENTRIES: Readonly<Record<string, string>> = {
  "tenured.mjs": "server/main.ts",
  "tenure-witness.mjs": "witness/main.ts",
  // The operator's CLI; beside tenured.mjs, which its snapshot commands run.
  "tenurectl.mjs": "cli/tenurectl.ts",
};

export const DEFAULT_BUILD_DIR = join(repoRoot, "dist");

/**
 * The first line of a bundle, so it runs as a program (npm's bin links): plain node, and the
 * witness with its heap flags (witness/node_flags.ts; `env -S` splits them, coreutils 8.30+).
 */
export function shebangOf(outFile: string): string {
  return outFile === "tenure-witness.mjs" ? `#!/usr/bin/env -S node ${WITNESS_NODE_FLAGS.join(" ")}` : "#!/usr/bin/env node";
}

/**
 * How every bundle of ours is built for Node 20: ESM, packages left to node_modules (resolved
 * from the repository at run time), linked source maps. The test bundle (testing/test_bundle.ts)
 * uses it too.
 */
export const NODE_BUNDLE_OPTIONS = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
} as const satisfies BuildOptions;

/** Builds every entry into outDir (emptied first) and copies the protos; returns outDir. */
export async function buildServer(outDir: string = DEFAULT_BUILD_DIR): Promise<string> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  for (const [outFile, entry] of Object.entries(BUILD_ENTRIES)) {
    await build({
      entryPoints: [join(repoRoot, entry)],
      outfile: join(outDir, outFile),
      ...NODE_BUNDLE_OPTIONS,
      banner: { js: shebangOf(outFile) },
    });
  }
  cpSync(join(repoRoot, "proto", "tenure"), join(outDir, "tenure"), { recursive: true });
  return outDir;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--out-dir");
  const outDir = i >= 0 ? process.argv[i + 1] : undefined;
  if (i >= 0 && outDir === undefined) {
    process.stderr.write("usage: node --import tsx tools/build.ts [--out-dir DIR]\n");
    process.exit(2);
  }
  const dir = await buildServer(outDir === undefined ? undefined : resolve(outDir));
  process.stdout.write(`built ${Object.keys(BUILD_ENTRIES).join(", ")} into ${dir}\n`);
}
