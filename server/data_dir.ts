// The data directory's identity check: a member starts only on data that belongs to it. And its
// incarnation (issue 13 point 3): 128 random bits made when the directory is first initialised,
// kept in <dataDir>/incarnation (server/storage/incarnation.ts), sent to every peer; with the
// peers' incarnations this member accepted (<dataDir>/peer_incarnations), so the other members
// refuse this id if its disk is wiped and it comes back with --bootstrap
// (server/transport/peer_incarnations.ts).

import { randomUUID } from "node:crypto";
import { bootstrapState } from "./core/bootstrap.ts";
import { ConfigError, type ServerConfig } from "./config.ts";
import { log } from "./logger.ts";
import { StorageCorruptError } from "./storage/raft_storage.ts";
import { SqliteStorage } from "./storage/sqlite_storage.ts";
import {
  INCARNATION_FILE_NAME,
  PEER_INCARNATIONS_FILE_NAME,
  readIncarnation,
  readPeerIncarnations,
  writeIncarnation,
  writePeerIncarnations,
} from "./storage/incarnation.ts";
import { PeerIncarnations } from "./transport/peer_incarnations.ts";

/** Which program opens the directory: tenured runs voters, tenure-witness runs witnesses. */
export type MemberKind = "voter" | "witness";

export interface DataDir {
  readonly storage: SqliteStorage;
  /** This member's incarnation and the peers' it accepted, for the peer transport. */
  readonly incarnations: PeerIncarnations;
}

/** openStorage, then this member's incarnation (made if absent) and the peers' table. */
export function openDataDir(config: ServerConfig, kind: MemberKind = "voter"): DataDir {
  const bootstrapping = { value: false };
  const storage = openStorage(config, kind, bootstrapping);
  try {
    const own = memberIncarnation(config.dataDir, storage, bootstrapping.value);
    const peers = readPeerIncarnations(config.dataDir);
    if (peers.kind === "corrupt") {
      throw new StorageCorruptError(
        `data directory ${config.dataDir}: ${PEER_INCARNATIONS_FILE_NAME} is damaged (${peers.detail}); refusing to start. ` +
          `Deleting it makes this member trust its peers' incarnations on first use again (a wiped peer it talks to first would be accepted)`,
      );
    }
    const store = {
      initial: peers.kind === "ok" ? peers.value : new Map<string, string>(),
      save: (next: ReadonlyMap<string, string>) => writePeerIncarnations(config.dataDir, next),
    };
    const incarnations = new PeerIncarnations(config.id, own, store, (fields) => log({ component: "transport", ...fields }));
    log({ event: "incarnation", id: config.id, incarnation: own, peersKnown: store.initial.size });
    return { storage, incarnations };
  } catch (error) {
    storage.close();
    throw error;
  }
}

/**
 * The incarnation in <dataDir>/incarnation. A bootstrap (raft.db had no identity) always makes a
 * new one, even if a file was left there: the Raft state it belonged to is gone. A directory with
 * Raft state and no file (an older build, or `tenured restore`) gets one, with a warning.
 */
function memberIncarnation(dataDir: string, storage: SqliteStorage, bootstrapped: boolean): string {
  const read = readIncarnation(dataDir);
  if (read.kind === "ok" && !bootstrapped) return read.value;
  if (read.kind === "corrupt" && !bootstrapped) {
    throw new StorageCorruptError(
      `data directory ${dataDir}: ${INCARNATION_FILE_NAME} is damaged (${read.detail}); refusing to start. ` +
        `Deleting it gives this member a new incarnation, which every peer that knew the old one refuses: ` +
        `it must then rejoin as a new member through a membership change`,
    );
  }
  const incarnation = randomUUID().replaceAll("-", "");
  writeIncarnation(dataDir, incarnation);
  if (!bootstrapped) {
    log({
      event: "incarnation_created",
      level: "warn",
      dataDir,
      incarnation,
      raftState: storage.holdsRaftState(),
      warning: `${INCARNATION_FILE_NAME} was missing beside a raft.db with a member identity (written by an older build, or restored): a new incarnation was made; peers that already remembered another one for this id refuse this member`,
    });
  } else if (read.kind !== "absent") {
    log({
      event: "incarnation_renewed",
      dataDir,
      incarnation,
      why: "bootstrapped: raft.db held no member identity, so this is a new member",
    });
  }
  return incarnation;
}

/**
 * Opens the data directory and makes sure it belongs to this member of this cluster, and that
 * the program matches the member's kind in the configuration. `bootstrapped.value` is set when
 * this open bootstrapped the directory.
 */
export function openStorage(
  config: ServerConfig,
  kind: MemberKind = "voter",
  bootstrapped: { value: boolean } = { value: false },
): SqliteStorage {
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
    bootstrapped.value = true;
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
