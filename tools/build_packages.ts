// Builds the installable client package, packages/client (@tenure/client: the SDK, and the storage
// guard as the subpaths ./guard and ./guard/sqlite), into packages/client/dist: ESM JavaScript
// and .d.ts types compiled by tsc from client-sdk/ and proto/tenure_protos.ts, plus the .proto
// files the SDK loads at run time.
//
//   node --import tsx tools/build_packages.ts [--pack DIR]      (npm run build:packages)
//
// --pack DIR also runs `npm pack` into DIR and prints the tarball's path.
//
// tsc, not a bundler: a library ships its modules and types as they are, so a user's bundler
// and editor see the same structure as the sources. The sources import with ".ts" extensions;
// rewriteRelativeImportExtensions (TypeScript 5.7+) turns them into ".js" on emit. The layout
// under dist/ mirrors the repository (dist/client-sdk, dist/proto), so proto/tenure_protos.ts
// finds the protos beside itself exactly as it does in the repository.

import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CLIENT_PACKAGE_DIR = join(repoRoot, "packages", "client");

/** The SDK's own sources: everything under client-sdk/ but tests, and the proto loader. */
function packageSources(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return walk(p);
      return name.endsWith(".ts") && !name.endsWith(".test.ts") ? [p] : [];
    });
  return [...walk(join(repoRoot, "client-sdk")), join(repoRoot, "proto", "tenure_protos.ts")];
}

/** Compiles into packages/client/dist (emptied first); returns that directory. */
export function buildClientPackage(): string {
  const outDir = join(CLIENT_PACKAGE_DIR, "dist");
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const tsconfigPath = join(CLIENT_PACKAGE_DIR, "tsconfig.build.json");
  const tsconfig = {
    extends: relative(CLIENT_PACKAGE_DIR, join(repoRoot, "tsconfig.json")),
    compilerOptions: {
      noEmit: false,
      declaration: true,
      // Members marked @internal (client.rpc, client.transport, Lease.renewed, ...) are left out
      // of the types: only the documented surface is visible to a user's code.
      stripInternal: true,
      sourceMap: true,
      inlineSources: true,
      rewriteRelativeImportExtensions: true,
      rootDir: relative(CLIENT_PACKAGE_DIR, repoRoot),
      outDir: "dist",
    },
    include: [],
    files: packageSources().map((f) => relative(CLIENT_PACKAGE_DIR, f)),
  };
  writeFileSync(tsconfigPath, `${JSON.stringify(tsconfig, null, 2)}\n`);
  try {
    execFileSync(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", tsconfigPath], { stdio: "inherit" });
  } finally {
    rmSync(tsconfigPath, { force: true });
  }
  cpSync(join(repoRoot, "proto", "tenure"), join(outDir, "proto", "tenure"), { recursive: true });
  return outDir;
}

/** `npm pack` of the built package into `intoDir`; returns the tarball's path. */
export function packClientPackage(intoDir: string): string {
  mkdirSync(intoDir, { recursive: true });
  const out = execFileSync("npm", ["pack", "--silent", "--pack-destination", intoDir], { cwd: CLIENT_PACKAGE_DIR, encoding: "utf8" });
  const name = out.trim().split("\n").at(-1) ?? "";
  return join(intoDir, name);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dist = buildClientPackage();
  process.stdout.write(`built @tenure/client into ${dist}\n`);
  const i = process.argv.indexOf("--pack");
  if (i >= 0) {
    const dir = process.argv[i + 1];
    if (dir === undefined) {
      process.stderr.write("usage: node --import tsx tools/build_packages.ts [--pack DIR]\n");
      process.exit(2);
    }
    process.stdout.write(`${packClientPackage(resolve(dir))}\n`);
  }
}
