// Runs test files in one process (testing/run_tests.ts starts every job with it: a system file or
// a simulator file alone, the small unit files several at a time):
//   node --import tsx --test-reporter=spec --test-force-exit testing/unit_batch.ts FILE...
// or, as the runner does, from the run's test bundle (testing/test_bundle.ts), without tsx:
//   TEST_BUNDLE_DIR=DIR node --test-reporter=spec --test-force-exit DIR/testing/unit_batch.mjs FILE...
//
// Why: a file run by `node --test` costs two processes that each load the TypeScript loader, and
// then its own copy of the modules it tests; for the hundred small unit files that start-up was
// most of their CPU. Here each file is imported inside a suite named after it, so its tests nest
// under the file's name in the report, its top-level hooks stay its own, and a failure names the
// file. The files run one after another; module state is shared, so a file that leaves global
// state behind (a switch left on, a handler not restored) fails the files after it: that is a bug
// in the file, and the runner's --isolated flag runs every file in its own process to find it.

import { describe } from "node:test";
import { pathToFileURL } from "node:url";
import { isAbsolute, resolve } from "node:path";
import { bundledPath, TEST_BUNDLE_DIR_ENV } from "./bundle_paths.ts";

/** Per file, as `--test-timeout` is per test under `node --test` (it does not apply here). */
const FILE_TIMEOUT_MS = 10 * 60_000;

const files = process.argv.slice(2);
/** Set by the runner when it built the test bundle: a repository-relative .ts file is imported from
 *  it, under its own name; any other path (a test's own fixture) as given. */
const bundleDir = process.env[TEST_BUNDLE_DIR_ENV];
if (files.length === 0) {
  process.stderr.write("usage: node --import tsx --test-reporter=spec --test-force-exit testing/unit_batch.ts FILE...\n");
  process.exit(2);
}
for (const file of files) {
  describe(file, { timeout: FILE_TIMEOUT_MS }, async () => {
    const fromBundle = bundleDir !== undefined && !isAbsolute(file) && file.endsWith(".ts");
    await import(pathToFileURL(fromBundle ? bundledPath(bundleDir, file) : resolve(file)).href);
  });
}
