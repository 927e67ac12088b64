// The narrow storage contract between the node loop and the disk (hashicorp/raft's LogStore +
// StableStore + SnapshotStore folded into one synchronous interface, because better-sqlite3 is
// synchronous and the Ready cycle must persist everything in one transaction).
//
// Failure model: every method either completes durably or throws. A throw is fatal to the node:
// the caller must stop the process rather than continue on a possibly diverged state.

import type { Entry, HardState, NodeId, PersistedState, Snapshot, SnapshotMetadata } from "../core/types.ts";

/** Everything one Ready asks to be made durable, written in ONE transaction. */
export interface StorageWrite {
  /** New hard state, or null when unchanged. */
  readonly hardState: HardState | null;
  /**
   * A snapshot received from the leader (InstallSnapshot), or null. It replaces the whole log:
   * every stored entry is dropped, then `entries` (if any) are appended after it.
   */
  readonly snapshot: Snapshot | null;
  /**
   * Entries to append, contiguous. If the first index is at or below the last stored index, the
   * stored suffix from that index on is deleted first (conflict truncation decided by the core).
   */
  readonly entries: readonly Entry[];
  /**
   * false: the write may be made durable later, by the next synced write (Ready.mustSync false:
   * only the commit index changed, which Raft need not keep durable; a crash may lose it and the
   * member learns it again from the leader). Only a hard state whose term and vote are the stored
   * ones may be written so; entries, a snapshot, a term or a vote always sync. Absent: true.
   */
  readonly sync?: boolean;
}

/** Who this data directory belongs to; written once at bootstrap, checked at every start. */
export interface StorageIdentity {
  readonly clusterId: string;
  readonly nodeId: NodeId;
}

export interface RaftStorage {
  /**
   * Reads everything back, verifying checksums; throws StorageCorruptError on any mismatch, and
   * (SqliteStorage) when it holds less than its ack record says was durable.
   */
  load(): PersistedState;
  /** Durable (fsynced) when it returns, unless `write.sync` is false (see StorageWrite.sync). */
  save(write: StorageWrite): void;
  /**
   * Optional: save() whose wait for the disk runs off the event loop. The write is made now;
   * `done(null)` runs later, once it is as durable as a save() that returned, or `done(error)`,
   * fatal as a save() that threw. Until `done` nothing else may be called but close().
   * SqliteStorage has it (its fsync on the thread pool); the in-memory twin does not.
   */
  saveInBackground?(write: StorageWrite, done: (error: Error | null) => void): void;
  /**
   * Records a snapshot the node made itself and drops the stored entries below the retain index
   * (retainFromIndex = logStart.index + 1). Without `logStart` (plain Raft, no witness) that is
   * the snapshot index + 1: every entry at or below the snapshot goes. With a witness in the
   * configuration the core keeps its log from the W3 floor (churn issue 4) and passes its log
   * start (index below the snapshot's, its term, the membership there; the core's
   * storageLogStart()): the entries after it are kept, as etcd's storage keeps entries below its
   * snapshot, and load() returns them with PersistedState.logStart. Entries above the snapshot
   * index are always kept. A Ready's snapshot, or a compaction without `logStart`, clears it.
   * Durable when it returns.
   */
  saveSnapshotAndCompact(snapshot: Snapshot, logStart?: SnapshotMetadata | null): void;
  /** null for a data directory that has never been bootstrapped. */
  identity(): StorageIdentity | null;
  /** Written once; throws if an identity is already stored. */
  setIdentity(identity: StorageIdentity): void;
  close(): void;
}

/** The store on disk does not hold what it claims (bad checksum, gap, torn row). Fatal. */
export class StorageCorruptError extends Error {
  override readonly name = "StorageCorruptError";
}

/** Another process holds the data directory. */
export class StorageLockedError extends Error {
  override readonly name = "StorageLockedError";
}
