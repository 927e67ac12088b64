#!/usr/bin/env node
// `npx tenurectl` (package.json "bin"). In a checkout with the dev dependencies (`npm ci`), tsx
// runs the TypeScript sources, so the command never runs a stale bundle and needs no build step.
// Without tsx (a production install, `npm ci --omit=dev`) it runs the compiled
// dist/tenurectl.mjs that `npm run build` makes (tools/build.ts).
import { existsSync } from "node:fs";

const source = new URL("../tenurectl.ts", import.meta.url);
const compiled = new URL("../../dist/tenurectl.mjs", import.meta.url);
let tsx = null;
try {
  tsx = await import("tsx/esm/api");
} catch {
  tsx = null; // no dev dependencies: use the bundle
}
if (tsx !== null && existsSync(source)) {
  tsx.register();
  await import(source.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write("tenurectl: neither tsx nor dist/tenurectl.mjs is installed here: run npm run build\n");
  process.exit(1);
}
