import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, loadConfig } from "./config.ts";
import { envOf, flagOf, helpText, SERVER_OPTIONS } from "./config_options.ts";
import { TENURE_VERSION } from "./version.ts";

/** Every file this test writes, removed at the end. */
const tempRoot = mkdtempSync(join(tmpdir(), "tenure-config-test-"));
after(() => rmSync(tempRoot, { recursive: true, force: true }));

const base = [
  "--id",
  "a",
  "--cluster-id",
  "c1",
  "--data-dir",
  "/tmp/x",
  "--peer-listen",
  "127.0.0.1:7101",
  "--client-listen",
  "127.0.0.1:7001",
  "--members",
  "a=127.0.0.1:7101/127.0.0.1:7001",
  "--insecure",
];

function refused(argv: readonly string[], env: Record<string, string> = {}): string {
  try {
    loadConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail(`accepted ${argv.join(" ")}`);
}

function yamlFile(text: string): string {
  const path = join(mkdtempSync(join(tempRoot, "config-")), "tenure.yaml");
  writeFileSync(path, text);
  return path;
}

describe("strict configuration: unknown names are refused with the nearest valid one", () => {
  it("a mistyped flag, either form", () => {
    assert.equal(
      refused([...base, "--electon-timeout-ticks", "20"]),
      "unknown flag --electon-timeout-ticks (did you mean --election-timeout-ticks?) (--help lists every option)",
    );
    assert.match(refused([...base, "--lock-delay=100"]), /unknown flag --lock-delay \(did you mean --lock-delay-ms\?\)/);
    assert.match(refused([...base, "--boostrap"]), /unknown flag --boostrap \(did you mean --bootstrap\?\)/);
  });

  it("a flag far from every option gets no guess", () => {
    assert.equal(refused([...base, "--frobnicate-everything", "1"]), "unknown flag --frobnicate-everything (--help lists every option)");
  });

  it("a mistyped TENURE_ environment variable; other variables are not ours", () => {
    assert.match(
      refused(base, { TENURE_LOCK_DELAY: "100" }),
      /^unknown environment variable TENURE_LOCK_DELAY \(did you mean TENURE_LOCK_DELAY_MS\?\)/,
    );
    assert.equal(loadConfig(base, { TENURE_LOCK_DELAY_MS: "100", PATH: "/bin", TENUREX: "1" }).lockDelayMs, 100);
  });

  it("a mistyped YAML key (case too), at the top level and in a member", () => {
    const path = yamlFile("lockDelayMS: 100\n");
    assert.match(
      refused([...base, "--config", path]),
      new RegExp(`^unknown key "lockDelayMS" in ${path} \\(did you mean lockDelayMs\\?\\)`),
    );
    const nested = yamlFile("members:\n  - { id: a, peerAdress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' }\n");
    const args = base.filter((a, i) => a !== "--members" && base[i - 1] !== "--members");
    assert.match(
      refused([...args, "--config", nested]),
      /unknown key "peerAdress" in members\[0\]: a member has id, peerAddress, clientAddress/,
    );
    assert.match(refused([...base, "--config", yamlFile("config: other.yaml\n")]), /unknown key "config"/);
  });

  it("every option of the table is accepted under its flag, env and YAML names (no row the loader does not take)", () => {
    for (const o of SERVER_OPTIONS) {
      if (o.key === "config") continue;
      for (const attempt of [
        () => loadConfig([...base, flagOf(o.key), "x"], {}),
        () => loadConfig(base, { [envOf(o.key)]: "x" }),
        () => loadConfig([...base, "--config", yamlFile(`${o.key}: x\n`)], {}),
      ]) {
        try {
          attempt();
        } catch (err) {
          // A bad value is fine here; an unknown name is the failure looked for.
          assert.doesNotMatch(String(err), /unknown (flag|environment variable|key)/, o.key);
        }
      }
    }
  });
});

describe("--help and --version", () => {
  it("the help lists every option with its default and names in each source", () => {
    const text = helpText("tenured", "summary");
    for (const o of SERVER_OPTIONS) {
      assert.ok(text.includes(flagOf(o.key)), o.key);
      assert.ok(text.includes(envOf(o.key)), o.key);
      assert.ok(text.includes(`[default: ${o.defaultShown}]`), o.key);
    }
    assert.ok(text.indexOf("--test-mode") > text.indexOf("Test-only options"), "test-only options are listed apart");
  });

  it("the compiled-in version is package.json's", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    assert.equal(TENURE_VERSION, pkg.version);
  });

  it("tenured and tenure-witness answer --help and --version with exit 0, before reading any other flag", () => {
    for (const [script, name] of [
      ["./main.ts", "tenured"],
      ["../witness/main.ts", "tenure-witness"],
    ] as const) {
      const path = new URL(script, import.meta.url).pathname;
      const help = spawnSync(process.execPath, ["--import", "tsx", path, "--no-such-flag", "--help"], { encoding: "utf8" });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^usage: ${name} \\[options\\]`));
      assert.match(help.stdout, /--election-timeout-ticks <integer> +election timeout, in ticks \[default: 10\]/);
      const version = spawnSync(process.execPath, ["--import", "tsx", path, "--version"], { encoding: "utf8" });
      assert.equal(version.status, 0, version.stderr);
      assert.equal(version.stdout, `${name} ${TENURE_VERSION}\n`);
    }
  });
});
