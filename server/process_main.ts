// The process lifecycle shared by tenured and tenure-witness: load the config, treat an uncaught
// exception or an unhandled rejection as fatal (storage failure and broken invariants must stop
// the process rather than let it serve diverged state; server/fatal.ts writes the one line and
// exits), log "started" (with the pid: SIGHUP reloads the TLS certificates), log "ready" (with
// the leader) once the member serves, serve /metrics, /healthz and /readyz on plain HTTP with
// --metrics-listen (server/health/http_server.ts; its address is metricsAddress in the "started"
// line; a port that cannot be bound is a failure to start), and shut down gracefully on
// SIGINT/SIGTERM.
//
// --help lists every option (server/config_options.ts); --version prints the version.
//
// Exit codes: 0 after a signal or for --help/--version, 2 for a bad configuration, 1 for any other failure to start,
// FATAL_EXIT_CODE (70) when a running member stops itself.

import { ConfigError, loadConfig, type ServerConfig } from "./config.ts";
import { helpText } from "./config_options.ts";
import { fatal } from "./fatal.ts";
import { watchReady } from "./node/ready_watch.ts";
import { startHealthServer, type HealthServerHandle } from "./health/http_server.ts";
import { readinessOf, type ReadinessStatus } from "./health/readiness.ts";
import type { MetricsRegistry } from "./metrics/registry.ts";
import { TENURE_VERSION } from "./version.ts";
import { log } from "./logger.ts";

export interface RunningService {
  /** Fields of the {"event":"started"} line (addresses, data dir, ...). */
  readonly startedFields: Record<string, unknown>;
  /** Stops serving and releases ports and the data directory. */
  stop(): Promise<void>;
  /** For the one {"event":"ready"} line (server/node/ready_watch.ts) and /readyz (server/health). */
  readonly readiness: { readonly status: () => ReadinessStatus; readonly applies: boolean; readonly intervalMs: number };
  /** What /metrics serves with --metrics-listen (server/metrics); null: no metrics. */
  readonly metrics?: MetricsRegistry | null;
}

/** Who the process is, for --help and --version. */
export interface ProgramInfo {
  readonly name: string;
  readonly summary: string;
}

const TENURED: ProgramInfo = { name: "tenured", summary: "One voter of a Tenure cluster (leases, locks, elections with fencing tokens)." };

export function runProcess(start: (config: ServerConfig) => Promise<RunningService>, program: ProgramInfo = TENURED): void {
  // Before anything else: --help and --version answer and exit 0, whatever else is given.
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText(program.name, program.summary));
    return;
  }
  if (argv.includes("--version")) {
    process.stdout.write(`${program.name} ${TENURE_VERSION}\n`);
    return;
  }
  // Installed before anything starts: a timer or stream callback may throw during startup too.
  // Whatever reaches these handlers was caught by nobody, so its state is unknown: fatal for
  // every error, not just isFatal() ones.
  process.on("uncaughtException", (err) => fatal(err, "uncaught exception"));
  process.on("unhandledRejection", (reason) => fatal(reason, "unhandled promise rejection"));
  main(start).catch((err: unknown) => {
    const configError = err instanceof ConfigError;
    fatal(err, "startup", { exitCode: configError ? 2 : 1, withStack: !configError });
  });
}

async function main(start: (config: ServerConfig) => Promise<RunningService>): Promise<void> {
  const config = loadConfig(process.argv.slice(2), process.env);
  const running = await start(config);
  // --metrics-listen: /metrics, /healthz, /readyz on plain HTTP (server/health/http_server.ts).
  let httpPort: HealthServerHandle | null = null;
  if (config.metricsListen !== null) {
    const { applies, status } = running.readiness;
    try {
      httpPort = await startHealthServer(
        config.metricsListen,
        { registry: running.metrics ?? null, readiness: () => readinessOf(status(), { applies }) },
        (fields) => log({ component: "metrics", ...fields }),
      );
    } catch (error) {
      await running.stop();
      throw new Error(`--metrics-listen ${config.metricsListen}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  log({
    event: "started",
    id: config.id,
    clusterId: config.clusterId,
    dataDir: config.dataDir,
    pid: process.pid,
    ...running.startedFields,
    ...(httpPort === null ? {} : { metricsAddress: httpPort.address }),
  });
  const stopWatch = watchReady({
    ...running.readiness,
    onReady: (s) => log({ event: "ready", id: config.id, leader: s.leader, term: s.term, appliedIndex: s.appliedIndex }),
  });
  let stopping = false;
  const onSignal = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    stopWatch();
    log({ event: "stopping", why: signal });
    void running.stop().then(async () => {
      await httpPort?.close();
      log({ event: "stopped", why: signal });
      process.exit(0);
    });
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
}
