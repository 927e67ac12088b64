// `npm start`: a local three-voter Tenure cluster on 127.0.0.1, one tenured process per voter,
// data under ./data/local/<id>. The first run bootstraps the cluster; later runs resume it with
// its locks, leases and token counter. Ctrl-C stops every voter cleanly.
//
//   npm start -- [--data-dir DIR] [--base-port 7000]

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

interface LauncherOptions {
  readonly dataDir: string;
  readonly basePort: number;
}

const ids = ["a", "b", "c"] as const;
const mainScript = new URL("./main.ts", import.meta.url).pathname;

function parseArgs(argv: readonly string[]): LauncherOptions {
  let dataDir = "data/local";
  let basePort = 7000;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === "--data-dir" && value) (dataDir = value), i++;
    else if (arg === "--base-port" && value && /^\d+$/.test(value) && Number(value) < 65000) (basePort = Number(value)), i++;
    else throw new Error(`unknown or incomplete argument ${arg ?? ""} (use --data-dir DIR, --base-port N)`);
  }
  return { dataDir: resolve(dataDir), basePort };
}

export function localMembers(basePort: number): { id: string; peerAddress: string; clientAddress: string }[] {
  return ids.map((id, i) => ({
    id,
    clientAddress: `127.0.0.1:${basePort + 1 + i}`,
    peerAddress: `127.0.0.1:${basePort + 101 + i}`,
  }));
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const members = localMembers(o.basePort);
  const fresh = ids.filter((id) => !existsSync(join(o.dataDir, id, "raft.db")));
  // Bootstrap only a brand-new cluster. If one member's data is missing, its tenured refuses to
  // start (it must not rejoin under its old id) and says so.
  const bootstrap = fresh.length === ids.length;
  const memberFlag = members.map((m) => `${m.id}=${m.peerAddress}/${m.clientAddress}`).join(",");
  const children = new Map<string, ChildProcess>();
  for (const m of members) {
    const args = [
      "--import", "tsx", mainScript,
      "--id", m.id, "--cluster-id", "local", "--data-dir", join(o.dataDir, m.id),
      "--peer-listen", m.peerAddress, "--client-listen", m.clientAddress, "--members", memberFlag,
      "--lock-delay-ms", "2000",
      ...(bootstrap ? ["--bootstrap"] : []),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    children.set(m.id, child);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => process.stdout.write(`[${m.id}] ${line}\n`));
    }
    child.on("exit", (code, signal) => {
      children.delete(m.id);
      process.stdout.write(`[${m.id}] exited (code ${code ?? "none"}, signal ${signal ?? "none"})\n`);
      if (children.size === 0) process.exit(0);
    });
  }
  process.stdout.write(
    `Tenure local cluster (${bootstrap ? "new" : "resumed"}), data in ${o.dataDir}\n` +
      `  client endpoints: ${members.map((m) => m.clientAddress).join(",")}\n` +
      `  Ctrl-C stops it; run again to resume.\n`,
  );
  const stopAll = (): void => {
    for (const child of children.values()) child.kill("SIGTERM");
  };
  process.on("SIGINT", stopAll);
  process.on("SIGTERM", stopAll);
}

main();
