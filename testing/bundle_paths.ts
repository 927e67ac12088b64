// Where a test file lands in the run's test bundle (testing/test_bundle.ts), shared by the runner
// that builds it and testing/unit_batch.ts that imports from it (which must not load esbuild).

import { join } from "node:path";

/** The environment variable that hands a job the bundle's directory (unset: run the .ts sources). */
export const TEST_BUNDLE_DIR_ENV = "TEST_BUNDLE_DIR";

/** `file`, a repository-relative .ts path, inside a bundle built into `bundleDir`. */
export function bundledPath(bundleDir: string, file: string): string {
  return join(bundleDir, file.replace(/\.ts$/, ".mjs"));
}
