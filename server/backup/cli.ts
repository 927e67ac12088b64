// The `tenured backup` and `tenured restore` subcommands (server/main.ts dispatches here).
// Flags are parsed strictly (node:util parseArgs): an unknown or repeated flag, or a stray
// argument, is refused with exit code 2 before anything is read or written. Success prints one
// JSON line on stdout; a refusal prints its message on stderr and exits 1.
//
//   tenured backup --endpoints h:p[,h:p...] --out FILE
//       (--tls-ca CA [--tls-cert CERT --tls-key KEY] [--tls-min-version TLSv1.2] | --insecure)
//       [--token-file FILE] [--timeout-ms N]
//   tenured restore --from FILE --data-dir DIR --id ID --cluster-id NEW_ID --members a=peer/client,...

import { parseArgs } from "node:util";
import { endpointProblem } from "../../client-sdk/endpoints.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { CLUSTER_ID_PATTERN, ConfigError, parseMembers } from "../config.ts";
import { runBackup } from "./backup_client.ts";
import { restoreMember } from "./restore.ts";

export const SUBCOMMANDS = ["backup", "restore"] as const;
export type Subcommand = (typeof SUBCOMMANDS)[number];

const BACKUP_TIMEOUT_MS_DEFAULT = 120_000;

export function isSubcommand(arg: string | undefined): arg is Subcommand {
  return SUBCOMMANDS.some((s) => s === arg);
}

const USAGE: Readonly<Record<Subcommand, string>> = {
  backup:
    "usage: tenured backup --endpoints host:port[,host:port...] --out FILE " +
    "(--tls-ca CA [--tls-cert CERT --tls-key KEY] [--tls-min-version TLSv1.3|TLSv1.2] | --insecure) [--token-file FILE] [--timeout-ms N]",
  restore: "usage: tenured restore --from FILE --data-dir DIR --id ID --cluster-id NEW_ID --members id=peerHost:port/clientHost:port,...",
};

/** Runs one subcommand to completion; returns the process exit code. */
export async function runSubcommand(name: Subcommand, argv: readonly string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parse(name, argv);
  } catch (error) {
    process.stderr.write(`tenured ${name}: ${error instanceof Error ? error.message : String(error)}\n${USAGE[name]}\n`);
    return 2;
  }
  try {
    const summary = name === "backup" ? await backup(values) : restore(values);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (error) {
    const usage = error instanceof ConfigError ? `\n${USAGE[name]}` : "";
    process.stderr.write(`tenured ${name}: ${error instanceof Error ? error.message : String(error)}${usage}\n`);
    return error instanceof ConfigError ? 2 : 1;
  }
}

const BACKUP_FLAGS = {
  endpoints: { type: "string" },
  out: { type: "string" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-min-version": { type: "string" },
  insecure: { type: "boolean" },
  "token-file": { type: "string" },
  "timeout-ms": { type: "string" },
} as const;

const RESTORE_FLAGS = {
  from: { type: "string" },
  "data-dir": { type: "string" },
  id: { type: "string" },
  "cluster-id": { type: "string" },
  members: { type: "string" },
} as const;

function parse(name: Subcommand, argv: readonly string[]): Record<string, string | boolean | undefined> {
  const options = name === "backup" ? BACKUP_FLAGS : RESTORE_FLAGS;
  // strict: every value is a string, or a boolean for a boolean flag, as declared above.
  const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  return values as Record<string, string | boolean | undefined>;
}

function required(values: Record<string, string | boolean | undefined>, flag: string): string {
  const v = values[flag];
  if (typeof v !== "string" || v === "") throw new ConfigError(`--${flag} is required`);
  return v;
}

async function backup(values: Record<string, string | boolean | undefined>): Promise<object> {
  const endpoints = required(values, "endpoints")
    .split(",")
    .map((e) => e.trim());
  for (const e of endpoints) {
    const problem = endpointProblem(e);
    if (problem !== null) throw new ConfigError(`--endpoints: ${problem}`);
  }
  const timeoutRaw = values["timeout-ms"];
  const timeoutMs = timeoutRaw === undefined ? BACKUP_TIMEOUT_MS_DEFAULT : Number(timeoutRaw);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1_000) throw new ConfigError("--timeout-ms must be an integer >= 1000");
  const tokenFile = values["token-file"];
  const summary = await runBackup({
    endpoints,
    outFile: required(values, "out"),
    security: security(values),
    ...(typeof tokenFile === "string" ? { tokenFile } : {}),
    timeoutMs,
  });
  const h = summary.header;
  return {
    event: "backup-written",
    file: summary.outFile,
    from: summary.endpoint,
    clusterId: h.clusterId,
    appliedIndex: h.appliedIndex,
    term: h.term,
    tokenEpoch: h.tokenEpoch,
    lastToken: h.lastToken,
    imageBytes: h.imageBytes,
    fileBytes: summary.fileBytes,
    imageSha256: summary.imageSha256,
    members: h.members.map((m) => m.id),
  };
}

/** Mutual TLS (a client certificate, or only the CA with a bearer token), or --insecure by name. */
function security(values: Record<string, string | boolean | undefined>): TransportSecurity {
  const ca = values["tls-ca"];
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  if (values["insecure"] === true) {
    if (ca !== undefined || cert !== undefined || key !== undefined) throw new ConfigError("--insecure and --tls-* contradict each other");
    return { insecure: true };
  }
  if (typeof ca !== "string")
    throw new ConfigError("--tls-ca is required (the members run mutual TLS), or --insecure for a plaintext cluster");
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError("--tls-cert and --tls-key go together");
  const min = values["tls-min-version"];
  if (min !== undefined && min !== "TLSv1.3" && min !== "TLSv1.2") throw new ConfigError("--tls-min-version must be TLSv1.3 or TLSv1.2");
  return {
    tls: {
      caFile: ca,
      ...(typeof cert === "string" && typeof key === "string" ? { certFile: cert, keyFile: key } : {}),
      ...(min === undefined ? {} : { minVersion: min }),
    },
  };
}

function restore(values: Record<string, string | boolean | undefined>): object {
  const clusterId = required(values, "cluster-id");
  if (!CLUSTER_ID_PATTERN.test(clusterId)) throw new ConfigError(`--cluster-id must match ${CLUSTER_ID_PATTERN.source}`);
  const members = parseMembers(required(values, "members"));
  const summary = restoreMember({
    fromFile: required(values, "from"),
    dataDir: required(values, "data-dir"),
    id: required(values, "id"),
    clusterId,
    members,
  });
  return { event: "restored", ...summary };
}
