// The test files as plain JavaScript for one `npm test` run (testing/run_tests.ts): one esbuild
// build of every test file and of testing/unit_batch.ts, with code splitting, into a directory
// that mirrors the tree (testing/sim/vopr.test.ts -> <dir>/testing/sim/vopr.test.mjs). The jobs
// then run with plain `node`, without the TypeScript loader: tsx costs about 0.2 s of CPU per
// process before the first import and about twice the CPU per imported module (its hooks run on
// a thread of their own); a system test's process loads in 0.25 s instead of 0.65 s.
//
// What stays as it was:
// - import.meta.url is each source file's own URL (set per module at build): the files that find a
//   fixture, a script or the protos beside themselves find the same files, and a module's "am I
//   the main script" check stays false, as it is for an imported module;
// - one instance of each module per process: shared modules are chunks that every test file of a
//   batch imports, as tsx loaded each module once;
// - the children a test starts (`node --import tsx some_script.ts`, the built server) run as
//   they did;
// - packages stay external, resolved from the repository's node_modules (the directory is inside
//   the repository for that).
// Failures point into the bundle, whose modules carry their source path in a comment; linked
// source maps are written beside it, for `node --enable-source-maps` when a trace is wanted.
// TEST_BUNDLE=0 runs the files through tsx as before (the runner's --isolated does not change it).

import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { build, type Plugin } from "esbuild";
import { NODE_BUNDLE_OPTIONS } from "../tools/build.ts";

/**
 * Each source module's own URL, declared at the top of the module (on its first line, so line
 * numbers stay) and put in place of `import.meta.url` by esbuild's define, which works on the syntax
 * tree: a string or template that spells import.meta.url stays as written. esbuild renames the
 * top-level constant per module when it hoists modules into one chunk, so each keeps its own.
 */
const SOURCE_URL_NAME = "__tenureTestSourceUrl";

const sourceUrls: Plugin = {
  name: "source-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes("/node_modules/")) return undefined;
      const source = readFileSync(args.path, "utf8");
      const declaration = `const ${SOURCE_URL_NAME} = ${JSON.stringify(pathToFileURL(args.path).href)};`;
      // A shebang must stay first; its line gives way to the declaration.
      const contents = source.startsWith("#!") ? source.replace(/^#![^\n]*/, declaration) : `${declaration} ${source}`;
      return { contents, loader: "ts" };
    });
  },
};

/** Builds `files` (repository-relative .ts paths) into `outDir`, which must lie inside `repoRoot`. */
export async function buildTestBundle(repoRoot: string, outDir: string, files: readonly string[]): Promise<void> {
  if (relative(repoRoot, outDir).startsWith("..")) throw new Error(`the test bundle must be inside ${repoRoot}: ${outDir}`);
  await build({
    entryPoints: files.map((f) => join(repoRoot, f)),
    outbase: repoRoot,
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    entryNames: "[dir]/[name]",
    chunkNames: "chunks/[name]-[hash]",
    ...NODE_BUNDLE_OPTIONS,
    splitting: true,
    define: { "import.meta.url": SOURCE_URL_NAME },
    plugins: [sourceUrls],
  });
}
