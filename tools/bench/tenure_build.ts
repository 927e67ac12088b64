// The bench measures the COMPILED server, as production runs it: tools/build.ts bundles
// tenured and tenure-witness into a directory of the bench's own (not dist/, which `npm run build`
// and the test runner own), and the members run `node <dir>/tenured.mjs`, no TypeScript loader.
// The directory is under the repository's node_modules/.cache (git-ignored): the bundle keeps
// its npm packages external, and Node finds them by walking up from the bundle's own location.

import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildServer } from "../build.ts";
import { registerCleanup } from "./cleanup.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface TenureBuild {
  readonly dir: string;
  readonly tenured: string;
  readonly witness: string;
  remove(): void;
}

export async function buildTenure(): Promise<TenureBuild> {
  const target = join(REPO_ROOT, "node_modules", ".cache", "tenure-bench", `build-${process.pid}`);
  const remove = registerCleanup(() => rmSync(target, { recursive: true, force: true }));
  const dir = await buildServer(target);
  return {
    dir,
    tenured: join(dir, "tenured.mjs"),
    witness: join(dir, "tenure-witness.mjs"),
    remove,
  };
}
