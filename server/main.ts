// tenured: one Tenure voter. Wires config, SQLite storage, the gRPC peer transport, the node
// loop and the client API; logs structured JSON lines; shuts down gracefully on SIGINT/SIGTERM.
//
//   node --import tsx server/main.ts --id a --cluster-id c1 --data-dir data/a \
//     --peer-listen 127.0.0.1:7101 --client-listen 127.0.0.1:7001 \
//     --members a=127.0.0.1:7101/127.0.0.1:7001,b=...,c=... [--bootstrap] [--config tenure.yaml] \
//     --tls-ca ca.pem --tls-cert member-a.pem --tls-key member-a.key [--tls-min-version TLSv1.2]
//
// Mutual TLS on both ports and to the peers (server/tls/; certificates reloaded on change and on
// SIGHUP), or --insecure for plaintext (warned at start, shown in Cluster.Status).
//
// Test-only (testing/chaos): --test-mode [--test-clock-file PATH] [--test-bugs NAME,...]
// [--test-apply-delay-ms N].
//
// Subcommands: `tenured backup` and `tenured restore` (server/backup/README.md).

import { performance } from "node:perf_hooks";
import { randomInt } from "node:crypto";
import { makeRaftConfig } from "./core/config.ts";
import { SeededRandom } from "./core/random.ts";
import { ConfigError, type ServerConfig } from "./config.ts";
import { runProcess } from "./process_main.ts";
import { RaftNode } from "./node/raft_node.ts";
import { ProcessScheduler } from "./node/process_scheduler.ts";
import { stateConfig, stateSizes, type StateConfig } from "./state/limits.ts";
import { assertLimitsAtStart } from "./limits.ts";
import type { SqliteStorage } from "./storage/sqlite_storage.ts";
import { GrpcPeerTransport } from "./transport/grpc_peer_transport.ts";
import { machineImageCheck } from "./transport/snapshot_image_check.ts";
import { memberPeerOptions, type MemberStatus } from "./transport/member_peer_options.ts";
import { startMemberTls, type MemberTls } from "./tls/member_tls.ts";
import { startApiServer, type ApiServerHandle } from "./api/api_server.ts";
import { auditTo } from "./auth/audit.ts";
import { Authenticator, OPEN_MODE_WARNING } from "./auth/authenticator.ts";
import { openDataDir } from "./data_dir.ts";
import { configWithRecovery } from "./node/recovery_config.ts";
import { log } from "./logger.ts";
import { startTestMode, startTicker } from "./test_mode/test_clock.ts";
import { isSubcommand, runSubcommand } from "./backup/cli.ts";
import { VoterMetrics } from "./metrics/voter_metrics.ts";
import { GrpcHealth } from "./health/grpc_health.ts";
import { readinessOf } from "./health/readiness.ts";

interface Running {
  readonly node: RaftNode;
  readonly api: ApiServerHandle;
  readonly transport: GrpcPeerTransport;
  readonly storage: SqliteStorage;
  readonly stopTicker: () => void;
  readonly tls: MemberTls;
  /** null unless --metrics-listen (nothing is recorded then). */
  readonly metrics: VoterMetrics | null;
  readonly health: GrpcHealth;
}

/** The state machine's config; with the test-only bug switch only under --test-bugs. */
function machineConfigOf(config: ServerConfig): StateConfig {
  const machineConfig = stateConfig({ rho: config.rho, lockDelayMs: config.lockDelayMs });
  if (!config.testBugs.includes("grant-without-lease-check")) return machineConfig;
  return { ...machineConfig, bugs: { grantWithoutLeaseCheck: true, reuseTokenAfterRestore: false } };
}

/** A slow state machine for --test-apply-delay-ms: the thread sleeps (the whole process stalls). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The client authentication of server/auth, from --auth-config, --auth-tokens, --admin-identities. */
function startAuth(config: ServerConfig): Authenticator {
  let auth: Authenticator;
  try {
    auth = Authenticator.start({
      authConfigFile: config.auth.configFile,
      tokenFile: config.auth.tokenFile,
      adminIdentities: config.auth.adminIdentities,
      tls: config.tls !== null,
      log: (fields) => log({ component: "auth", ...fields }),
    });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  const fields = { component: "auth", event: "auth", mode: auth.mode, tokens: auth.acceptsTokens, ...config.auth };
  if (auth.mode === "open") log({ ...fields, warning: OPEN_MODE_WARNING });
  else log(fields);
  process.on("SIGHUP", () => auth.reload());
  return auth;
}

async function start(config: ServerConfig): Promise<Running> {
  // One object for the node and the API: limits, rho and bug switches must agree.
  const machineConfig = machineConfigOf(config);
  const raftConfig = makeRaftConfig({
    id: config.id,
    random: new SeededRandom(randomInt(2 ** 31)),
    electionTimeoutTicks: config.electionTimeoutTicks,
    heartbeatIntervalTicks: config.heartbeatIntervalTicks,
    // A new commit index reaches the followers with the next append or heartbeat, not in an
    // append of its own (core/config.ts sendCommitAtOnce): a lone request then wakes each member
    // two times fewer. The core still sends it at once for a membership change, a recovering
    // follower or a witness in the configuration.
    sendCommitAtOnce: false,
    // Test-only slow apply: one committed entry per Ready (and one Ready per pass, below).
    ...(config.testApplyDelayMs !== null ? { committedEntriesPerReadyMax: 1 } : {}),
  });
  assertLimitsAtStart({ frames: config, raft: raftConfig, state: stateSizes(machineConfig.limits) }, log);
  const testClock = startTestMode(config, log);
  if (config.testApplyDelayMs !== null)
    log({ event: "test-apply-delay", applyDelayMs: config.testApplyDelayMs, warning: "TEST MODE: every entry is applied slowly" });
  // Before the data directory: a TLS file that is missing or does not fit is a config error.
  const auth = startAuth(config);
  // Bearer tokens are the alternative to a client certificate: the client port then lets a
  // connection without one through, and the call is refused unless it carries a token.
  const tls = startMemberTls(config.tls, (fields) => log({ component: "tls", ...fields }), {
    requireClientCertificate: !auth.acceptsTokens,
  });
  const { storage, incarnations } = openDataDir(config);
  const monotonicMs = testClock === null ? () => performance.now() : () => testClock.monotonicMs();
  // Metrics (server/metrics) only with --metrics-listen: wrappers around storage, transport and
  // the node's client API, readers bound once the node exists, samplers on the ticker.
  const metrics =
    config.metricsListen === null
      ? null
      : new VoterMetrics({
          electionTimeoutMs: config.tickMs * config.electionTimeoutTicks,
          rho: config.rho,
          clocks: { monotonicMs, wallMs: () => Date.now() },
          log: (fields) => log({ component: "metrics", ...fields }),
        });
  metrics?.tls(tls.material);
  const peers = config.members.filter((m) => m.id !== config.id).map((m) => ({ id: m.id, address: m.peerAddress }));
  // Identity, admission, message checks and the term guard read the node, which needs the
  // transport first: bound below, once the node exists (server/transport/member_peer_options.ts).
  let nodeStatus: () => MemberStatus | null = () => null;
  const transport = await GrpcPeerTransport.start({
    ...memberPeerOptions({
      tls: !tls.insecure,
      electionTimeoutMs: config.tickMs * config.electionTimeoutTicks,
      checkSnapshotImage: machineImageCheck(machineConfig),
      status: () => nodeStatus(),
    }),
    selfId: config.id,
    clusterId: config.clusterId,
    listenAddress: config.peerListen,
    peers,
    messageBytesMax: config.peerMessageBytesMax,
    snapshotBytesMax: config.snapshotBytesMax,
    snapshotChunkBytes: config.snapshotChunkBytes,
    credentials: tls.peer,
    incarnations,
    log: (fields: Record<string, unknown>) => log({ component: "transport", ...fields }),
  });
  const scheduler = new ProcessScheduler();
  const nodeTransport =
    metrics?.transport(
      transport,
      peers.map((p) => p.id),
      () => node.status(),
    ) ?? transport;
  const node: RaftNode = new RaftNode({
    // Lost or damaged log data found at open: no vote, no campaign until caught up (issue 13).
    raftConfig: configWithRecovery(raftConfig, storage.recovery(), (fields) => log(fields)),
    storage: metrics?.storage(storage, storage.recovery() !== null) ?? storage,
    transport: nodeTransport,
    clock: { monotonicMs },
    stateConfig: machineConfig,
    snapshotEveryEntries: config.snapshotEveryEntries,
    pendingMax: config.pendingRequestsMax,
    overloadRetryAfterMs: config.tickMs * config.heartbeatIntervalTicks,
    renewalCoalesceTicks: config.renewalCoalesceTicks ?? config.heartbeatIntervalTicks,
    // The leader's fsync on the thread pool while the loop serves clients (ready_loop.ts).
    backgroundWrites: !config.fsyncOnEventLoop,
    memberAddresses: new Map(config.members.map((m) => [m.id, m.clientAddress])),
    requestProcess: () => scheduler.request(),
    log: (fields) => log({ component: "node", ...fields }),
    // A member that left the configuration is forgotten (server/transport/peer_incarnations.ts).
    onConfiguration: (cs) => incarnations.observeConfiguration(cs),
    staleLocalReads: config.testBugs.includes("stale-local-reads"),
    readBeforeApplied: config.testBugs.includes("read-before-applied"),
    ...(config.testApplyDelayMs !== null
      ? { readiesPerPassMax: 1, testOnlyBeforeApply: () => sleepSync(config.testApplyDelayMs ?? 0) }
      : {}),
  });
  scheduler.bind(() => node.process());
  nodeStatus = () => node.status();
  metrics?.bind({
    status: () => node.status(),
    matchIndexOf: (id) => node.matchIndexOf(id),
    machine: () => node.stateMachine(),
    subscribe: (listener, onRestored) => node.subscribe(listener, onRestored),
  });
  // grpc.health.v1 on the client port: SERVING exactly when /readyz says ready.
  const health = new GrpcHealth(() => readinessOf(node.status(), { applies: true })).start(config.tickMs);
  const api = await startApiServer({
    node: metrics?.node(node) ?? node,
    stateConfig: machineConfig,
    listenAddress: config.clientListen,
    messageBytesMax: config.clientMessageBytesMax,
    credentials: tls.client,
    auth,
    audit: auditTo(log),
    clusterId: config.clusterId,
    health,
    reflection: config.grpcReflection,
    ...(metrics === null ? {} : { interceptors: [metrics.interceptor()], onService: (d) => metrics.requests.knowService(d) }),
  });
  const stopTicker = startTicker(testClock, config.tickMs, () => {
    node.tick();
    metrics?.tick();
  });
  return { node, api, transport, storage, stopTicker, tls, metrics, health };
}

async function stop(r: Running): Promise<void> {
  r.stopTicker();
  r.health.close();
  await r.api.close();
  r.node.stop();
  await r.transport.close();
  r.storage.close();
  r.tls.close();
}

// `tenured backup ...` and `tenured restore ...` are one-shot commands (server/backup/cli.ts).
const subcommand = process.argv[2];
if (isSubcommand(subcommand)) {
  void runSubcommand(subcommand, process.argv.slice(3)).then((code) => process.exit(code));
} else {
  runProcess(async (config) => {
    const running = await start(config);
    return {
      startedFields: {
        clientAddress: running.api.boundAddress(),
        peerAddress: running.transport.boundAddress(),
        transport: running.tls.transport,
      },
      stop: () => stop(running),
      readiness: { status: () => running.node.status(), applies: true, intervalMs: config.tickMs },
      metrics: running.metrics?.registry ?? null,
    };
  });
}
