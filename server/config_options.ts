// Every option tenured and tenure-witness take, in one table: its name in each source (flag
// --kebab-case, environment TENURE_SNAKE_CASE, YAML camelCase), what it is, its unit and its
// default. config.ts validates the values; this module knows the names, so that a name outside
// the table is refused at start with the nearest valid one (a typo such as
// --electon-timeout-ticks or a YAML lockDelayMS must not start a member on defaults), and renders
// --help from the same rows, so the help can never list an option the loader does not take.

import { closest, distance } from "fastest-levenshtein";

export type OptionKind = "string" | "integer" | "number" | "boolean" | "list" | "file";

export interface OptionSpec {
  /** The YAML key and the internal name (camelCase). */
  readonly key: string;
  readonly kind: OptionKind;
  /** What it is, one line; with the unit where there is one. */
  readonly help: string;
  /** As shown by --help; "required" or "none" where there is no value by default. */
  readonly defaultShown: string;
  /** Test-only options are listed apart and refused without --test-mode (config.ts). */
  readonly testOnly?: boolean;
}

export const SERVER_OPTIONS: readonly OptionSpec[] = [
  { key: "config", kind: "file", help: "YAML file of options (flags and TENURE_* variables override it)", defaultShown: "none" },
  { key: "id", kind: "string", help: "this member's id ([a-z0-9][a-z0-9_-]*)", defaultShown: "required" },
  { key: "clusterId", kind: "string", help: "the cluster's id; every member the same", defaultShown: "required" },
  { key: "dataDir", kind: "file", help: "directory of this member's durable state", defaultShown: "required" },
  { key: "peerListen", kind: "string", help: "host:port of the Raft peer listener (port 0: any)", defaultShown: "required" },
  { key: "clientListen", kind: "string", help: "host:port of the client API listener (port 0: any)", defaultShown: "required" },
  {
    key: "members",
    kind: "list",
    help: "the initial members, id=peerHost:port/clientHost:port,... (YAML: a list of {id, peerAddress, clientAddress})",
    defaultShown: "required",
  },
  { key: "witnesses", kind: "list", help: "ids of the witness members, w,... ; every member the same", defaultShown: "none" },
  {
    key: "bootstrap",
    kind: "boolean",
    help: "create a new cluster from members if the data dir is empty (first start only)",
    defaultShown: "false",
  },
  { key: "tickMs", kind: "integer", help: "Raft tick, in milliseconds", defaultShown: "50" },
  { key: "electionTimeoutTicks", kind: "integer", help: "election timeout, in ticks", defaultShown: "10" },
  { key: "heartbeatIntervalTicks", kind: "integer", help: "leader heartbeat interval, in ticks", defaultShown: "2" },
  {
    key: "snapshotEveryEntries",
    kind: "integer",
    help: "entries applied between snapshots (then the log is compacted)",
    defaultShown: "10000",
  },
  { key: "rho", kind: "number", help: "clock-rate error bound, a fraction (0.01 = 1%); every member the same", defaultShown: "0.01" },
  { key: "lockDelayMs", kind: "integer", help: "lock delay after a holder's lease expires, in milliseconds", defaultShown: "5000" },
  {
    key: "pendingRequestsMax",
    kind: "integer",
    help: "client requests waiting for their commit or read, at most; beyond it RESOURCE_EXHAUSTED OVERLOADED with a retry-after of one heartbeat interval",
    defaultShown: "10000",
  },
  {
    key: "renewalCoalesceTicks",
    kind: "integer",
    help: "ticks the leader holds a KeepAlive to propose the renewals of every client as one entry; 0: each at once",
    defaultShown: "heartbeatIntervalTicks",
  },
  {
    key: "fsyncOnEventLoop",
    kind: "boolean",
    help: "fsync the leader's writes on the event loop instead of the thread pool (equally durable, slower under load)",
    defaultShown: "false",
  },
  { key: "clientMessageBytesMax", kind: "integer", help: "largest client request, in bytes", defaultShown: "server/limits.ts" },
  {
    key: "peerMessageBytesMax",
    kind: "integer",
    help: "largest peer message or snapshot chunk, in bytes",
    defaultShown: "server/limits.ts",
  },
  {
    key: "snapshotBytesMax",
    kind: "integer",
    help: "largest snapshot sent or accepted, in bytes; every member the same",
    defaultShown: "server/limits.ts",
  },
  { key: "snapshotChunkBytes", kind: "integer", help: "snapshot chunk size, in bytes", defaultShown: "server/limits.ts" },
  {
    key: "tlsCa",
    kind: "file",
    help: "PEM CA bundle that signs members' and clients' certificates",
    defaultShown: "required unless --insecure",
  },
  {
    key: "tlsCert",
    kind: "file",
    help: "PEM certificate of this member (both ports, both directions)",
    defaultShown: "required unless --insecure",
  },
  { key: "tlsKey", kind: "file", help: "PEM private key of tlsCert", defaultShown: "required unless --insecure" },
  { key: "tlsMinVersion", kind: "string", help: "lowest TLS version accepted, TLSv1.2 or TLSv1.3", defaultShown: "TLSv1.3" },
  { key: "insecure", kind: "boolean", help: "plaintext, unauthenticated ports (never in production)", defaultShown: "false" },
  { key: "authConfig", kind: "file", help: "YAML roles and bindings (README 'Authentication and permissions')", defaultShown: "none" },
  { key: "authTokens", kind: "file", help: "file of SHA-256 hashes of bearer tokens (tools/auth_token.ts)", defaultShown: "none" },
  { key: "adminIdentities", kind: "list", help: "identities with the admin role, a,b", defaultShown: "none" },
  {
    key: "metricsListen",
    kind: "string",
    help: "host:port of the plain-HTTP /metrics, /healthz, /readyz listener (port 0: any); loopback only unless --metrics-allow-remote",
    defaultShown: "none (off)",
  },
  {
    key: "metricsAllowRemote",
    kind: "boolean",
    help: "let --metrics-listen bind a non-loopback address (anyone who reaches it reads the metrics; no TLS, no auth)",
    defaultShown: "false",
  },
  {
    key: "grpcReflection",
    kind: "boolean",
    help: "serve gRPC server reflection on the client port (behind its TLS, no per-call auth: it shows only the API schema)",
    defaultShown: "false",
  },
  { key: "testMode", kind: "boolean", help: "permit the test-only options below (logged loudly)", defaultShown: "false", testOnly: true },
  {
    key: "testClockFile",
    kind: "file",
    help: "JSON file of a controllable clock, re-read on SIGUSR2",
    defaultShown: "none",
    testOnly: true,
  },
  { key: "testBugs", kind: "list", help: "deliberate bugs the chaos checker must catch", defaultShown: "none", testOnly: true },
  {
    key: "testApplyDelayMs",
    kind: "integer",
    help: "a slow state machine: milliseconds per applied entry",
    defaultShown: "none",
    testOnly: true,
  },
];

const KEYS = new Set(SERVER_OPTIONS.map((o) => o.key));
const BOOLEAN_KEYS = new Set(SERVER_OPTIONS.filter((o) => o.kind === "boolean").map((o) => o.key));

export const ENV_PREFIX = "TENURE_";

export const flagOf = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
export const envOf = (key: string): string => ENV_PREFIX + key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
const keyOfFlag = (flagName: string): string => flagName.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const keyOfEnv = (envName: string): string => keyOfFlag(envName.slice(ENV_PREFIX.length).toLowerCase().replaceAll("_", "-"));

export function isOptionKey(key: string): boolean {
  return KEYS.has(key);
}

export function isBooleanOption(key: string): boolean {
  return BOOLEAN_KEYS.has(key);
}

/** Edits beyond which a suggestion would be a guess, not a correction. */
const SUGGESTION_DISTANCE_MAX = 4;

/** " (did you mean X?)" for the name nearest to `given` among `names`, or "" if none is near. */
function suggestion(given: string, names: readonly string[]): string {
  // Case first: lockDelayMS is lockDelayMs, whatever the edit distance of the rest says.
  const sameLetters = names.find((n) => n.toLowerCase() === given.toLowerCase());
  const nearest = sameLetters ?? closest(given, [...names]);
  const near = sameLetters !== undefined || distance(given.toLowerCase(), nearest.toLowerCase()) <= SUGGESTION_DISTANCE_MAX;
  return near ? ` (did you mean ${nearest}?)` : "";
}

export type OptionSource = "flag" | "env" | "yaml";

/** The message for a name outside the table, or null if the name is an option. */
export function unknownOptionMessage(source: OptionSource, name: string, where = ""): string | null {
  const key = source === "flag" ? keyOfFlag(name) : source === "env" ? keyOfEnv(name) : name;
  if (KEYS.has(key) && (source !== "yaml" || key !== "config")) return null;
  const all = SERVER_OPTIONS.map((o) => o.key);
  const help = " (--help lists every option)";
  if (source === "flag") return `unknown flag --${name}${suggestion(`--${name}`, all.map(flagOf))}${help}`;
  if (source === "env") return `unknown environment variable ${name}${suggestion(name, all.map(envOf))}${help}`;
  return `unknown key "${name}"${where === "" ? "" : ` in ${where}`}${suggestion(
    name,
    all.filter((k) => k !== "config"),
  )}${help}`;
}

/** The flag name (without --) as the internal key. */
export function keyOfFlagName(flagName: string): string {
  return keyOfFlag(flagName);
}

/** The environment variable's name as the internal key. */
export function keyOfEnvName(envName: string): string {
  return keyOfEnv(envName);
}

/** --help: usage, then every option with its kind, unit (in its help) and default. */
export function helpText(program: string, summary: string): string {
  const row = (o: OptionSpec): string => {
    const value = o.kind === "boolean" ? "" : ` <${o.kind}>`;
    return `  ${`${flagOf(o.key)}${value}`.padEnd(36)} ${o.help} [default: ${o.defaultShown}]\n      (env ${envOf(o.key)}, YAML ${o.key})\n`;
  };
  return [
    `usage: ${program} [options]\n`,
    `${summary}\n\n`,
    "Options (flags win over TENURE_* environment variables, which win over the --config YAML file):\n",
    ...SERVER_OPTIONS.filter((o) => o.testOnly !== true).map(row),
    "  --help                               print this and exit\n",
    "  --version                            print the version and exit\n",
    "\nTest-only options (refused without --test-mode; never in production):\n",
    ...SERVER_OPTIONS.filter((o) => o.testOnly === true).map(row),
  ].join("");
}
