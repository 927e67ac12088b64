// The data directory's identity check: a member starts only on data that belongs to it.

import { bootstrapState } from "./core/bootstrap.ts";
import { ConfigError, type ServerConfig } from "./config.ts";
import { log } from "./logger.ts";
import { StorageCorruptError } from "./storage/raft_storage.ts";
import { SqliteStorage } from "./storage/sqlite_storage.ts";

/** Which program opens the directory: tenured runs voters, tenure-witness runs witnesses. */
export type MemberKind = "voter" | "witness";

/**
 * Opens the data directory and makes sure it belongs to this member of this cluster, and that
 * the program matches the member's kind in the configuration.
 */
export function openStorage(config: ServerConfig, kind: MemberKind = "voter"): SqliteStorage {
  const isWitness = config.witnesses.includes(config.id);
  // tenured on a witness id would apply and serve what a witness must not (W2); tenure-witness
  // on a voter id would count as a full copy that no state machine holds.
  if (isWitness && kind === "voter") {
    throw new ConfigError(`member "${config.id}" is listed in witnesses: run it with tenure-witness (npm run witness), not tenured`);
  }
  if (!isWitness && kind === "witness") {
    throw new ConfigError(
      `member "${config.id}" is not listed in witnesses (--witnesses ${config.id}); tenure-witness runs witnesses only`,
    );
  }
  // The store refuses, at open, a WAL, raft.db or ack record that shows damage or lost data.
  const storage = SqliteStorage.open({ dataDir: config.dataDir, warn: (fields) => log({ component: "storage", ...fields }) });
  const identity = storage.identity();
  if (identity === null) {
    if (storage.holdsRaftState()) {
      storage.close();
      throw new StorageCorruptError(
        `data directory ${config.dataDir}: raft.db holds Raft state but no member identity (its identity row is lost); refusing to start`,
      );
    }
    if (!config.bootstrap) {
      storage.close();
      // Raft thesis §3.8: a member that lost its disk forgot its votes and log; under its old
      // id it could help elect two leaders in one term or lose committed entries.
      throw new ConfigError(
        `data directory ${config.dataDir} holds no member identity (never bootstrapped, or wiped) and --bootstrap is not set. ` +
          `If member "${config.id}" lost its data, it must not rejoin under its old id: remove it and add a new member with a new id.`,
      );
    }
    storage.setIdentity({ clusterId: config.clusterId, nodeId: config.id });
    // Every member bootstraps from the same configuration (voters and witnesses), so all of
    // them agree on who is a witness from index 0 on; later changes go through the log.
    const voters = config.members.map((m) => m.id);
    storage.save({ hardState: null, snapshot: bootstrapState(voters, config.witnesses).snapshot, entries: [] });
    log({ event: "bootstrapped", clusterId: config.clusterId, voters, witnesses: config.witnesses });
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
