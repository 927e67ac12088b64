// `snapshot save FILE` / `snapshot restore`: the backup and restore that server/backup implements
// (Cluster.Backup to one verified file; a restore that raises the token epoch), run as the
// `tenured backup` / `tenured restore` subcommands so there is one implementation. tenurectl only
// translates its flags: the endpoints and TLS files it uses anyway, a --token written to a private
// temporary file for tenured's --token-file. tenured is found beside this module when bundled
// (dist/tenured.mjs), else as server/main.ts run through tsx.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT_FAILED, UsageError } from "./exit_codes.ts";
import { str } from "./globals.ts";
import type { CommandContext, CommandSpec } from "./spec.ts";

/** How to run tenured from here: [executable, ...leading args]. */
export function tenuredCommand(): string[] {
  const bundled = fileURLToPath(new URL("./tenured.mjs", import.meta.url));
  if (existsSync(bundled)) return [process.execPath, bundled];
  const source = fileURLToPath(new URL("../server/main.ts", import.meta.url));
  if (existsSync(source)) return [process.execPath, "--import", "tsx", source];
  throw new UsageError("tenured not found beside tenurectl (build with npm run build, or run from the repository)");
}

function runTenured(args: readonly string[], signal: AbortSignal): Promise<number> {
  const [exe = "", ...lead] = tenuredCommand();
  return new Promise((resolve) => {
    const child = spawn(exe, [...lead, ...args], { stdio: "inherit" });
    const onAbort = (): void => {
      child.kill("SIGTERM");
    };
    signal.addEventListener("abort", onAbort, { once: true });
    child.once("error", () => resolve(EXIT_FAILED));
    child.once("exit", (code) => {
      signal.removeEventListener("abort", onAbort);
      resolve(code ?? EXIT_FAILED);
    });
  });
}

async function save(ctx: CommandContext): Promise<number> {
  const file = ctx.positionals[0] ?? "";
  const g = ctx.globals;
  const args = ["backup", "--endpoints", g.endpoints.join(","), "--out", file, "--timeout-ms", String(Math.max(g.timeoutMs, 120_000))];
  if (g.security.insecure === true) args.push("--insecure");
  const tls = g.security.tls;
  if (tls?.caFile !== undefined) args.push("--tls-ca", tls.caFile);
  if (tls?.certFile !== undefined && tls.keyFile !== undefined) args.push("--tls-cert", tls.certFile, "--tls-key", tls.keyFile);
  let tempDir: string | null = null;
  if (g.bearerToken?.tokenFile !== undefined) args.push("--token-file", g.bearerToken.tokenFile);
  else if (g.bearerToken?.token !== undefined) {
    tempDir = mkdtempSync(join(tmpdir(), "tenurectl-"));
    const tokenFile = join(tempDir, "token");
    writeFileSync(tokenFile, g.bearerToken.token, { mode: 0o600 });
    args.push("--token-file", tokenFile);
  }
  try {
    return await runTenured(args, ctx.signal);
  } finally {
    if (tempDir !== null) rmSync(tempDir, { recursive: true, force: true });
  }
}

async function restore(ctx: CommandContext): Promise<number> {
  const file = ctx.positionals[0] ?? "";
  const args = ["restore", "--from", file];
  for (const flag of ["data-dir", "id", "cluster-id", "members"]) {
    const v = str(ctx.values, flag);
    if (v === undefined) throw new UsageError(`--${flag} is required`);
    args.push(`--${flag}`, v);
  }
  return runTenured(args, ctx.signal);
}

export const SNAPSHOT_COMMANDS: readonly CommandSpec[] = [
  {
    path: ["snapshot", "save"],
    summary: "write a consistent backup of the cluster to FILE (admin; tenured backup)",
    details: 'Prints tenured\'s {"event":"backup-written",...} line. FILE is replaced only by a complete, verified backup.',
    positionals: [{ name: "FILE", description: "where to write the backup" }],
    options: {},
    run: save,
  },
  {
    path: ["snapshot", "restore"],
    summary: "restore FILE into one member's empty data directory of a NEW cluster (tenured restore)",
    details:
      "Run once per member of the new cluster, each from the same file, then start the members without\n" +
      "--bootstrap. Every token of the new cluster is above every token of the old one (server/backup/README.md).",
    positionals: [{ name: "FILE", description: "the backup file" }],
    options: {
      "data-dir": { type: "string", valueName: "DIR", description: "the member's data directory (empty or absent)" },
      id: { type: "string", valueName: "ID", description: "the member's node id" },
      "cluster-id": { type: "string", valueName: "ID", description: "the NEW cluster's id" },
      members: { type: "string", valueName: "id=peer/client,...", description: "the new cluster's members, as tenured --members" },
    },
    run: restore,
  },
];
