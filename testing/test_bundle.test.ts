// The test bundle must not change what a module sees of itself: each module keeps its own
// import.meta.url (the files that find fixtures beside themselves depend on it), also when
// esbuild hoists several modules into one shared chunk, and text that spells import.meta.url
// (the layout test's fixture) stays text.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { bundledPath } from "./bundle_paths.ts";
import { buildTestBundle } from "./test_bundle.ts";

describe("test bundle", () => {
  const root = mkdtempSync(join(tmpdir(), "tenure-test-bundle-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("keeps each module's own import.meta.url and leaves strings alone", async () => {
    writeFileSync(join(root, "shared.ts"), "export const sharedUrl: string = import.meta.url;\n");
    writeFileSync(join(root, "other_shared.ts"), "export const otherUrl: string = import.meta.url;\n");
    writeFileSync(
      join(root, "a.ts"),
      [
        'import { sharedUrl } from "./shared.ts";',
        'import { otherUrl } from "./other_shared.ts";',
        "export const own: string = import.meta.url;",
        'export const text = "import.meta.url";',
        "export const template = `new URL(x, import.meta.url)`;",
        "export { otherUrl, sharedUrl };",
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(root, "b.ts"),
      '#!/usr/bin/env node\nimport { sharedUrl } from "./shared.ts";\nimport { otherUrl } from "./other_shared.ts";\nexport const own: string = import.meta.url;\nexport { otherUrl, sharedUrl };\n',
    );
    const out = join(root, "bundle");
    await buildTestBundle(root, out, ["a.ts", "b.ts"]);

    const a = (await import(pathToFileURL(bundledPath(out, "a.ts")).href)) as Record<string, string>;
    const b = (await import(pathToFileURL(bundledPath(out, "b.ts")).href)) as Record<string, string>;
    const url = (f: string) => pathToFileURL(join(root, f)).href;
    assert.equal(a.own, url("a.ts"));
    assert.equal(b.own, url("b.ts"));
    assert.equal(a.sharedUrl, url("shared.ts"));
    assert.equal(a.otherUrl, url("other_shared.ts"));
    assert.equal(b.sharedUrl, url("shared.ts"));
    assert.equal(a.text, "import.meta.url");
    assert.equal(a.template, "new URL(x, import.meta.url)");
  });

  it("refuses an output directory outside the repository", async () => {
    await assert.rejects(buildTestBundle(join(root, "repo"), join(root, "elsewhere"), []), /must be inside/);
  });
});
