// `npm start`: a local three-voter Tenure cluster on 127.0.0.1, one tenured process per voter,
// data under ./data/local/<id>. The first run bootstraps the cluster; later runs resume it with
// its locks, leases and token counter. Ctrl-C stops every member cleanly.
//
// `npm start -- --witness`: the two-site layout of DESIGN.md §4 instead: tenured voters a and b
// and a tenure-witness w, data under ./data/local-witness/<id> (a separate cluster, so the two
// layouts never share a data directory). Clients use a and b; w serves no client calls.
//
// Both ports run mutual TLS. The first run creates a development CA under <data dir>/tls
// (tools/dev_certs.ts) with a certificate for every member and two client certificates, "dev" and
// "admin"; later runs reuse them (delete the tls folder to start over). The launcher prints the
// files a client needs.
//
//   npm start -- [--witness] [--data-dir DIR] [--base-port 7000]

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { WITNESS_NODE_FLAGS } from "../witness/node_flags.ts";
import { ensureDevCertificates, type DevCertificates } from "./dev_certs.ts";

interface LauncherOptions {
  readonly dataDir: string;
  readonly basePort: number;
  readonly witness: boolean;
}

const voterIds = ["a", "b", "c"] as const;
const witnessLayout = { ids: ["a", "b", "w"], witnesses: ["w"] } as const;
const mainScript = new URL("../server/main.ts", import.meta.url).pathname;
const witnessScript = new URL("../witness/main.ts", import.meta.url).pathname;
/** The client certificates the launcher issues: one to work with, one for admin calls. */
const clientIdentities = ["dev", "admin"] as const;

function parseArgs(argv: readonly string[]): LauncherOptions {
  let dataDir: string | null = null;
  let basePort = 7000;
  let witness = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === "--witness") witness = true;
    else if (arg === "--data-dir" && value) (dataDir = value), i++;
    else if (arg === "--base-port" && value && /^\d+$/.test(value) && Number(value) < 65000) (basePort = Number(value)), i++;
    else throw new Error(`unknown or incomplete argument ${arg ?? ""} (use --witness, --data-dir DIR, --base-port N)`);
  }
  return { dataDir: resolve(dataDir ?? (witness ? "data/local-witness" : "data/local")), basePort, witness };
}

export function localMembers(
  basePort: number,
  ids: readonly string[] = voterIds,
): { id: string; peerAddress: string; clientAddress: string }[] {
  return ids.map((id, i) => ({
    id,
    clientAddress: `127.0.0.1:${basePort + 1 + i}`,
    peerAddress: `127.0.0.1:${basePort + 101 + i}`,
  }));
}

function tlsFlags(certs: DevCertificates, id: string): string[] {
  const own = certs.members[id];
  if (!own) throw new Error(`no certificate for member ${id}`);
  // The "admin" client certificate is the one allowed membership changes and leadership transfer
  // (server/auth: without an auth config every identity may use every name, only these are admin).
  return ["--tls-ca", certs.caFile, "--tls-cert", own.certFile, "--tls-key", own.keyFile, "--admin-identities", "admin"];
}

/** How to connect, for the banner: the files and the SDK options that use them. */
function connectHelp(certs: DevCertificates, endpoints: readonly string[]): string {
  const dev = certs.clients["dev"];
  const admin = certs.clients["admin"];
  if (!dev || !admin) throw new Error("client certificates missing");
  const tls = `{ caFile: "${certs.caFile}", certFile: "${dev.certFile}", keyFile: "${dev.keyFile}" }`;
  return (
    "  mutual TLS (TLSv1.3) on every port:\n" +
    `    CA          ${certs.caFile}\n` +
    `    client dev  ${dev.certFile} + ${dev.keyFile}\n` +
    `    admin       ${admin.certFile} + ${admin.keyFile}\n` +
    `  SDK: new TenureClient({ endpoints: ${JSON.stringify(endpoints)}, tls: ${tls} })\n`
  );
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const ids: readonly string[] = o.witness ? witnessLayout.ids : voterIds;
  const witnesses: readonly string[] = o.witness ? witnessLayout.witnesses : [];
  const members = localMembers(o.basePort, ids);
  const fresh = ids.filter((id) => !existsSync(join(o.dataDir, id, "raft.db")));
  // Bootstrap only a brand-new cluster. If one member's data is missing, its tenured refuses to
  // start (it must not rejoin under its old id) and says so.
  const bootstrap = fresh.length === ids.length;
  const certs = ensureDevCertificates(join(o.dataDir, "tls"), { memberIds: [...ids], clientIdentities: [...clientIdentities] });
  const memberFlag = members.map((m) => `${m.id}=${m.peerAddress}/${m.clientAddress}`).join(",");
  const children = new Map<string, ChildProcess>();
  // The witness serves no client calls (it only answers IS_WITNESS), so it is not an endpoint.
  const endpoints = members.filter((m) => !witnesses.includes(m.id)).map((m) => m.clientAddress);
  /** Member id -> the leader named in its {"event":"ready"} line. */
  const ready = new Map<string, string>();
  for (const m of members) {
    const args = [
      ...(witnesses.includes(m.id) ? WITNESS_NODE_FLAGS : []),
      "--import",
      "tsx",
      witnesses.includes(m.id) ? witnessScript : mainScript,
      "--id",
      m.id,
      "--cluster-id",
      "local",
      "--data-dir",
      join(o.dataDir, m.id),
      "--peer-listen",
      m.peerAddress,
      "--client-listen",
      m.clientAddress,
      "--members",
      memberFlag,
      "--lock-delay-ms",
      "2000",
      ...(witnesses.length > 0 ? ["--witnesses", witnesses.join(",")] : []),
      ...(bootstrap ? ["--bootstrap"] : []),
      ...tlsFlags(certs, m.id),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    children.set(m.id, child);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        process.stdout.write(`[${m.id}] ${line}\n`);
        const leader = readyLeader(line);
        if (leader === null || ready.has(m.id)) return;
        ready.set(m.id, leader);
        if (ready.size === members.length) {
          process.stdout.write(`cluster ready: every member serves, leader ${leader}; endpoints ${endpoints.join(",")}\n`);
        }
      });
    }
    child.on("exit", (code, signal) => {
      children.delete(m.id);
      process.stdout.write(`[${m.id}] exited (code ${code ?? "none"}, signal ${signal ?? "none"})\n`);
      if (children.size === 0) process.exit(0);
    });
  }
  const layout = o.witness ? "two voters (a, b) + witness (w)" : "three voters";
  process.stdout.write(
    `Tenure local cluster, ${layout} (${bootstrap ? "new" : "resumed"}), data in ${o.dataDir}\n` +
      `  client endpoints: ${endpoints.join(",")}\n` +
      connectHelp(certs, endpoints) +
      `  Ctrl-C stops it; run again to resume.\n`,
  );
  const stopAll = (): void => {
    for (const child of children.values()) child.kill("SIGTERM");
  };
  process.on("SIGINT", stopAll);
  process.on("SIGTERM", stopAll);
  // `npm start` runs this under npm (and a shell), and npm does not pass a SIGTERM on: it exits
  // and this process is re-parented. So watch the parent too; its death means "stop".
  const parentPid = process.ppid;
  const parentWatch = setInterval(() => {
    if (process.ppid === parentPid) return;
    process.stdout.write(`the launching process (pid ${parentPid}) is gone: stopping the cluster\n`);
    clearInterval(parentWatch);
    stopAll();
  }, PARENT_CHECK_INTERVAL_MS);
  parentWatch.unref();
}

const PARENT_CHECK_INTERVAL_MS = 500;

/** The leader named by a member's {"event":"ready"} log line, or null for any other line. */
function readyLeader(line: string): string | null {
  if (!line.includes('"event":"ready"')) return null;
  try {
    const parsed = JSON.parse(line) as { leader?: unknown };
    return typeof parsed.leader === "string" ? parsed.leader : null;
  } catch {
    return null;
  }
}

main();
