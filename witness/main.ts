// tenure-witness: the witness member of a two-site Tenure cluster (DESIGN.md §4). Same flags,
// config loader, data-directory identity check, storage and peer transport as tenured; the
// member must be listed in --witnesses on every member. It keeps the Raft log durably, votes,
// may lead briefly to hand over, and never applies entries or serves clients.
//
//   npm run witness -- --id w --cluster-id c1 --data-dir data/w \
//     --peer-listen 127.0.0.1:7103 --client-listen 127.0.0.1:7003 \
//     --members a=127.0.0.1:7101/127.0.0.1:7001,b=...,w=... --witnesses w [--bootstrap] \
//     --tls-ca ca.pem --tls-cert member-w.pem --tls-key member-w.key
//
// The same mutual TLS as tenured on both ports (server/tls/member_tls.ts), or --insecure.
//
// Test-only (testing/chaos): --test-mode [--test-clock-file PATH] skews this process's wall clock
// and tick rate exactly as in tenured; --test-bugs is accepted (one flag set for the cluster) and
// changes nothing here: both bugs live in the state machine and the read path, which a witness
// does not have.

import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { makeRaftConfig } from "../server/core/config.ts";
import { SeededRandom } from "../server/core/random.ts";
import type { ServerConfig } from "../server/config.ts";
import { runProcess } from "../server/process_main.ts";
import { openDataDir } from "../server/data_dir.ts";
import { configWithRecovery } from "../server/node/recovery_config.ts";
import { log } from "../server/logger.ts";
import { startTestMode, startTicker } from "../server/test_mode/test_clock.ts";
import { ProcessScheduler } from "../server/node/process_scheduler.ts";
import type { SqliteStorage } from "../server/storage/sqlite_storage.ts";
import { GrpcPeerTransport } from "../server/transport/grpc_peer_transport.ts";
import { witnessImageCheck } from "../server/transport/peer_message_checks.ts";
import { memberPeerOptions, type MemberStatus } from "../server/transport/member_peer_options.ts";
import { startMemberTls, type MemberTls } from "../server/tls/member_tls.ts";
import { assertLimitsAtStart } from "../server/limits.ts";
import { GrpcHealth } from "../server/health/grpc_health.ts";
import { readinessOf } from "../server/health/readiness.ts";
import { MemberMetrics } from "../server/metrics/member_metrics.ts";
import { startClientStub, type ClientStubHandle } from "./client_stub.ts";
import { WitnessNode } from "./witness_node.ts";

interface Running {
  readonly node: WitnessNode;
  readonly stub: ClientStubHandle;
  readonly transport: GrpcPeerTransport;
  readonly storage: SqliteStorage;
  readonly stopTicker: () => void;
  readonly tls: MemberTls;
  /** null unless --metrics-listen (nothing is recorded then). */
  readonly metrics: MemberMetrics | null;
  readonly health: GrpcHealth;
}

async function start(config: ServerConfig): Promise<Running> {
  const raftConfig = makeRaftConfig({
    id: config.id,
    random: new SeededRandom(randomInt(2 ** 31)),
    // The core doubles it for a witness (W4); the configured value stays equal on every member.
    electionTimeoutTicks: config.electionTimeoutTicks,
    heartbeatIntervalTicks: config.heartbeatIntervalTicks,
    // sendCommitAtOnce is left at the core's default (true), unlike tenured: a configuration
    // with a witness sends every commit at once anyway (raft.ts commitByAcks), and a witness
    // leads only such a configuration.
  });
  // No state machine here (state: null): the frame, batch and snapshot relations still hold.
  assertLimitsAtStart({ frames: config, raft: raftConfig, state: null }, log);
  const testClock = startTestMode(config, log);
  // Refuses an empty directory without --bootstrap and a directory of another member, exactly
  // as tenured does, and a member that is not listed as a witness.
  // Before the data directory: a TLS file that is missing or does not fit is a config error.
  const tls = startMemberTls(config.tls, (fields) => log({ component: "tls", ...fields }));
  const { storage, incarnations } = openDataDir(config, "witness");
  // The Raft, storage, peer and safety metrics of server/metrics (no state machine here).
  const metrics =
    config.metricsListen === null
      ? null
      : new MemberMetrics({
          electionTimeoutMs: config.tickMs * config.electionTimeoutTicks,
          rho: config.rho,
          clocks: {
            monotonicMs: testClock === null ? () => performance.now() : () => testClock.monotonicMs(),
            wallMs: () => Date.now(),
          },
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
      checkSnapshotImage: witnessImageCheck,
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
  const node: WitnessNode = new WitnessNode({
    // Lost or damaged log data found at open: no vote, no campaign until caught up (issue 13).
    raftConfig: configWithRecovery(raftConfig, storage.recovery(), (fields) => log(fields)),
    storage: metrics?.storage(storage, storage.recovery() !== null) ?? storage,
    transport:
      metrics?.transport(
        transport,
        peers.map((p) => p.id),
        () => node.status(),
      ) ?? transport,
    requestProcess: () => scheduler.request(),
    log: (fields) => log({ component: "witness", ...fields }),
    // A member that left the configuration is forgotten (server/transport/peer_incarnations.ts).
    onConfiguration: (cs) => incarnations.observeConfiguration(cs),
  });
  scheduler.bind(() => node.process());
  nodeStatus = () => node.status();
  metrics?.bind({ status: () => node.status() });
  // grpc.health.v1 on the client port for the whole server (""): SERVING exactly when /readyz
  // says ready. The witness serves no tenure.v1 service, so no per-service names.
  const health = new GrpcHealth(() => readinessOf(node.status(), { applies: false }), []).start(config.tickMs);
  const stub = await startClientStub({
    listenAddress: config.clientListen,
    status: () => node.status(),
    memberAddresses: new Map(config.members.map((m) => [m.id, m.clientAddress])),
    messageBytesMax: config.clientMessageBytesMax,
    credentials: tls.client,
    health,
  });
  // The witness reads no clock but its ticker: a test clock's rate reaches its Raft timers here.
  const stopTicker = startTicker(testClock, config.tickMs, () => {
    node.tick();
    metrics?.tick();
  });
  return { node, stub, transport, storage, stopTicker, tls, metrics, health };
}

async function stop(r: Running): Promise<void> {
  r.stopTicker();
  r.health.close();
  await r.stub.close();
  r.node.stop();
  await r.transport.close();
  r.storage.close();
  r.tls.close();
}

// An uncaught exception is fatal (runProcess): a witness that acked an entry it did not keep
// would break W1, so it stops rather than carries on.
const WITNESS_PROGRAM = {
  name: "tenure-witness",
  summary: "The witness member of a two-site Tenure cluster: keeps the log, votes, never serves clients.",
};

runProcess(async (config) => {
  const running = await start(config);
  return {
    startedFields: {
      witness: true,
      clientAddress: running.stub.boundAddress(),
      peerAddress: running.transport.boundAddress(),
      transport: running.tls.transport,
    },
    stop: () => stop(running),
    readiness: { status: () => running.node.status(), applies: false, intervalMs: config.tickMs },
    metrics: running.metrics?.registry ?? null,
  };
}, WITNESS_PROGRAM);
