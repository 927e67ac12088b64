// The data directory's identity check: a member starts only on data that belongs to it.

import { bootstrapState } from "./core/bootstrap.ts";
import { ConfigError, type ServerConfig } from "./config.ts";
import { log } from "./logger.ts";
import { SqliteStorage } from "./storage/sqlite_storage.ts";

/** Opens the data directory and makes sure it belongs to this member of this cluster. */
export function openStorage(config: ServerConfig): SqliteStorage {
  const storage = SqliteStorage.open({ dataDir: config.dataDir });
  const identity = storage.identity();
  if (identity === null) {
    if (!config.bootstrap) {
      storage.close();
      // Raft thesis §3.8: a member that lost its disk forgot its votes and log; under its old
      // id it could help elect two leaders in one term or lose committed entries.
      throw new ConfigError(
        `data directory ${config.dataDir} is empty and --bootstrap is not set. If member "${config.id}" ` +
          `lost its data, it must not rejoin under its old id: remove it and add a new member with a new id.`,
      );
    }
    storage.setIdentity({ clusterId: config.clusterId, nodeId: config.id });
    storage.save({ hardState: null, snapshot: bootstrapState(config.members.map((m) => m.id)).snapshot, entries: [] });
    log({ event: "bootstrapped", clusterId: config.clusterId, voters: config.members.map((m) => m.id) });
    return storage;
  }
  if (identity.nodeId !== config.id || identity.clusterId !== config.clusterId) {
    storage.close();
    throw new ConfigError(
      `data directory ${config.dataDir} belongs to member "${identity.nodeId}" of cluster "${identity.clusterId}", ` +
        `not "${config.id}" of "${config.clusterId}"`,
    );
  }
  return storage;
}

