// `tenured restore`: a verified backup file becomes the data directory of one member of a NEW
// cluster, bootstrapped with the backup's state and the token epoch raised (README.md here).
//
// Every member of the new cluster is restored from the SAME file, each with its own --id and
// the same --cluster-id and --members. That is etcd's `etcdutl snapshot restore` model, and the
// only correct one here: a member that started empty would bootstrap an empty state at index 0
// (server/data_dir.ts), and two empty members form a majority of three that could elect one of
// them and serve the empty state. So every restore must write byte-identical Raft state: the
// same snapshot (index, term, membership, image), which holds because restoreFromBackup and
// snapshot() are pure and the epoch below depends on the file alone.
//
// The epoch (server/state/id_allocator.ts: id = epoch * 2^32 + counter). restoreFromBackup
// raises it to max(E + 1, epochMin), E the epoch of the backup's next id. E + 1 is enough unless
// the old cluster crossed into E + 1 after the backup, which takes only 2^32 - counter more
// grants: a counter near the top of its epoch crosses after a few. So epochMin is two epochs
// above the one holding the backup's highest id: the old cluster reaches it only after issuing
// more than 2^32 (4.29e9) ids after the backup, whatever the counter was. id_allocator.ts also
// suggests the restore tool's wall-clock hours as epochMin; that is NOT used, because each
// member's restore is a separate run and different clocks (or an hour boundary between two
// runs) would give members different images, and tokens would then fall when leadership moves.

import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { ConfState, PersistedState } from "../core/types.ts";
import { epochOf, EPOCH_MAX } from "../state/id_allocator.ts";
import { DEFAULT_STATE_CONFIG } from "../state/limits.ts";
import { LockStateMachine } from "../state/machine.ts";
import { writeIncarnation } from "../storage/incarnation.ts";
import { SqliteStorage } from "../storage/sqlite_storage.ts";
import { BackupFormatError, decodeBackupFile, type BackupHeader } from "./backup_format.ts";

/** The Raft term of the restored snapshot: a new cluster counts its terms from here. */
const RESTORED_SNAPSHOT_TERM = 1;

export interface RestoreMember {
  readonly id: string;
}

export interface RestoreOptions {
  readonly fromFile: string;
  readonly dataDir: string;
  readonly id: string;
  readonly clusterId: string;
  /** Every voter of the new cluster, this member included (the same list on every member). */
  readonly members: readonly RestoreMember[];
  readonly log?: (fields: Record<string, unknown>) => void;
}

export interface RestoreSummary {
  readonly fromClusterId: string;
  readonly clusterId: string;
  readonly id: string;
  readonly snapshotIndex: number;
  readonly voters: readonly string[];
  /** The backup's highest token and the epoch the new cluster issues from. */
  readonly backupLastToken: number;
  readonly epoch: number;
  /** Every token of the new cluster is at least this. */
  readonly firstTokenMin: number;
}

/** Restores one member's data directory; an expected refusal is a BackupFormatError. */
export function restoreMember(options: RestoreOptions): RestoreSummary {
  const voters = checkMembers(options);
  refuseNonEmpty(options.dataDir);
  const { header, image } = decodeBackupFile(readFile(options.fromFile), options.fromFile);
  if (header.clusterId === options.clusterId) {
    throw new BackupFormatError(
      `--cluster-id ${options.clusterId} is the backed-up cluster's id: a restore starts a NEW cluster, give it a new id ` +
        "(members of the old cluster must never take the new ones for peers)",
    );
  }
  const seeded = seedMachine(header, image, options.fromFile);
  const confState: ConfState = {
    voters,
    votersOutgoing: [],
    learners: [],
    learnersNext: [],
    witnesses: [],
    autoLeave: false,
  };
  // The machine's applied index is the snapshot's: the first entry the new cluster commits
  // follows it (the machine refuses an index at or below what it applied).
  const index = seeded.machine.appliedIndex();
  const state: PersistedState = {
    hardState: { term: RESTORED_SNAPSHOT_TERM, vote: "", commit: index },
    snapshot: { metadata: { index, term: RESTORED_SNAPSHOT_TERM, confState }, data: seeded.machine.snapshot() },
    entries: [],
  };
  const storage = SqliteStorage.open({ dataDir: options.dataDir, warn: (fields) => options.log?.({ component: "storage", ...fields }) });
  try {
    storage.setIdentity({ clusterId: options.clusterId, nodeId: options.id });
    storage.save({ hardState: state.hardState, snapshot: state.snapshot, entries: [] });
  } finally {
    storage.close();
  }
  // A restored member is a new member of a new cluster: its incarnation is made with its data
  // directory, like a bootstrapped one's (else the first start makes one and warns).
  writeIncarnation(options.dataDir, randomUUID().replaceAll("-", ""));
  const epoch = seeded.machine.tokens().epoch;
  return {
    fromClusterId: header.clusterId,
    clusterId: options.clusterId,
    id: options.id,
    snapshotIndex: index,
    voters,
    backupLastToken: header.lastToken,
    epoch,
    firstTokenMin: seeded.machine.tokens().lastToken + 1,
  };
}

/** Two epochs above the backup's highest id (the comment at the top says why). */
export function restoreEpochMin(backup: { readonly lastToken: number; readonly lastLeaseId: number }): number {
  return epochOf(Math.max(backup.lastToken, backup.lastLeaseId)) + 2;
}

/** The image, checked against its header, restored with the epoch raised. */
function seedMachine(header: BackupHeader, image: Uint8Array, source: string): { machine: LockStateMachine } {
  let plain: LockStateMachine;
  try {
    plain = LockStateMachine.restore(image, DEFAULT_STATE_CONFIG);
  } catch (error) {
    // The checksum matched, so this file was written from a state this tenured cannot read.
    throw new BackupFormatError(`${source}: the state image does not decode: ${error instanceof Error ? error.message : String(error)}`);
  }
  const tokens = plain.tokens();
  const mismatch =
    plain.appliedIndex() !== header.appliedIndex ||
    tokens.lastToken !== header.lastToken ||
    tokens.lastLeaseId !== header.lastLeaseId ||
    tokens.epoch !== header.tokenEpoch;
  if (mismatch) {
    throw new BackupFormatError(
      `${source}: the header (applied ${header.appliedIndex}, last token ${header.lastToken}, epoch ${header.tokenEpoch}) ` +
        `does not describe its image (applied ${plain.appliedIndex()}, last token ${tokens.lastToken}, epoch ${tokens.epoch})`,
    );
  }
  if (plain.appliedIndex() < 1) throw new BackupFormatError(`${source}: the image has applied nothing (index 0)`);
  const epochMin = restoreEpochMin(tokens);
  if (epochMin > EPOCH_MAX) {
    throw new BackupFormatError(
      `${source}: the token epoch space is exhausted (epoch ${epochMin} > ${EPOCH_MAX}); no restore can raise it`,
    );
  }
  return { machine: LockStateMachine.restoreFromBackup(image, { epochMin, config: DEFAULT_STATE_CONFIG }) };
}

function checkMembers(options: RestoreOptions): string[] {
  const ids = options.members.map((m) => m.id);
  if (!ids.includes(options.id)) throw new BackupFormatError(`--members must include this member's --id ${options.id}`);
  if (new Set(ids).size !== ids.length) throw new BackupFormatError("--members has a duplicate id");
  return [...ids].sort();
}

function refuseNonEmpty(dataDir: string): void {
  if (!existsSync(dataDir)) return;
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch (error) {
    throw new BackupFormatError(
      `--data-dir ${dataDir} is not a readable directory: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (names.length > 0) {
    throw new BackupFormatError(
      `--data-dir ${dataDir} is not empty (${names.slice(0, 3).join(", ")}${names.length > 3 ? ", ..." : ""}): ` +
        "a restore initialises a fresh directory only",
    );
  }
}

function readFile(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new BackupFormatError(`cannot read --from ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
