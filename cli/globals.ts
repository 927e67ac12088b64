// The flags every command takes, and what they resolve to: where the members are, how to reach
// them (mutual TLS by default, npm start's dev certificates when present), the bearer token, the
// deadline and the output format.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { endpointProblem } from "../client-sdk/endpoints.ts";
import type { BearerTokenOptions, TlsOptions } from "../client-sdk/index.ts";
import { UsageError } from "./exit_codes.ts";
import type { OptionSpec, Values } from "./spec.ts";

/** What `npm start` listens on (tools/local_cluster.ts, default --base-port 7000). */
export const DEFAULT_ENDPOINTS = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"] as const;
/** Where `npm start` writes its development CA and client certificates, relative to the cwd. */
export const DEV_TLS_DIR = join("data", "local", "tls");
export const DEFAULT_TIMEOUT_MS = 10_000;

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  endpoints: {
    type: "string",
    valueName: "HOST:PORT,...",
    description: `client addresses of the members (default ${DEFAULT_ENDPOINTS.join(",")}, npm start's)`,
  },
  ca: {
    type: "string",
    valueName: "FILE",
    description: `CA bundle that signs the members' certificates (default ${DEV_TLS_DIR}/ca.pem if present)`,
  },
  cert: {
    type: "string",
    valueName: "FILE",
    description: `this client's certificate (default ${DEV_TLS_DIR}/client-admin.pem, else client-dev.pem, if present)`,
  },
  key: { type: "string", valueName: "FILE", description: "this client's private key (goes with --cert)" },
  insecure: { type: "boolean", description: "plaintext, for a cluster started with --insecure only" },
  token: { type: "string", valueName: "TOKEN", description: "bearer token sent on every call (clusters started with --auth-tokens)" },
  "token-file": { type: "string", valueName: "FILE", description: "a file holding the bearer token" },
  "timeout-ms": { type: "string", valueName: "MS", description: `deadline of each call, retries included (default ${DEFAULT_TIMEOUT_MS})` },
  output: { type: "string", valueName: "table|json", description: "output format (default table; json: one JSON document per result)" },
  help: { type: "boolean", short: "h", description: "show help for the command" },
};

export type OutputFormat = "table" | "json";

export interface TransportChoice {
  readonly tls?: TlsOptions;
  readonly insecure?: boolean;
}

export interface GlobalOptions {
  readonly endpoints: readonly string[];
  readonly security: TransportChoice;
  readonly bearerToken: BearerTokenOptions | undefined;
  readonly timeoutMs: number;
  readonly output: OutputFormat;
}

/** Resolves the global flags; `exists` is injected so the defaults can be tested. */
export function resolveGlobals(values: Values, exists: (path: string) => boolean = existsSync): GlobalOptions {
  const rawEndpoints = str(values, "endpoints");
  const endpoints = rawEndpoints === undefined ? [...DEFAULT_ENDPOINTS] : rawEndpoints.split(",").map((e) => e.trim());
  // The SDK's own check (port 1..65535, a host or [IPv6]), so a bad endpoint is a usage error here
  // rather than a connection failure later.
  for (const e of endpoints) {
    const problem = endpointProblem(e);
    if (problem !== null) throw new UsageError(`--endpoints: ${problem}`);
  }
  const output = str(values, "output") ?? "table";
  if (output !== "table" && output !== "json") throw new UsageError(`--output must be table or json, not "${output}"`);
  const timeoutMs = positiveInt(values, "timeout-ms") ?? DEFAULT_TIMEOUT_MS;
  const token = str(values, "token");
  const tokenFile = str(values, "token-file");
  if (token !== undefined && tokenFile !== undefined) throw new UsageError("give --token or --token-file, not both");
  const bearerToken = token !== undefined ? { token } : tokenFile !== undefined ? { tokenFile } : undefined;
  return { endpoints, security: security(values, exists), bearerToken, timeoutMs, output };
}

function security(values: Values, exists: (path: string) => boolean): TransportChoice {
  const ca = str(values, "ca");
  const cert = str(values, "cert");
  const key = str(values, "key");
  if (values["insecure"] === true) {
    if (ca !== undefined || cert !== undefined || key !== undefined)
      throw new UsageError("--insecure and --ca/--cert/--key contradict each other");
    return { insecure: true };
  }
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--cert and --key go together");
  if (ca !== undefined)
    return { tls: { caFile: ca, ...(cert !== undefined && key !== undefined ? { certFile: cert, keyFile: key } : {}) } };
  if (cert !== undefined) throw new UsageError("--cert needs --ca (the CA that signs the members' certificates)");
  // No TLS flags: npm start's development certificates, the admin identity first (an operator's
  // tool: status shows the caller, membership and snapshots need admin).
  const devCa = join(DEV_TLS_DIR, "ca.pem");
  if (!exists(devCa)) {
    throw new UsageError(
      `no TLS options: give --ca FILE --cert FILE --key FILE, or --insecure for a plaintext cluster (npm start's dev certificates are used from ${DEV_TLS_DIR} when present)`,
    );
  }
  for (const identity of ["admin", "dev"]) {
    const certFile = join(DEV_TLS_DIR, `client-${identity}.pem`);
    const keyFile = join(DEV_TLS_DIR, `client-${identity}.key`);
    if (exists(certFile) && exists(keyFile)) return { tls: { caFile: devCa, certFile, keyFile } };
  }
  return { tls: { caFile: devCa } };
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/** An integer flag in [min, max]; undefined when not given. */
export function positiveInt(values: Values, name: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not "${v}"`);
  }
  return n;
}
