// The process lifecycle shared by tenured and tenure-witness: load the config, treat an uncaught
// exception as fatal (storage failure and broken invariants must stop the process rather than
// let it serve diverged state), log "started", and shut down gracefully on SIGINT/SIGTERM.

import { ConfigError, loadConfig, type ServerConfig } from "./config.ts";
import { log } from "./logger.ts";

export interface RunningService {
  /** Fields of the {"event":"started"} line (addresses, data dir, ...). */
  readonly startedFields: Record<string, unknown>;
  /** Stops serving and releases ports and the data directory. */
  stop(): Promise<void>;
}

export function runProcess(start: (config: ServerConfig) => Promise<RunningService>): void {
  main(start).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${JSON.stringify({ event: "fatal", error: message })}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}

async function main(start: (config: ServerConfig) => Promise<RunningService>): Promise<void> {
  const config = loadConfig(process.argv.slice(2), process.env);
  process.on("uncaughtException", (err) => {
    log({ event: "fatal", error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    process.exit(1);
  });
  const running = await start(config);
  log({ event: "started", id: config.id, clusterId: config.clusterId, dataDir: config.dataDir, ...running.startedFields });
  let stopping = false;
  const onSignal = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log({ event: "stopping", why: signal });
    void running.stop().then(() => {
      log({ event: "stopped", why: signal });
      process.exit(0);
    });
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
}
