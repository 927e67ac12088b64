// A RaftStorage over a SimDisk, so the production Ready loop (server/node/ready_loop.ts) runs in
// the simulator: under RaftNode in the lock simulation, under SimNode in the Raft simulator and the
// witness simulation, and under the scenario scripts' runner. The contract
// says save() is durable when it returns, so every save is its writes plus a sync, except a
// commit-index-only one (StorageWrite.sync false), which waits for the next synced save as
// SqliteStorage's does (it holds that hard state for its next synced transaction); a simulated
// crash (SimDisk.crash) drops whatever was not synced, which for a correct node is at most that
// commit index.
// A save is several disk operations, in the order of the production transaction (snapshot,
// entries, hard state, then the sync), and each is a crash point of the disk (sim_disk.ts): an
// armed crash stops the process between any two of them, exactly like one between the Ready's
// persist and its send.
//
// The ack record (sim_ack_record.ts) is kept around each save as production's is.
//
// It also gives the simulator's Raft checkers a view of the node's log (term at an index, first
// index) taken from what the node made durable: after a process() pass the RaftNode has persisted
// every Ready, so this equals the core's own log without reaching into the node's private core.

import type { Entry, Index, NodeId, PersistedState, Snapshot, SnapshotMetadata, Term } from "../../server/core/types.ts";
import type { RaftStorage, StorageIdentity, StorageWrite } from "../../server/storage/raft_storage.ts";
import type { SimDisk } from "./sim_disk.ts";

export interface SimStorageObserver {
  /** Entries being written (not yet synced), with the commit index persisted before this write. */
  onDiskEntries(node: NodeId, entries: readonly Entry[], persistedCommit: Index): void;
  /** A snapshot or witness marker being recorded, not yet synced (the log below it is dropped). */
  onCompact?(node: NodeId, snapshot: Snapshot): void;
}

export class SimStorage implements RaftStorage {
  private identityValue: StorageIdentity | null = null;
  private closed = false;
  private inFlight = false;

  /**
   * `backgroundSync` (RaftNodeOptions.backgroundWrites in the lock simulation): saveInBackground
   * writes at once and hands this the fsync, which the simulator runs later as an event of its
   * own (a crash before it loses the write, as a power loss before fdatasync would).
   */
  constructor(
    private readonly node: NodeId,
    private readonly disk: SimDisk,
    private readonly observer: SimStorageObserver | null = null,
    private readonly backgroundSync: ((sync: () => void) => void) | null = null,
  ) {}

  load(): PersistedState {
    this.assertOpen();
    return this.disk.load();
  }

  save(write: StorageWrite): void {
    this.write(write);
    const synced = write.sync !== false;
    if (synced) this.disk.sync();
    this.disk.ackTracker()?.afterSave(write, synced);
  }

  /**
   * SqliteStorage.saveInBackground's twin: the writes now, the sync (a crash point) when the
   * simulator runs it; `done` after it. Absent a backgroundSync, as a store without one would
   * be: the RaftNode then never calls it (backgroundWrites off).
   */
  saveInBackground(write: StorageWrite, done: (error: Error | null) => void): void {
    const schedule = this.backgroundSync;
    if (schedule === null) throw new Error(`sim storage of ${this.node}: saveInBackground without a backgroundSync`);
    if (write.sync === false) throw new Error(`sim storage of ${this.node}: saveInBackground of an unsynced write`);
    this.write(write);
    this.inFlight = true;
    schedule(() => {
      this.inFlight = false;
      if (this.closed) return; // the process is gone: its unsynced writes went with the crash
      this.disk.sync(); // a crash point: SimulatedCrash propagates to the simulator
      this.disk.ackTracker()?.afterSave(write, true);
      done(null);
    });
  }

  private write(write: StorageWrite): void {
    this.assertOpen();
    // The ack record around the transaction, as SqliteStorage.save drives production's AckTracker
    // (lowered before a save that shortens the log; term/vote at once and the watermark after).
    // Its writes are not crash points: production's follow the commit before save() returns, so
    // a crash between the two leaves the record behind, never ahead, and no message has left yet.
    const ack = this.disk.ackTracker();
    ack?.beforeSave(write);
    if (write.snapshot) this.disk.writeSnapshot(write.snapshot);
    if (write.entries.length > 0) {
      this.disk.writeEntries(write.entries); // not yet durable: load() still has the old commit
      this.observer?.onDiskEntries(this.node, write.entries, this.disk.load().hardState.commit);
    }
    if (write.hardState) this.disk.writeHardState(write.hardState);
    // A commit-index-only write (sync false) is not synced, as SqliteStorage holds it for its next
    // synced transaction: the next synced write makes it durable, and a crash before that loses it
    // (Raft need not keep the commit index). save() syncs the rest; saveInBackground later.
  }

  saveSnapshotAndCompact(snapshot: Snapshot, logStart: SnapshotMetadata | null = null): void {
    this.assertOpen();
    this.disk.compact(snapshot, logStart);
    this.observer?.onCompact?.(this.node, snapshot);
    this.disk.sync();
  }

  identity(): StorageIdentity | null {
    return this.identityValue;
  }

  setIdentity(identity: StorageIdentity): void {
    if (this.identityValue !== null) throw new Error("identity already set; written only once");
    this.identityValue = identity;
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`sim storage of ${this.node} used after close()`);
    if (this.inFlight) throw new Error(`sim storage of ${this.node} used while a background write's sync is pending`);
  }
}

/** The durable log of a disk, as the Raft checkers read it (RaftCore.termAt semantics). */
export function durableTermAt(disk: SimDisk, index: Index): Term | undefined {
  return termIn(disk.load(), index);
}

/** The term at `index` in a persisted state (RaftCore.termAt semantics). */
export function termIn(state: PersistedState, index: Index): Term | undefined {
  const snap = state.snapshot?.metadata;
  if (snap && index === snap.index) return snap.term;
  if (index === 0 && (snap?.index ?? 0) === 0) return 0;
  const first = (state.logStart?.index ?? snap?.index ?? 0) + 1; // below the snapshot while kept for a witness
  return index >= first ? state.entries[index - first]?.term : undefined;
}

/** The durable log's term at `index` for commit-not-durable (checkers.ts): "snapshot" if its snapshot covers it. */
export function durableTermOrSnapshot(disk: SimDisk, index: Index): Term | "snapshot" | undefined {
  return termOrSnapshotIn(disk.load(), index);
}

export function termOrSnapshotIn(state: PersistedState, index: Index): Term | "snapshot" | undefined {
  const snap = state.snapshot?.metadata;
  if (snap && index <= snap.index) return "snapshot";
  return termIn(state, index);
}

export function durableFirstIndex(disk: SimDisk): Index {
  const state = disk.load();
  return (state.logStart?.index ?? state.snapshot?.metadata.index ?? 0) + 1;
}
