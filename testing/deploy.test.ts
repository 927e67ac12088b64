// The deploy kit (deploy/) checked against the code, statically (issue 16 point 3): a test that
// fails when a deploy file drifts from what the programs take. No cluster is started and nothing
// is built; Docker is not needed (the Dockerfile and the compose files are read, not run).
//
// - Every file under deploy/ is known here, with the checks that cover it: a new file fails the
//   test until it is added (KNOWN below), and deploy/README.md must name it.
// - Every YAML file (and the tenured YAML inside the Kubernetes ConfigMaps) parses.
// - Every tenured/tenure-witness flag on a command line (Dockerfile, compose, Kubernetes, systemd,
//   and the commands quoted in comments and in the .md files), every TENURE_* variable, and every
//   key of a tenured YAML file is an option of server/config_options.ts (the one table tenured and
//   tenure-witness load through server/process_main.ts), read at run time; each member's config
//   also goes through tenured's own loader (server/config.ts) with the environment its
//   deployment gives it.
// - Every `tenurectl ...` command in the .md files (and in comments) parses with tenurectl's own
//   parser and command table (cli/parse.ts, cli/commands.ts): unknown commands, flags or missing
//   arguments fail.
// - The Dockerfile: two stages, better-sqlite3 built (npm ci) in the build stage only, what it
//   copies exists and covers every module the bundles import (tools/build.ts BUILD_ENTRIES), a
//   non-root USER, the data directory on a VOLUME, a HEALTHCHECK on /readyz, an entrypoint the
//   build makes.
// - systemd: NoNewPrivileges=yes, PrivateTmp=yes, ProtectSystem=strict, ReadWritePaths covering
//   the data directory, ExecStart a built bundle, and `systemd-analyze verify` when installed.
// - Kubernetes: a StatefulSet per role on a headless Service, claims, probes on /readyz and
//   /healthz at the metrics port, a PodDisruptionBudget that keeps a quorum, TLS from Secrets,
//   the witness in its own small StatefulSet pinned to a zone.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { parseAuthConfig } from "../server/auth/auth_config.ts";
import { loadConfig, type ServerConfig } from "../server/config.ts";
import { envOf, flagOf, isOptionKey, SERVER_OPTIONS } from "../server/config_options.ts";
import { COMMANDS } from "../cli/commands.ts";
import { parseCommandLine } from "../cli/parse.ts";
import { BUILD_ENTRIES, shebangOf } from "../tools/build.ts";
import { WITNESS_NODE_FLAGS } from "../witness/node_flags.ts";
import { logicalLines, tenurectlCommands, words } from "./kits/command_lines.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const deployDir = join(repoRoot, "deploy");
const read = (rel: string): string => readFileSync(join(repoRoot, rel), "utf8");

type Kind =
  | "markdown"
  | "dockerfile"
  | "dockerignore"
  | "gitignore"
  | "compose"
  | "member-config"
  | "auth-config"
  | "kubernetes"
  | "systemd"
  | "prometheus-rules"
  | "prometheus-rules-test"
  | "prometheus-config"
  | "grafana-dashboard";

/** Every file of deploy/ and what checks it. A file not listed fails "every file is known". */
const KNOWN: Readonly<Record<string, Kind>> = {
  "deploy/README.md": "markdown",
  "deploy/WITNESS.md": "markdown",
  "deploy/RUNBOOK.md": "markdown",
  "deploy/Dockerfile": "dockerfile",
  "deploy/Dockerfile.dockerignore": "dockerignore",
  "deploy/compose/.gitignore": "gitignore",
  "deploy/compose/three-voters.yaml": "compose",
  "deploy/compose/two-voters-witness.yaml": "compose",
  "deploy/compose/config/three-voters.yaml": "member-config",
  "deploy/compose/config/two-voters-witness.yaml": "member-config",
  "deploy/config/three-sites-a.yaml": "member-config",
  "deploy/config/two-sites-witness-w.yaml": "member-config",
  "deploy/config/auth.yaml": "auth-config",
  "deploy/kubernetes/voters.yaml": "kubernetes",
  "deploy/kubernetes/witness.yaml": "kubernetes",
  "deploy/systemd/tenured.service": "systemd",
  "deploy/systemd/tenure-witness.service": "systemd",
  // Checked by testing/alerts.test.ts: metric names against the registry, runbook sections,
  // promtool check rules / test rules / check config; here only that they parse.
  "deploy/prometheus/tenure-alerts.yaml": "prometheus-rules",
  "deploy/prometheus/tenure-alerts.test.yaml": "prometheus-rules-test",
  "deploy/prometheus/prometheus.yaml": "prometheus-config",
  "deploy/grafana/tenure-dashboard.json": "grafana-dashboard",
};

/** deploy/compose/tls/ holds the operator's own certificates and keys (gitignored), never ours. */
const LOCAL_ONLY = ["deploy/compose/tls/"];

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    return d.isDirectory() ? walk(p) : [relative(repoRoot, p).split("\\").join("/")];
  });
}

const deployFiles = walk(deployDir).filter((f) => !LOCAL_ONLY.some((l) => f.startsWith(l)));
const filesOf = (kind: Kind): string[] => Object.keys(KNOWN).filter((f) => KNOWN[f] === kind);

// ------------------------------------------------------------------ the option table, read now

const SERVER_FLAGS = new Set([...SERVER_OPTIONS.map((o) => flagOf(o.key)), "--help", "--version"]);
const SERVER_ENVS = new Set(SERVER_OPTIONS.map((o) => envOf(o.key)));
/** The variables tenurectl sets for the command it supervises (lock NAME -- cmd), read from its source. */
const CLI_CHILD_ENVS = new Set([...read("cli/cmd_lock.ts").matchAll(/\b(TENURE_[A-Z0-9_]+):/g)].map((m) => m[1] ?? ""));
const BUNDLES = Object.keys(BUILD_ENTRIES);
const MEMBER_BUNDLES = { voter: "tenured.mjs", witness: "tenure-witness.mjs" } as const;

function unknownFlags(flags: readonly string[]): string[] {
  return flags.filter((f) => !SERVER_FLAGS.has(f.split("=")[0] ?? f));
}

// ------------------------------------------------------------------ text helpers

/**
 * The arguments given to tenured or tenure-witness on every command line of a text: what follows
 * the program (its bundle, its source entry, `npm run witness --`, or `docker compose run --rm
 * SERVICE`, whose words go to the image's entrypoint).
 */
function memberCommandLines(text: string): { line: string; args: string[] }[] {
  const out: { line: string; args: string[] }[] = [];
  const program =
    /(?:tenured\.mjs|tenure-witness\.mjs|server\/main\.ts|witness\/main\.ts|npm run witness --|compose\b.*\brun --rm \S+)(.*)$/;
  for (const line of logicalLines(text)) {
    const m = program.exec(line);
    if (m?.[1] !== undefined) out.push({ line: line.trim(), args: words(m[1]) });
  }
  return out;
}

function tenureEnvNames(text: string): string[] {
  return [...new Set([...text.matchAll(/\bTENURE_[A-Z0-9_]*[A-Z0-9]\b/g)].map((m) => m[0]))];
}

// ------------------------------------------------------------------ loading member configs

const scratch = mkdtempSync(join(tmpdir(), "tenure-deploy-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** tenured's own loader over a YAML text, with the flags and environment a deployment gives. */
function loadMember(yamlText: string, args: readonly string[], env: Record<string, string>, label: string): ServerConfig {
  const file = join(scratch, `${label.replace(/[^A-Za-z0-9]+/g, "_")}.yaml`);
  writeFileSync(file, yamlText);
  const i = args.indexOf("--config");
  const argv = i >= 0 ? [...args.slice(0, i), "--config", file, ...args.slice(i + 2)] : ["--config", file, ...args];
  try {
    return loadConfig(argv, env);
  } catch (error) {
    throw new Error(`${label}: tenured's loader refuses it: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function assertKeysAreOptions(yamlText: string, label: string): void {
  const doc = parseYaml(yamlText) as Record<string, unknown>;
  assert.ok(doc !== null && typeof doc === "object", `${label}: a tenured config is a mapping`);
  const bad = Object.keys(doc).filter((k) => !isOptionKey(k) || k === "config");
  assert.deepEqual(bad, [], `${label}: keys that are not options of server/config_options.ts`);
}

/** A member runs as the witness exactly when its bundle is tenure-witness.mjs. */
function assertProgramFits(config: ServerConfig, bundle: string, label: string): void {
  const witness = config.witnesses.includes(config.id);
  assert.equal(bundle, witness ? MEMBER_BUNDLES.witness : MEMBER_BUNDLES.voter, `${label}: member ${config.id} runs ${bundle}`);
}

function assertNoBootstrap(args: readonly string[], env: Record<string, string>, label: string): void {
  assert.ok(!args.includes("--bootstrap"), `${label}: --bootstrap in a service definition (first start only)`);
  assert.ok(!("TENURE_BOOTSTRAP" in env), `${label}: TENURE_BOOTSTRAP in a service definition (first start only)`);
}

/**
 * A launch `node [node flags] BUNDLE [args]`: the bundle is the first word naming a .mjs file.
 * The witness's launches must carry its heap flags (witness/node_flags.ts), a voter's none.
 */
function nodeLaunch(command: readonly string[], label: string): { bundle: string; bundlePath: string; args: string[] } {
  const at = command.findIndex((w, i) => i > 0 && w.endsWith(".mjs"));
  assert.ok(at > 0, `${label}: no bundle in ${command.join(" ")}`);
  const bundlePath = command[at] ?? "";
  const bundle = posix.basename(bundlePath);
  const nodeFlags = command.slice(1, at);
  const expected = bundle === MEMBER_BUNDLES.witness ? WITNESS_NODE_FLAGS : [];
  assert.deepEqual(nodeFlags, [...expected], `${label}: node flags before ${bundle} (witness/node_flags.ts)`);
  return { bundle, bundlePath, args: command.slice(at + 1) };
}

const portOf = (hostPort: string): number => Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));

// ------------------------------------------------------------------ the Dockerfile

interface Instruction {
  readonly op: string;
  readonly args: string;
}

function dockerInstructions(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw) && pending === "") continue;
    if (/^\s*#/.test(raw)) continue;
    if (raw.endsWith("\\")) {
      pending += `${raw.slice(0, -1)} `;
      continue;
    }
    const line = (pending + raw).trim();
    pending = "";
    if (line === "") continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile: cannot read "${line}"`);
    const ins = { op: m[1] ?? "", args: m[2] ?? "" };
    if (ins.op === "FROM") stages.push([]);
    assert.ok(stages.length > 0, "Dockerfile: an instruction before FROM");
    stages[stages.length - 1]?.push(ins);
  }
  return stages;
}

const execForm = (args: string): string[] => JSON.parse(args) as string[];

/** Relative imports of a module (static, dynamic, new URL(..., import.meta.url)). */
function relativeImports(code: string): string[] {
  const patterns = [
    /(?:from\s+|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']*)["']/g,
    /new URL\(\s*["'](\.{1,2}\/[^"']*\.ts)["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  return patterns.flatMap((p) => [...code.matchAll(p)].map((m) => m[1] ?? ""));
}

/** Every repository file the build entries reach through relative imports. */
function importClosure(entries: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const todo = entries.map((e) => join(repoRoot, e));
  while (todo.length > 0) {
    const file = todo.pop() ?? "";
    const rel = relative(repoRoot, file).split("\\").join("/");
    if (seen.has(rel)) continue;
    seen.add(rel);
    if (!file.endsWith(".ts")) continue;
    for (const spec of relativeImports(readFileSync(file, "utf8"))) {
      const target = resolve(dirname(file), spec);
      if (existsSync(target) && statSync(target).isFile()) todo.push(target);
    }
  }
  return seen;
}

describe("deploy/: every file is known and covered", () => {
  it("every file under deploy/ is known to this test (add a new one to KNOWN with its checks)", () => {
    const unknown = deployFiles.filter((f) => KNOWN[f] === undefined);
    assert.deepEqual(unknown, [], "files in deploy/ that no check covers");
    const missing = Object.keys(KNOWN).filter((f) => !deployFiles.includes(f));
    assert.deepEqual(missing, [], "files this test expects in deploy/");
  });

  it("deploy/README.md names every file, and every deploy/ path named in the .md files exists", () => {
    const readme = read("deploy/README.md");
    const unnamed = Object.keys(KNOWN).filter((f) => f !== "deploy/README.md" && !readme.includes(f.slice("deploy/".length)));
    assert.deepEqual(unnamed, [], "deploy/README.md does not name these files");
    for (const md of filesOf("markdown")) {
      for (const m of read(md).matchAll(/\bdeploy\/[A-Za-z0-9_./-]*[A-Za-z0-9_]/g)) {
        const local = LOCAL_ONLY.some((l) => `${m[0]}/`.startsWith(l));
        assert.ok(local || existsSync(join(repoRoot, m[0])), `${md} names ${m[0]}, which does not exist`);
      }
    }
  });

  it("every YAML file parses (all documents)", () => {
    for (const f of deployFiles.filter((f) => /\.ya?ml$/.test(f))) {
      for (const doc of parseAllDocuments(read(f))) {
        assert.deepEqual(
          doc.errors.map((e) => e.message),
          [],
          `${f} does not parse`,
        );
      }
    }
  });
});

describe("deploy/: flags, TENURE_* variables and tenurectl commands exist in the code", () => {
  const texts = Object.keys(KNOWN).map((f) => ({ file: f, text: read(f) }));

  it("tenure-witness takes the same option table as tenured", () => {
    // witness/main.ts runs through runProcess (server/process_main.ts), which loads the config
    // with server/config.ts and the table of server/config_options.ts: one set of names.
    const witnessMain = read("witness/main.ts");
    assert.match(witnessMain, /from "\.\.\/server\/process_main\.ts"/);
    assert.match(witnessMain, /\brunProcess\(/);
    assert.match(read("server/process_main.ts"), /loadConfig\(process\.argv\.slice\(2\), process\.env\)/);
  });

  it("every flag given to tenured or tenure-witness is an option", () => {
    let seen = 0;
    for (const { file, text } of texts) {
      for (const { line, args } of memberCommandLines(text)) {
        seen++;
        const flags = args.filter((a) => a.startsWith("--"));
        assert.deepEqual(unknownFlags(flags), [], `${file}: "${line}" gives tenured flags it does not take`);
      }
    }
    assert.ok(seen >= 10, `only ${seen} member command lines found: the extraction broke`);
  });

  it("every launch of the witness with node carries its heap flags (witness/node_flags.ts), and so does its bundle's shebang", () => {
    let seen = 0;
    for (const file of [...filesOf("markdown"), ...filesOf("dockerfile"), ...filesOf("systemd"), "README.md", "witness/README.md"]) {
      for (const line of logicalLines(read(file))) {
        const m = /\bnode\b(.*?)tenure-witness\.mjs/.exec(line);
        if (m === null) continue;
        seen++;
        for (const flag of WITNESS_NODE_FLAGS) assert.ok((m[1] ?? "").includes(flag), `${file}: ${line.trim()} lacks ${flag}`);
      }
    }
    assert.ok(seen >= 4, `only ${seen} witness launches found: the extraction broke`);
    assert.equal(shebangOf("tenure-witness.mjs"), `#!/usr/bin/env -S node ${WITNESS_NODE_FLAGS.join(" ")}`);
    assert.equal(shebangOf("tenured.mjs"), "#!/usr/bin/env node");
    const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
    for (const flag of WITNESS_NODE_FLAGS) assert.ok(pkg.scripts["witness"]?.includes(flag), `npm run witness lacks ${flag}`);
  });

  it("every TENURE_* variable is an option's (or one tenurectl sets for its child)", () => {
    assert.ok(CLI_CHILD_ENVS.has("TENURE_FENCING_TOKEN"), "cli/cmd_lock.ts no longer sets TENURE_FENCING_TOKEN the way this test reads it");
    for (const { file, text } of texts) {
      const bad = tenureEnvNames(text).filter((n) => !SERVER_ENVS.has(n) && !CLI_CHILD_ENVS.has(n));
      assert.deepEqual(bad, [], `${file}: TENURE_* names that are no option of server/config_options.ts`);
    }
  });

  it("every tenurectl command parses with tenurectl's own parser and command table", () => {
    let seen = 0;
    const guide = new Set<string>();
    for (const { file, text } of texts) {
      for (const { line, argv } of tenurectlCommands(text)) {
        seen++;
        try {
          const parsed = parseCommandLine(argv, COMMANDS);
          if (file === "deploy/WITNESS.md" && parsed.kind === "run") guide.add(parsed.command.path.join(" "));
        } catch (error) {
          assert.fail(`${file}: "${line}": ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
    for (const needed of ["status", "members", "member replace", "member remove", "member add"]) {
      assert.ok(guide.has(needed), `deploy/WITNESS.md shows no tenurectl ${needed}`);
    }
    assert.ok(seen >= 10, `only ${seen} tenurectl commands found: the extraction broke`);
  });
});

describe("deploy/: tenured configuration files", () => {
  it("every key of every member config is an option, and tenured's loader takes the file", () => {
    for (const f of filesOf("member-config")) {
      assertKeysAreOptions(read(f), f);
      // deploy/config files name their member; the compose ones get TENURE_ID from the service.
      const doc = parseYaml(read(f)) as Record<string, unknown>;
      const env: Record<string, string> = doc["id"] === undefined ? { TENURE_ID: "a" } : {};
      const c = loadMember(read(f), [], env, f);
      assert.ok(c.tls !== null, `${f}: runs with TLS`);
    }
  });

  it("the auth config parses with tenured's auth config parser", () => {
    for (const f of filesOf("auth-config")) parseAuthConfig(read(f), f);
  });
});

describe("deploy/Dockerfile", () => {
  const stages = dockerInstructions(read("deploy/Dockerfile"));
  const build = stages[0] ?? [];
  const runtime = stages[stages.length - 1] ?? [];
  const all = (stage: Instruction[], op: string): Instruction[] => stage.filter((i) => i.op === op);

  it("is multi-stage: better-sqlite3 (npm ci) and the bundles are built in the build stage, the runtime copies them", () => {
    assert.ok(stages.length >= 2, "two stages at least");
    assert.match(build[0]?.args ?? "", /\bAS build$/i);
    const buildRuns = all(build, "RUN").map((i) => i.args);
    assert.ok(
      buildRuns.some((r) => /\bnpm ci\b/.test(r)),
      "npm ci (compiles better-sqlite3) in the build stage",
    );
    assert.ok(
      buildRuns.some((r) => /\bnpm run build\b/.test(r)),
      "npm run build in the build stage",
    );
    assert.ok(buildRuns.some((r) => /python3/.test(r) && /build-essential/.test(r)));
    assert.equal(JSON.parse(read("package.json")).scripts.build, "node --import tsx tools/build.ts");
    assert.deepEqual(
      all(runtime, "RUN").filter((i) => /\bnpm\b/.test(i.args)),
      [],
      "no npm in the runtime stage: nothing compiles there",
    );
    const fromBuild = all(runtime, "COPY").filter((i) => i.args.startsWith("--from=build"));
    for (const what of ["/src/node_modules", "/src/dist"]) {
      assert.ok(
        fromBuild.some((i) => i.args.includes(what)),
        `runtime copies ${what} from the build stage`,
      );
    }
  });

  it("copies sources that exist and cover every module the bundles import", () => {
    const sources = all(build, "COPY").flatMap((i) => {
      const parts = i.args.split(/\s+/);
      return parts.slice(0, -1);
    });
    for (const s of sources) assert.ok(existsSync(join(repoRoot, s)), `COPY ${s}: no such path in the repository`);
    const closure = importClosure([...Object.values(BUILD_ENTRIES), "tools/build.ts"]);
    const uncovered = [...closure].filter((f) => !sources.some((s) => f === s || f.startsWith(`${s.replace(/\/$/, "")}/`)));
    assert.deepEqual(uncovered, [], "modules the bundles import that the build stage does not copy");
    // The .dockerignore beside it must not drop what is copied.
    const ignored = read("deploy/Dockerfile.dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const s of sources) {
      const hit = ignored.find((p) => s === p || s.startsWith(`${p}/`));
      assert.equal(hit, undefined, `deploy/Dockerfile.dockerignore drops ${s}, which the build copies`);
    }
    for (const needed of ["node_modules", "dist", "data"]) assert.ok(ignored.includes(needed), `the context leaves out ${needed}`);
  });

  it("the packages the bundles load at run time are production dependencies (the runtime stage has no others)", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> };
    const closure = importClosure(Object.values(BUILD_ENTRIES));
    const needed = new Set<string>();
    for (const f of [...closure].filter((f) => f.endsWith(".ts"))) {
      const code = read(f);
      // `import type` is erased by the bundler; everything else is loaded from node_modules.
      const patterns = [
        /^\s*(?:import|export)\s+(?!type\b)[^;]*?\bfrom\s+["']([^"'.][^"']*)["']/gm,
        /\bimport\(\s*["']([^"'.][^"']*)["']\s*\)/g,
      ];
      for (const p of patterns) {
        for (const m of code.matchAll(p)) {
          const spec = m[1] ?? "";
          if (spec.startsWith("node:")) continue;
          needed.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec));
        }
      }
    }
    assert.ok(needed.has("better-sqlite3"), "the import scan found better-sqlite3");
    const missing = [...needed].filter((p) => pkg.dependencies[p] === undefined);
    assert.deepEqual(missing, [], "packages the bundles import that npm prune --omit=dev removes from the image");
  });

  it("runs as a non-root user, keeps data on a volume, checks health on /readyz, runs a built bundle", () => {
    const user = all(runtime, "USER").at(-1)?.args ?? "root";
    const uid = user.split(":")[0] ?? "";
    assert.ok(uid !== "root" && uid !== "0" && /^\d+$/.test(uid), `USER ${user}: a numeric non-root uid`);
    const volumes = all(runtime, "VOLUME").map((i) => i.args.trim());
    assert.deepEqual(volumes, ["/var/lib/tenure"]);
    // The compose members keep their dataDir on that volume.
    for (const f of filesOf("member-config").filter((f) => f.startsWith("deploy/compose/"))) {
      const dataDir = String((parseYaml(read(f)) as Record<string, unknown>)["dataDir"]);
      assert.ok(dataDir.startsWith("/var/lib/tenure/"), `${f}: dataDir ${dataDir} is below the image's VOLUME`);
    }
    const health = all(runtime, "HEALTHCHECK").at(-1)?.args ?? "";
    assert.match(health, /\bCMD\b/);
    assert.match(health, /\/readyz/);
    assert.match(health, /node:http'/, "/readyz is plain HTTP (server/health/http_server.ts)");
    assert.match(read("server/health/http_server.ts"), /path === "\/readyz"/);
    const entry = execForm(all(runtime, "ENTRYPOINT").at(-1)?.args ?? "[]");
    assert.equal(entry[0], "node");
    assert.ok(BUNDLES.includes(posix.basename(entry[1] ?? "")), `ENTRYPOINT ${entry.join(" ")} runs a bundle tools/build.ts makes`);
    assert.ok((entry[1] ?? "").startsWith("/opt/tenure/dist/"));
    const cmd = execForm(all(runtime, "CMD").at(-1)?.args ?? "[]");
    assert.deepEqual(unknownFlags(cmd.filter((a) => a.startsWith("--"))), []);
    assert.equal(all(runtime, "WORKDIR").at(-1)?.args, "/opt/tenure");
  });
});

// ------------------------------------------------------------------ compose

interface ComposeService {
  readonly entrypoint?: string[];
  readonly command?: string[];
  readonly environment?: Record<string, string>;
  readonly volumes?: string[];
  readonly secrets?: { source: string; target: string }[];
  readonly build?: { context: string; dockerfile: string };
}

describe("deploy/compose", () => {
  for (const f of filesOf("compose")) {
    it(`${f}: every member loads its mounted config with its environment, runs the right program, never bootstraps`, () => {
      const doc = parseYaml(read(f), { merge: true }) as {
        services: Record<string, ComposeService>;
        secrets: Record<string, { file: string }>;
      };
      const dockerEntry = execForm(
        dockerInstructions(read("deploy/Dockerfile"))
          .at(-1)
          ?.find((i) => i.op === "ENTRYPOINT")?.args ?? "[]",
      );
      const ids: string[] = [];
      let members: string[] = [];
      for (const [name, s] of Object.entries(doc.services)) {
        const label = `${f} service ${name}`;
        assert.ok(s.build, `${label}: builds the image`);
        assert.ok(
          existsSync(resolve(dirname(join(repoRoot, f)), s.build.context, s.build.dockerfile)),
          `${label}: ${s.build.dockerfile} exists`,
        );
        const env = { ...(s.environment ?? {}) };
        const args = s.command ?? [];
        assertNoBootstrap(args, env, label);
        const entry = s.entrypoint ?? dockerEntry;
        const { bundle } = nodeLaunch(entry, label);
        assert.ok(BUNDLES.includes(bundle), `${label}: entrypoint ${entry.join(" ")}`);
        // The file --config names inside the container is the one mounted there.
        const inside = args[args.indexOf("--config") + 1] ?? "";
        const mount = (s.volumes ?? []).map((v) => v.split(":")).find((v) => v[1] === inside);
        assert.ok(mount?.[0], `${label}: --config ${inside} is mounted from the repository`);
        const host = resolve(dirname(join(repoRoot, f)), mount[0]);
        assert.ok(existsSync(host), `${label}: ${mount[0]} exists`);
        const c = loadMember(readFileSync(host, "utf8"), args, env, label);
        assert.equal(c.id, name, `${label}: the service name is the member id (the other members reach it by that name)`);
        assertProgramFits(c, bundle, label);
        // The TLS files are the service's secrets, under /run/secrets/.
        const targets = (s.secrets ?? []).map((x) => `/run/secrets/${x.target}`);
        for (const file of [c.tls?.caFile, c.tls?.certFile, c.tls?.keyFile]) {
          assert.ok(targets.includes(file ?? ""), `${label}: ${file} is one of its secrets`);
        }
        for (const x of s.secrets ?? []) assert.ok(doc.secrets[x.source], `${label}: secret ${x.source} is defined`);
        assert.ok(
          (s.volumes ?? []).some((v) => v.split(":")[1] === "/var/lib/tenure"),
          `${label}: a volume on /var/lib/tenure`,
        );
        assert.ok(c.dataDir.startsWith("/var/lib/tenure/"));
        ids.push(c.id);
        members = c.members.map((m) => m.id);
      }
      assert.deepEqual([...ids].sort(), [...members].sort(), `${f}: one service per member`);
    });
  }
});

// ------------------------------------------------------------------ Kubernetes

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === "object" ? (v as Obj) : {});
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

function k8sDocs(f: string): Obj[] {
  return parseAllDocuments(read(f))
    .map((d) => obj(d.toJSON()))
    .filter((d) => d["kind"] !== undefined);
}

const labelsMatch = (selector: Obj, labels: Obj): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe("deploy/kubernetes", () => {
  for (const f of filesOf("kubernetes")) {
    const docs = k8sDocs(f);
    const ofKind = (k: string): Obj[] => docs.filter((d) => d["kind"] === k);
    const sets = ofKind("StatefulSet");
    const configMap = ofKind("ConfigMap").find((d) => obj(d["metadata"])["name"] === "tenure-config");
    const tenureYaml = String(obj(configMap?.["data"])["tenure.yaml"] ?? "");
    const podOf = (s: Obj): Obj => obj(obj(obj(s["spec"])["template"])["spec"]);
    const containerOf = (s: Obj): Obj => arr(podOf(s)["containers"])[0] ?? {};
    const roleOf = (s: Obj): string =>
      String(obj(obj(obj(obj(s["spec"])["template"])["metadata"])["labels"])["app.kubernetes.io/component"]);

    it(`${f}: every member of every StatefulSet loads the ConfigMap's config with its pod's environment`, () => {
      assertKeysAreOptions(tenureYaml, `${f} ConfigMap tenure-config`);
      const namespace = String(obj(configMap?.["metadata"])["namespace"]);
      let ids: string[] = [];
      const started: string[] = [];
      for (const s of sets) {
        const name = String(obj(s["metadata"])["name"]);
        const spec = obj(s["spec"]);
        const c = containerOf(s);
        const args = (c["args"] as string[] | undefined) ?? [];
        const command = (c["command"] as string[] | undefined) ?? ["node", "/opt/tenure/dist/tenured.mjs"];
        const { bundle } = nodeLaunch(command, `${f} ${name}`);
        assert.ok(BUNDLES.includes(bundle), `${f} ${name}: runs ${command.join(" ")}`);
        assert.deepEqual(unknownFlags(args.filter((a) => a.startsWith("--"))), [], `${f} ${name}: args`);
        // The config file --config names is the ConfigMap's key, where the ConfigMap is mounted.
        const configPath = args[args.indexOf("--config") + 1] ?? "";
        const mounts = arr(c["volumeMounts"]);
        const configVolume = arr(podOf(s)["volumes"]).find((v) => obj(v["configMap"])["name"] === "tenure-config");
        const mountPath = String(mounts.find((m) => m["name"] === configVolume?.["name"])?.["mountPath"]);
        assert.equal(configPath, `${mountPath}/tenure.yaml`, `${f} ${name}: --config is the mounted ConfigMap`);
        for (let n = 0; n < Number(spec["replicas"]); n++) {
          const pod = `${name}-${n}`;
          const env: Record<string, string> = {};
          for (const e of arr(c["env"])) {
            const key = String(e["name"]);
            const fieldPath = obj(obj(e["valueFrom"])["fieldRef"])["fieldPath"];
            env[key] = fieldPath === "metadata.name" ? pod : String(e["value"]).replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => env[v] ?? "");
          }
          assertNoBootstrap(args, env, `${f} ${pod}`);
          const config = loadMember(tenureYaml, args, env, `${f} ${pod}`);
          assertProgramFits(config, bundle, `${f} ${pod}`);
          // Its addresses are its stable name on the headless Service.
          const self = config.members.find((m) => m.id === pod);
          const dns = `${pod}.${String(spec["serviceName"])}.${namespace}.svc.cluster.local`;
          assert.equal(self?.peerAddress, `${dns}:${portOf(config.peerListen)}`, `${f} ${pod}: peer address`);
          assert.equal(self?.clientAddress, `${dns}:${portOf(config.clientListen)}`, `${f} ${pod}: client address`);
          // Its certificate and key are in the Secrets projected where TENURE_TLS_* point.
          const tlsVolume = arr(podOf(s)["volumes"]).find((v) => v["projected"] !== undefined || v["secret"] !== undefined);
          const tlsMount = String(mounts.find((m) => m["name"] === tlsVolume?.["name"])?.["mountPath"]);
          const projected = arr(obj(tlsVolume?.["projected"])["sources"]).flatMap((src) =>
            arr(obj(src["secret"])["items"]).map((i) => `${tlsMount}/${String(i["path"])}`),
          );
          for (const file of [config.tls?.caFile, config.tls?.certFile, config.tls?.keyFile]) {
            assert.ok(projected.includes(file ?? ""), `${f} ${pod}: ${file} comes from a Secret`);
          }
          assert.ok(
            config.dataDir.startsWith(`${String(mounts.find((m) => m["name"] === "data")?.["mountPath"])}/`),
            `${f} ${pod}: dataDir on its claim`,
          );
          ids = config.members.map((m) => m.id);
          started.push(pod);
        }
      }
      assert.deepEqual([...started].sort(), [...ids].sort(), `${f}: the StatefulSets run exactly the configured members`);
    });

    it(`${f}: headless Service, claims, probes, no service links, non-root, a StatefulSet per role`, () => {
      const metricsPort = portOf(String((parseYaml(tenureYaml) as Obj)["metricsListen"]));
      const headless = ofKind("Service").filter((s) => obj(s["spec"])["clusterIP"] === "None");
      const roles = sets.map(roleOf).sort();
      assert.deepEqual(roles, f.endsWith("witness.yaml") ? ["voter", "witness"] : ["voter"], `${f}: StatefulSets by role`);
      for (const s of sets) {
        const name = String(obj(s["metadata"])["name"]);
        const spec = obj(s["spec"]);
        assert.ok(
          headless.some((h) => obj(h["metadata"])["name"] === spec["serviceName"]),
          `${f} ${name}: serviceName is a headless Service`,
        );
        assert.equal(arr(spec["volumeClaimTemplates"]).length, 1, `${f} ${name}: one claim per member`);
        assert.equal(spec["podManagementPolicy"], "Parallel", `${f} ${name}: members start together (none is ready alone)`);
        const pod = podOf(s);
        // Kubernetes would inject variables named after every Service of the namespace; tenured
        // refuses TENURE_* variables it does not know, and these Services are named tenure*.
        assert.equal(pod["enableServiceLinks"], false, `${f} ${name}: enableServiceLinks: false`);
        assert.equal(obj(pod["securityContext"])["runAsNonRoot"], true);
        const c = containerOf(s);
        const metrics = arr(c["ports"]).find((p) => p["name"] === "metrics");
        assert.equal(metrics?.["containerPort"], metricsPort, `${f} ${name}: the metrics port is metricsListen's`);
        const ready = obj(obj(c["readinessProbe"])["httpGet"]);
        const live = obj(obj(c["livenessProbe"])["httpGet"]);
        assert.deepEqual([ready["path"], ready["port"], ready["scheme"] ?? "HTTP"], ["/readyz", "metrics", "HTTP"]);
        assert.deepEqual([live["path"], live["port"], live["scheme"] ?? "HTTP"], ["/healthz", "metrics", "HTTP"]);
        assert.equal(obj(c["securityContext"])["readOnlyRootFilesystem"], true);
        const requests = obj(obj(c["resources"])["requests"]);
        assert.ok(requests["cpu"] !== undefined && requests["memory"] !== undefined, `${f} ${name}: resource requests`);
      }
    });

    it(`${f}: the PodDisruptionBudget keeps a quorum of the voting members`, () => {
      const pdbs = ofKind("PodDisruptionBudget");
      assert.equal(pdbs.length, 1, `${f}: one budget over every voting member`);
      const pdb = obj(pdbs[0]?.["spec"]);
      assert.equal(pdb["maxUnavailable"], 1);
      const selector = obj(obj(pdb["selector"])["matchLabels"]);
      const covered = sets
        .filter((s) => labelsMatch(selector, obj(obj(obj(obj(s["spec"])["template"])["metadata"])["labels"])))
        .reduce((n, s) => n + Number(obj(s["spec"])["replicas"]), 0);
      const voting = sets.reduce((n, s) => n + Number(obj(s["spec"])["replicas"]), 0);
      assert.equal(covered, voting, `${f}: the budget covers every voting member (witness included)`);
      assert.ok(voting - 1 >= Math.floor(voting / 2) + 1, `${f}: ${voting} members minus 1 still make a quorum`);
    });

    if (f.endsWith("witness.yaml")) {
      it(`${f}: the witness is its own small StatefulSet, pinned to a zone of its own`, () => {
        const witness = sets.find((s) => roleOf(s) === "witness") ?? {};
        const voters = sets.find((s) => roleOf(s) === "voter") ?? {};
        assert.equal(obj(witness["spec"])["replicas"], 1);
        const zones = (s: Obj): string[] =>
          arr(obj(obj(obj(podOf(s)["affinity"])["nodeAffinity"])["requiredDuringSchedulingIgnoredDuringExecution"])["nodeSelectorTerms"])
            .flatMap((t) => arr(t["matchExpressions"]))
            .filter((e) => e["key"] === "topology.kubernetes.io/zone" && e["operator"] === "In")
            .flatMap((e) => e["values"] as string[]);
        assert.equal(zones(witness).length, 1, "the witness is pinned to one zone");
        assert.ok(zones(voters).length >= 2, "the voters to the data zones");
        assert.deepEqual(
          zones(witness).filter((z) => zones(voters).includes(z)),
          [],
          "the witness's zone is not a voters' zone",
        );
        const mem = (s: Obj): number => Number.parseInt(String(obj(obj(containerOf(s)["resources"])["requests"])["memory"]), 10);
        const cpu = (s: Obj): number => Number.parseInt(String(obj(obj(containerOf(s)["resources"])["requests"])["cpu"]), 10);
        assert.ok(mem(witness) < mem(voters) && cpu(witness) < cpu(voters), "the witness asks for less than a voter");
      });
    }
  }
});

// ------------------------------------------------------------------ systemd

function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1] ?? "", [...(settings.get(m[1] ?? "") ?? []), m[2] ?? ""]);
  }
  return settings;
}

/** Which example config each unit runs (its dataDir must be writable under the unit). */
const UNIT_EXAMPLE: Readonly<Record<string, string>> = {
  "deploy/systemd/tenured.service": "deploy/config/three-sites-a.yaml",
  "deploy/systemd/tenure-witness.service": "deploy/config/two-sites-witness-w.yaml",
};

const systemdAnalyze = spawnSync("which", ["systemd-analyze"], { encoding: "utf8" });
const systemdAnalyzePath = systemdAnalyze.status === 0 ? systemdAnalyze.stdout.trim() : null;

describe("deploy/systemd", () => {
  for (const f of filesOf("systemd")) {
    const s = unitSettings(read(f));
    const one = (k: string): string | undefined => s.get(k)?.at(-1);
    const exec = words(one("ExecStart") ?? "");

    it(`${f}: hardened (no new privileges, private /tmp, read-only root but the data dir)`, () => {
      assert.equal(one("NoNewPrivileges"), "yes");
      assert.equal(one("PrivateTmp"), "yes");
      assert.equal(one("ProtectSystem"), "strict");
      const writable = (s.get("ReadWritePaths") ?? []).flatMap((v) => v.split(/\s+/));
      assert.deepEqual(writable, ["/var/lib/tenure"], "the data directory and nothing else is writable");
      const example = UNIT_EXAMPLE[f];
      assert.ok(example !== undefined, `${f}: add its example config to UNIT_EXAMPLE`);
      const dataDir = String((parseYaml(read(example)) as Obj)["dataDir"]);
      assert.ok(dataDir.startsWith("/var/lib/tenure/"), `${example}'s dataDir ${dataDir} is writable under ${f}`);
      assert.ok(one("User") !== undefined && one("User") !== "root", `${f}: User= a service user`);
    });

    it(`${f}: ExecStart runs a built bundle with options tenured takes, the right one for its member`, () => {
      assert.equal(exec[0], "/usr/bin/node");
      const { bundle, bundlePath, args } = nodeLaunch(exec, `${f} ExecStart`);
      assert.ok(BUNDLES.includes(bundle), `ExecStart ${exec.join(" ")}`);
      assert.ok(bundlePath.startsWith("/opt/tenure/dist/"));
      assert.deepEqual(unknownFlags(args.filter((a) => a.startsWith("--"))), []);
      assertNoBootstrap(args, {}, f);
      const example = UNIT_EXAMPLE[f] ?? "";
      assertProgramFits(loadMember(read(example), args, {}, `${f} with ${example}`), bundle, f);
    });

    it(`${f}: systemd-analyze verify`, (t) => {
      if (systemdAnalyzePath === null) {
        t.skip("systemd-analyze is not installed here (`which systemd-analyze` found nothing): the unit was checked statically only");
        return;
      }
      if (!existsSync(exec[0] ?? "")) {
        t.skip(`${exec[0]} does not exist here, and verify refuses a unit whose ExecStart binary is missing`);
        return;
      }
      const r = spawnSync(systemdAnalyzePath, ["verify", join(repoRoot, f)], { encoding: "utf8", timeout: 60_000 });
      // Unknown keys are only warnings (exit 0): any line about this unit fails as well.
      const name = posix.basename(f);
      const about = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => l.includes(name));
      assert.equal(r.status, 0, `systemd-analyze verify ${f}:\n${r.stdout}${r.stderr}`);
      assert.deepEqual(about, [], `systemd-analyze verify ${f} warns`);
    });
  }

  it("the units are the ones the README tells to install", () => {
    const readme = read("deploy/README.md");
    for (const f of filesOf("systemd")) assert.ok(readme.includes(posix.basename(f)));
  });
});
