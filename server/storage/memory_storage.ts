// The in-memory twin of SqliteStorage, for the simulator and unit tests. Same contract, same
// checks (storage_checks.ts), same checksums: a MemoryDisk holds rows with their checksums, so a
// simulated fault (MemoryDisk.corruptForTest) is caught by load() exactly as on disk.
//
// Every save() is atomic: all checks run before the first mutation, so a throwing save leaves the
// disk unchanged, like a rolled-back SQLite transaction.

import { assert } from "../core/assert.ts";
import { EMPTY_HARD_STATE } from "../core/types.ts";
import type { Entry, HardState, Index, PersistedState, Snapshot, SnapshotMetadata, Term } from "../core/types.ts";
import { encodeConfState, entryChecksum, hardStateChecksum, identityChecksum, snapshotChecksum } from "./checksum.ts";
import type { RaftStorage, StorageIdentity, StorageWrite } from "./raft_storage.ts";
import {
  assertCompactValid,
  assertIdentityShape,
  assertWriteValid,
  copyEntry,
  copyHardState,
  copySnapshot,
  corruptError,
  decodeConfState,
  verifyLoadedState,
} from "./storage_checks.ts";
import type { LogView } from "./storage_checks.ts";

interface EntryRow {
  readonly entry: Entry;
  readonly checksum: number;
}

interface SnapshotRow {
  readonly index: Index;
  readonly term: Term;
  readonly confStateJson: string;
  readonly data: Uint8Array;
  readonly checksum: number;
}

/** Faults a test can inject behind the store's back (the disk analogue: a bit flip, a lost row). */
export type MemoryCorruption =
  | { readonly kind: "flipEntryByte"; readonly index: Index }
  | { readonly kind: "deleteEntry"; readonly index: Index }
  | { readonly kind: "flipHardStateTerm" };

/** What survives a (simulated) process restart. Keep it to reopen a MemoryStorage over it. */
export class MemoryDisk {
  hardState: { readonly value: HardState; readonly checksum: number } | null = null;
  snapshot: SnapshotRow | null = null;
  /** The log start below the snapshot while entries are kept for a witness (a data-less row). */
  logStart: SnapshotRow | null = null;
  /** Contiguous, ascending by index (unless a test corrupted it). */
  entries: EntryRow[] = [];
  identity: { readonly value: StorageIdentity; readonly checksum: number } | null = null;

  corruptForTest(corruption: MemoryCorruption): void {
    switch (corruption.kind) {
      case "flipEntryByte": {
        const position = this.entries.findIndex((row) => row.entry.index === corruption.index);
        const row = this.entries[position];
        assert(row !== undefined, `no entry ${corruption.index} to corrupt`);
        // An empty payload gains a byte instead: still a change the checksum must catch.
        const old = row.entry.data;
        const data = old.length === 0 ? new Uint8Array(1) : new Uint8Array(old);
        data[0] = (data[0] ?? 0) ^ 0x01;
        this.entries[position] = { entry: { ...row.entry, data }, checksum: row.checksum };
        return;
      }
      case "deleteEntry": {
        const before = this.entries.length;
        this.entries = this.entries.filter((row) => row.entry.index !== corruption.index);
        assert(this.entries.length === before - 1, `no entry ${corruption.index} to delete`);
        return;
      }
      case "flipHardStateTerm": {
        assert(this.hardState !== null, "no hard state to corrupt");
        const value = { ...this.hardState.value, term: this.hardState.value.term ^ 1 };
        this.hardState = { value, checksum: this.hardState.checksum };
        return;
      }
    }
  }
}

const WHERE = "memory store";

export class MemoryStorage implements RaftStorage {
  private closed = false;

  private constructor(private readonly disk: MemoryDisk) {}

  /** Opens a store over `disk`; pass the same disk again to model a restart. */
  static open(disk: MemoryDisk = new MemoryDisk()): MemoryStorage {
    return new MemoryStorage(disk);
  }

  load(): PersistedState {
    this.assertOpen();
    const hardState = this.loadHardState();
    const snapshot = this.loadSnapshot();
    const entries = this.disk.entries.map((row) => {
      if (entryChecksum(row.entry) !== row.checksum) {
        throw corruptError(WHERE, "entries", `index ${row.entry.index}: checksum mismatch`);
      }
      return copyEntry(row.entry);
    });
    const logStart = this.loadLogStart();
    const state: PersistedState = logStart === null ? { hardState, snapshot, entries } : { hardState, snapshot, entries, logStart };
    verifyLoadedState(state, WHERE);
    return state;
  }

  save(write: StorageWrite): void {
    this.assertOpen();
    assertWriteValid(this.view(), write);
    if (write.snapshot !== null) {
      this.disk.snapshot = snapshotRow(write.snapshot);
      this.disk.logStart = null;
      this.disk.entries = [];
    }
    const first = write.entries[0];
    if (first !== undefined) {
      const storedFirst = this.disk.entries[0]?.entry.index ?? first.index;
      // Conflict truncation: drop the stored suffix from the first incoming index on.
      this.disk.entries.length = Math.min(this.disk.entries.length, first.index - storedFirst);
      for (const entry of write.entries) {
        const copy = copyEntry(entry);
        this.disk.entries.push({ entry: copy, checksum: entryChecksum(copy) });
      }
    }
    if (write.hardState !== null) {
      const value = copyHardState(write.hardState);
      this.disk.hardState = { value, checksum: hardStateChecksum(value) };
    }
  }

  saveSnapshotAndCompact(snapshot: Snapshot, logStart: SnapshotMetadata | null = null): void {
    this.assertOpen();
    assertCompactValid(this.view(), snapshot, logStart);
    const retainFrom = (logStart?.index ?? snapshot.metadata.index) + 1;
    this.disk.snapshot = snapshotRow(snapshot);
    this.disk.logStart = logStart === null ? null : snapshotRow({ metadata: logStart, data: new Uint8Array(0) });
    this.disk.entries = this.disk.entries.filter((row) => row.entry.index >= retainFrom);
  }

  identity(): StorageIdentity | null {
    this.assertOpen();
    const stored = this.disk.identity;
    if (stored === null) return null;
    if (identityChecksum(stored.value) !== stored.checksum) {
      throw corruptError(WHERE, "identity", "checksum mismatch");
    }
    return { clusterId: stored.value.clusterId, nodeId: stored.value.nodeId };
  }

  setIdentity(identity: StorageIdentity): void {
    this.assertOpen();
    assertIdentityShape(identity);
    assert(this.disk.identity === null, `${WHERE}: identity already set; written only once`);
    const value = { clusterId: identity.clusterId, nodeId: identity.nodeId };
    this.disk.identity = { value, checksum: identityChecksum(value) };
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    assert(!this.closed, `${WHERE}: used after close()`);
  }

  private loadHardState(): HardState {
    const stored = this.disk.hardState;
    if (stored === null) return copyHardState(EMPTY_HARD_STATE);
    if (hardStateChecksum(stored.value) !== stored.checksum) {
      throw corruptError(WHERE, "hard_state", "checksum mismatch");
    }
    return copyHardState(stored.value);
  }

  private loadLogStart(): SnapshotMetadata | null {
    return this.loadSnapshotRow(this.disk.logStart, "log_start")?.metadata ?? null;
  }

  private loadSnapshot(): Snapshot | null {
    return this.loadSnapshotRow(this.disk.snapshot, "snapshot");
  }

  private loadSnapshotRow(row: SnapshotRow | null, table: string): Snapshot | null {
    if (row === null) return null;
    if (snapshotChecksum(row, row.confStateJson, row.data) !== row.checksum) {
      throw corruptError(WHERE, table, `index ${row.index}: checksum mismatch`);
    }
    const confState = decodeConfState(row.confStateJson, WHERE);
    const metadata = { index: row.index, term: row.term, confState };
    return { metadata, data: new Uint8Array(row.data) };
  }

  private view(): LogView {
    const entries = this.disk.entries;
    const snapshot = this.disk.snapshot;
    const firstIndex = entries[0]?.entry.index ?? 0;
    return {
      hardState: this.disk.hardState?.value ?? EMPTY_HARD_STATE,
      snapshot: snapshot === null ? null : { index: snapshot.index, term: snapshot.term },
      lastIndex: Math.max(entries[entries.length - 1]?.entry.index ?? 0, snapshot?.index ?? 0),
      termAt: (index) => entries[index - firstIndex]?.entry.term ?? null,
    };
  }
}

function snapshotRow(snapshot: Snapshot): SnapshotRow {
  const copy = copySnapshot(snapshot);
  const { index, term, confState } = copy.metadata;
  const confStateJson = encodeConfState(confState);
  const checksum = snapshotChecksum(copy.metadata, confStateJson, copy.data);
  return { index, term, confStateJson, data: copy.data, checksum };
}
