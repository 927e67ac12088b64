// tenured's configuration: defaults, then a YAML file (--config), then environment variables
// (TENURE_*), then flags; later sources win. Every value is validated with a message that names
// the source and says what was wrong. The test-only switches (--test-clock-file, --test-bugs,
// --test-apply-delay-ms) are off by default and refused unless --test-mode is also given, so no
// production config can turn one on by a stray key. Mutual TLS on both ports is required: the
// three files (--tls-ca, --tls-cert, --tls-key) unless --insecure says plaintext by name.

import { readFileSync } from "node:fs";
import { parseYaml } from "./yaml.ts";
import { ENV_PREFIX, isBooleanOption, keyOfEnvName, keyOfFlagName, unknownOptionMessage } from "./config_options.ts";
import {
  CLIENT_MESSAGE_BYTES_MAX_DEFAULT,
  PEER_MESSAGE_BYTES_MAX_DEFAULT,
  SNAPSHOT_BYTES_MAX_DEFAULT,
  SNAPSHOT_CHUNK_BYTES_DEFAULT,
} from "./limits.ts";
import { TLS_MIN_VERSIONS, type TlsFiles } from "./tls/tls_material.ts";

export interface MemberConfig {
  readonly id: string;
  /** host:port of the member's peer (Raft) listener. */
  readonly peerAddress: string;
  /** host:port of the member's client API listener. */
  readonly clientAddress: string;
}

export interface ServerConfig {
  readonly id: string;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly peerListen: string;
  readonly clientListen: string;
  /** Every member of the initial cluster, this node included. */
  readonly members: readonly MemberConfig[];
  /**
   * Ids of the members that are witnesses (DESIGN.md §4): they keep the log but never apply it
   * or serve clients, and run as tenure-witness. Must be equal on every member: it goes into
   * the bootstrap configuration, which every member must start from.
   */
  readonly witnesses: readonly string[];
  /** Create a brand-new cluster from `members` if the data directory is empty. */
  readonly bootstrap: boolean;
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly snapshotEveryEntries: number;
  /** Clock-rate error bound (DESIGN.md §3). Must be equal on every member. */
  readonly rho: number;
  readonly lockDelayMs: number;
  readonly pendingRequestsMax: number;
  /**
   * The leader holds each KeepAlive at most this many ticks and proposes the renewals of every
   * client it holds as one entry (server/node/renewal_batch.ts); 0 proposes each at once. null:
   * the heartbeat interval.
   */
  readonly renewalCoalesceTicks: number | null;
  /**
   * fsync each write on the event loop (SQLite synchronous=FULL in the save) instead of on the
   * thread pool while the loop serves clients (server/storage/wal_sync.ts). Equally durable;
   * slower under load. For comparison and as a way back.
   */
  readonly fsyncOnEventLoop: boolean;
  /**
   * Frame and snapshot limits (server/limits.ts, which asserts at startup how they relate to each
   * other and to the Raft and state limits). The client frame bounds a request to the client API;
   * the peer frame bounds one PeerBatch or one snapshot chunk, both ways.
   */
  readonly clientMessageBytesMax: number;
  readonly peerMessageBytesMax: number;
  /** The largest snapshot this member sends or accepts; must be equal on every member. */
  readonly snapshotBytesMax: number;
  readonly snapshotChunkBytes: number;
  /**
   * Mutual TLS on the client and peer ports and for dialing the peers: the CA bundle, this
   * member's certificate and key (one pair for both ports, both directions) and the lowest TLS
   * version. null only with --insecure (plaintext, unauthenticated; warned at start and shown in
   * Cluster.Status).
   */
  readonly tls: TlsFiles | null;
  /**
   * Client authentication and permissions (server/auth, README "Authentication and permissions"):
   * --auth-config FILE (roles and bindings, YAML), --auth-tokens FILE (SHA-256 hashes of bearer
   * tokens), --admin-identities a,b (admins besides the config's admin bindings). All optional:
   * with TLS and no auth config every certificate identity may use every name; with --insecure
   * and none of them, the open mode.
   */
  readonly auth: AuthOptions;
  /**
   * The plain-HTTP listener of /metrics, /healthz and /readyz (server/health/http_server.ts),
   * from --metrics-listen host:port; null (the default): no listener. A loopback host unless
   * --metrics-allow-remote says otherwise by name: the port has no TLS and no authentication.
   */
  readonly metricsListen: string | null;
  /** gRPC server reflection on the client port (--grpc-reflection); off by default. */
  readonly grpcReflection: boolean;
  /** Test-only (the chaos harness): permits the two options below; logged loudly at start. */
  readonly testMode: boolean;
  /** Test-only: the JSON file of a controllable clock (server/test_mode/test_clock.ts), re-read on SIGUSR2. */
  readonly testClockFile: string | null;
  /** Test-only: deliberately broken modes that the chaos checker must catch. */
  readonly testBugs: readonly TestBug[];
  /**
   * Test-only (--test-apply-delay-ms N): a slow state machine. Each committed entry takes N ms
   * to apply (the node sleeps), one committed entry per Ready and one Ready per pass, so applied
   * lags commit across passes (a restarted or caught-up member replays its backlog slowly)
   * while other input is handled between passes. null: off.
   */
  readonly testApplyDelayMs: number | null;
}

export interface AuthOptions {
  readonly configFile: string | null;
  readonly tokenFile: string | null;
  readonly adminIdentities: readonly string[];
}

/** Deliberate bugs a test-mode server can run with (see server/main.ts for what each does). */
export const TEST_BUGS = ["grant-without-lease-check", "stale-local-reads", "read-before-applied"] as const;
export type TestBug = (typeof TEST_BUGS)[number];

type NoDefault = "id" | "clusterId" | "dataDir" | "peerListen" | "clientListen" | "members" | "tls" | "auth" | "metricsListen";
// The test-only options have no default here: validate() must see whether one was given at all.
type TestOnly = "testClockFile" | "testBugs" | "testApplyDelayMs";

/** The Raft tick when none is configured (--tick-ms). */
export const TICK_MS_DEFAULT = 50;

const DEFAULTS: Omit<ServerConfig, NoDefault | TestOnly> & { readonly insecure: boolean } = {
  witnesses: [],
  bootstrap: false,
  tickMs: TICK_MS_DEFAULT,
  electionTimeoutTicks: 10,
  heartbeatIntervalTicks: 2,
  snapshotEveryEntries: 10_000,
  rho: 0.01,
  lockDelayMs: 5_000,
  pendingRequestsMax: 10_000,
  renewalCoalesceTicks: null,
  fsyncOnEventLoop: false,
  clientMessageBytesMax: CLIENT_MESSAGE_BYTES_MAX_DEFAULT,
  peerMessageBytesMax: PEER_MESSAGE_BYTES_MAX_DEFAULT,
  snapshotBytesMax: SNAPSHOT_BYTES_MAX_DEFAULT,
  snapshotChunkBytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
  testMode: false,
  insecure: false,
  grpcReflection: false,
};

type Raw = Record<string, unknown>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Flag names are kebab-case (--data-dir), env names TENURE_ + SNAKE (TENURE_DATA_DIR). */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ServerConfig {
  const flags = parseFlags(argv);
  const file = typeof flags["config"] === "string" ? readYaml(flags["config"]) : {};
  const merged: Raw = { ...DEFAULTS, ...file, ...fromEnv(env), ...flags };
  delete merged["config"];
  return validate(merged);
}

// Flags of kind boolean (config_options.ts) take no value: present means true (--bootstrap);
// --name=false still works.
function parseFlags(argv: readonly string[]): Raw {
  const out: Raw = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}": flags look like --name value`);
    const [rawName, inline] = arg.slice(2).split("=", 2);
    const unknown = unknownOptionMessage("flag", rawName ?? "");
    if (unknown !== null) throw new ConfigError(unknown);
    const key = keyOfFlagName(rawName ?? "");
    if (isBooleanOption(key) && inline === undefined) {
      out[key] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`flag --${rawName} needs a value`);
    out[key] = value;
  }
  return out;
}

function fromEnv(env: Readonly<Record<string, string | undefined>>): Raw {
  const out: Raw = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const unknown = unknownOptionMessage("env", name);
    if (unknown !== null) throw new ConfigError(unknown);
    out[keyOfEnvName(name)] = value;
  }
  return out;
}

function readYaml(path: string): Raw {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) throw new ConfigError(`${path}: the top level must be a mapping`);
  for (const key of Object.keys(parsed)) {
    const unknown = unknownOptionMessage("yaml", key, path);
    if (unknown !== null) throw new ConfigError(unknown);
  }
  return parsed as Raw;
}

function validate(raw: Raw): ServerConfig {
  const members = parseMembers(raw["members"]);
  const config: ServerConfig = {
    id: str(raw, "id", /^[a-z0-9][a-z0-9_-]{0,62}$/),
    clusterId: str(raw, "clusterId", CLUSTER_ID_PATTERN),
    dataDir: str(raw, "dataDir", /.+/),
    peerListen: hostPort(raw, "peerListen"),
    clientListen: hostPort(raw, "clientListen"),
    members,
    witnesses: parseWitnesses(raw["witnesses"]),
    bootstrap: bool(raw, "bootstrap"),
    tickMs: int(raw, "tickMs", 1, 10_000),
    electionTimeoutTicks: int(raw, "electionTimeoutTicks", 2, 10_000),
    heartbeatIntervalTicks: int(raw, "heartbeatIntervalTicks", 1, 10_000),
    snapshotEveryEntries: int(raw, "snapshotEveryEntries", 10, 10_000_000),
    rho: num(raw, "rho", 0, 0.5),
    lockDelayMs: int(raw, "lockDelayMs", 0, 60_000),
    pendingRequestsMax: int(raw, "pendingRequestsMax", 1, 1_000_000),
    renewalCoalesceTicks: raw["renewalCoalesceTicks"] === null ? null : int(raw, "renewalCoalesceTicks", 0, 10_000),
    fsyncOnEventLoop: bool(raw, "fsyncOnEventLoop"),
    // Plain ranges here; assertLimits (server/limits.ts) checks that the values fit together.
    clientMessageBytesMax: int(raw, "clientMessageBytesMax", 4 * 1024, 256 * 1024 * 1024),
    peerMessageBytesMax: int(raw, "peerMessageBytesMax", 64 * 1024, 256 * 1024 * 1024),
    snapshotBytesMax: int(raw, "snapshotBytesMax", 1024, 1_000_000_000),
    snapshotChunkBytes: int(raw, "snapshotChunkBytes", 1024, 256 * 1024 * 1024),
    // Test-only switches first: a copied test command line is named as such before anything else.
    ...testOptions(raw),
    tls: tlsOptions(raw),
    auth: authOptions(raw),
    metricsListen: metricsListenOf(raw),
    grpcReflection: bool(raw, "grpcReflection"),
  };
  if (config.heartbeatIntervalTicks >= config.electionTimeoutTicks) {
    throw new ConfigError("heartbeatIntervalTicks must be smaller than electionTimeoutTicks");
  }
  // A renewal held for an election timeout or more could outlast a short lease's margin.
  if (config.renewalCoalesceTicks !== null && config.renewalCoalesceTicks >= config.electionTimeoutTicks) {
    throw new ConfigError("renewalCoalesceTicks must be smaller than electionTimeoutTicks");
  }
  if (!members.some((m) => m.id === config.id)) throw new ConfigError(`members must include this node's id "${config.id}"`);
  if (new Set(members.map((m) => m.id)).size !== members.length) throw new ConfigError("members has a duplicate id");
  for (const w of config.witnesses) {
    if (!members.some((m) => m.id === w)) throw new ConfigError(`witness "${w}" is not in members`);
  }
  // A cluster of witnesses only could never apply anything or serve a client.
  if (members.every((m) => config.witnesses.includes(m.id))) throw new ConfigError("at least one member must not be a witness");
  return config;
}

/** --metrics-listen: off when absent or empty; a non-loopback host only with --metrics-allow-remote. */
function metricsListenOf(raw: Raw): string | null {
  const allowRemote = raw["metricsAllowRemote"] === undefined ? false : bool(raw, "metricsAllowRemote");
  if (raw["metricsListen"] === undefined || raw["metricsListen"] === "" || raw["metricsListen"] === null) {
    if (allowRemote) throw new ConfigError("--metrics-allow-remote needs --metrics-listen host:port");
    return null;
  }
  const listen = hostPort(raw, "metricsListen");
  const host = listen.slice(0, listen.lastIndexOf(":"));
  if (!allowRemote && !isLoopbackHost(host)) {
    throw new ConfigError(
      `--metrics-listen ${listen} is not a loopback address: the metrics port is plain HTTP with no authentication, so binding it where others can reach it must be asked for by name with --metrics-allow-remote (or use 127.0.0.1:PORT)`,
    );
  }
  return listen;
}

/** 127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, a hostname, a LAN address) is remote. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (h === "localhost" || h === "::1") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m?.slice(1).every((x) => Number(x) <= 255) === true;
}

const TLS_FILE_FLAGS = [
  ["tlsCa", "--tls-ca"],
  ["tlsCert", "--tls-cert"],
  ["tlsKey", "--tls-key"],
] as const;

const IDENTITY = /^[A-Za-z0-9._:@/+=-]{1,64}$/;

/** The auth files and the admin identities (a YAML list, or "a,b" as a flag or in the environment). */
function authOptions(raw: Raw): AuthOptions {
  const file = (key: string): string | null => (raw[key] === undefined || raw[key] === "" ? null : str(raw, key, /.+/));
  const admins = raw["adminIdentities"];
  const list =
    admins === undefined || admins === null || admins === ""
      ? []
      : typeof admins === "string"
        ? admins.split(",").map((a) => a.trim())
        : admins;
  if (!Array.isArray(list)) throw new ConfigError("adminIdentities must be a list of identities (flag --admin-identities a,b)");
  const adminIdentities = list.map((id, i) => str({ id }, "id", IDENTITY, `adminIdentities[${i}]`));
  return { configFile: file("authConfig"), tokenFile: file("authTokens"), adminIdentities };
}

/** The TLS files, all three required unless --insecure, which takes none of them. Whether the
 *  files exist and fit together is checked when they are loaded (server/tls/member_tls.ts). */
function tlsOptions(raw: Raw): TlsFiles | null {
  const given = TLS_FILE_FLAGS.filter(([key]) => raw[key] !== undefined && raw[key] !== "");
  if (bool(raw, "insecure")) {
    if (given.length > 0) {
      throw new ConfigError(
        `--insecure (plaintext) and ${given.map(([, f]) => f).join(", ")} contradict each other: give one or the other`,
      );
    }
    return null;
  }
  const missing = TLS_FILE_FLAGS.filter(([key]) => raw[key] === undefined || raw[key] === "").map(([, flag]) => flag);
  if (missing.length > 0) {
    throw new ConfigError(
      `${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} required: both ports run mutual TLS (--tls-ca CA bundle, --tls-cert and --tls-key this member's certificate and key; README "TLS"), or give --insecure for plaintext (never in production)`,
    );
  }
  const minVersion = raw["tlsMinVersion"] ?? "TLSv1.3";
  const known = TLS_MIN_VERSIONS.find((v) => v === minVersion);
  if (known === undefined)
    throw new ConfigError(`tlsMinVersion must be ${TLS_MIN_VERSIONS.join(" or ")}, got ${JSON.stringify(minVersion)}`);
  return {
    caFile: str(raw, "tlsCa", /.+/),
    certFile: str(raw, "tlsCert", /.+/),
    keyFile: str(raw, "tlsKey", /.+/),
    minVersion: known,
  };
}

function testOptions(raw: Raw): Pick<ServerConfig, "testMode" | "testClockFile" | "testBugs" | "testApplyDelayMs"> {
  const testMode = bool(raw, "testMode");
  // Refused by presence, not by value: even an empty --test-bugs in a production config is a
  // sign that someone copied a test command line.
  const testOnly = [
    ["testClockFile", "--test-clock-file"],
    ["testBugs", "--test-bugs"],
    ["testApplyDelayMs", "--test-apply-delay-ms"],
  ] as const;
  for (const [key, flag] of testOnly) {
    if (raw[key] !== undefined && !testMode) {
      throw new ConfigError(`${flag} requires --test-mode (test-only option; never use it in production)`);
    }
  }
  const testClockFile = raw["testClockFile"] === undefined ? null : str(raw, "testClockFile", /.+/);
  const testApplyDelayMs = raw["testApplyDelayMs"] === undefined ? null : int(raw, "testApplyDelayMs", 0, 1000);
  return { testMode, testClockFile, testBugs: parseTestBugs(raw["testBugs"]), testApplyDelayMs };
}

/** testBugs: a YAML list of names, or "a" / "a,b" (flag, env); duplicates count once. */
function parseTestBugs(value: unknown): TestBug[] {
  if (value === undefined || value === null || value === "") return [];
  const list = typeof value === "string" ? value.split(",").map((s) => s.trim()) : value;
  if (!Array.isArray(list)) throw new ConfigError("testBugs must be a list of names (flag --test-bugs a,b)");
  const bugs = new Set<TestBug>();
  for (const name of list) {
    const known = TEST_BUGS.find((b) => b === name);
    if (known === undefined) {
      throw new ConfigError(`unknown test bug ${JSON.stringify(name)} in testBugs; known: ${TEST_BUGS.join(", ")}`);
    }
    bugs.add(known);
  }
  return [...bugs];
}

/** witnesses: a YAML list of ids, or "w" / "w1,w2" (flag, env); empty means none. */
function parseWitnesses(value: unknown): string[] {
  if (value === undefined || value === null || value === "") return [];
  const list = typeof value === "string" ? value.split(",").map((s) => s.trim()) : value;
  if (!Array.isArray(list)) throw new ConfigError("witnesses must be a list of member ids (flag --witnesses w)");
  const ids = list.map((id, i) => str({ id }, "id", ID, `witnesses[${i}]`));
  if (new Set(ids).size !== ids.length) throw new ConfigError("witnesses has a duplicate id");
  return ids;
}

const HOST_PORT = /^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/;
/** --cluster-id (also checked by `tenured restore`, server/backup/cli.ts). */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** members: a YAML list of {id, peerAddress, clientAddress}, or "id=peer/client,id=peer/client"
 *  (exported for `tenured restore`, which takes the same --members). */
export function parseMembers(value: unknown): MemberConfig[] {
  if (value === undefined) throw new ConfigError("members is required (flag --members a=127.0.0.1:7101/127.0.0.1:7001,...)");
  const list = typeof value === "string" ? value.split(",").map(parseMemberString) : value;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError("members must be a non-empty list");
  return list.map((m, i) => {
    if (typeof m !== "object" || m === null) throw new ConfigError(`members[${i}] must be a mapping`);
    const r = m as Raw;
    const extra = Object.keys(r).filter((k) => !MEMBER_KEYS.includes(k));
    if (extra.length > 0) {
      throw new ConfigError(`unknown key "${extra[0]}" in members[${i}]: a member has ${MEMBER_KEYS.join(", ")}`);
    }
    return {
      id: str(r, "id", /^[a-z0-9][a-z0-9_-]{0,62}$/, `members[${i}].id`),
      peerAddress: hostPort(r, "peerAddress", `members[${i}].peerAddress`),
      clientAddress: hostPort(r, "clientAddress", `members[${i}].clientAddress`),
    };
  });
}

const MEMBER_KEYS = ["id", "peerAddress", "clientAddress"];

function parseMemberString(s: string): Raw {
  const m = /^([^=]+)=([^/]+)\/(.+)$/.exec(s.trim());
  if (!m) throw new ConfigError(`member "${s}" must look like id=peerHost:port/clientHost:port`);
  return { id: m[1], peerAddress: m[2], clientAddress: m[3] };
}

function str(raw: Raw, key: string, pattern: RegExp, label = key): string {
  const v = raw[key];
  if (typeof v !== "string" || !pattern.test(v)) {
    throw new ConfigError(`${label} must match ${pattern.source}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** host:port with a port a socket can have (0 = any free port, for a listener), not just five digits. */
function hostPort(raw: Raw, key: string, label = key): string {
  const v = str(raw, key, HOST_PORT, label);
  const port = Number(v.slice(v.lastIndexOf(":") + 1));
  if (port > PORT_MAX) throw new ConfigError(`${label} ${v}: port ${port} is out of range (0..${PORT_MAX})`);
  return v;
}

const PORT_MAX = 65_535;

function bool(raw: Raw, key: string): boolean {
  const v = raw[key];
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(v)}`);
}

function num(raw: Raw, key: string, min: number, maxExclusive: number): number {
  const v = typeof raw[key] === "string" ? Number(raw[key]) : raw[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v >= maxExclusive) {
    throw new ConfigError(`${key} must be a number in [${min}, ${maxExclusive}), got ${JSON.stringify(raw[key])}`);
  }
  return v;
}

function int(raw: Raw, key: string, min: number, max: number): number {
  const v = typeof raw[key] === "string" ? Number(raw[key]) : raw[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(`${key} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw[key])}`);
  }
  return v;
}
