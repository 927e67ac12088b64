// A simulated disk: writes land in a volatile buffer and become durable only on sync(); a crash
// drops everything not yet synced (TigerBeetle's storage simulator, reduced to what Raft needs).

import type { PersistedState, Snapshot } from "../../server/core/types.ts";
import type { StorageWrite } from "../../server/storage/raft_storage.ts";

type DiskOp = { readonly kind: "write"; readonly write: StorageWrite } | { readonly kind: "compact"; readonly snapshot: Snapshot };

export class SimDisk {
  private durable: PersistedState;
  private unsynced: DiskOp[] = [];
  syncCount = 0;

  constructor(initial: PersistedState) {
    this.durable = initial;
  }

  write(write: StorageWrite): void {
    this.unsynced.push({ kind: "write", write });
  }

  compact(snapshot: Snapshot): void {
    this.unsynced.push({ kind: "compact", snapshot });
  }

  sync(): void {
    for (const op of this.unsynced) {
      this.durable = op.kind === "write" ? applyWrite(this.durable, op.write) : applyCompact(this.durable, op.snapshot);
    }
    if (this.unsynced.length > 0) this.syncCount++;
    this.unsynced = [];
  }

  hasUnsynced(): boolean {
    return this.unsynced.length > 0;
  }

  /** Power loss: the volatile buffer is gone. */
  crash(): void {
    this.unsynced = [];
  }

  load(): PersistedState {
    return this.durable;
  }
}

/** The storage contract of server/storage/raft_storage.ts, on plain data. */
export function applyWrite(state: PersistedState, w: StorageWrite): PersistedState {
  let snapshot = state.snapshot;
  let entries = state.entries;
  if (w.snapshot) {
    snapshot = w.snapshot;
    entries = [];
  }
  const first = w.entries[0];
  if (first) {
    const base = snapshot?.metadata.index ?? 0;
    const keep = Math.max(0, first.index - base - 1);
    if (keep > entries.length) throw new Error(`disk append at ${first.index} leaves a gap after ${base + entries.length}`);
    entries = [...entries.slice(0, keep), ...w.entries];
  }
  return { hardState: w.hardState ?? state.hardState, snapshot, entries };
}

function applyCompact(state: PersistedState, snapshot: Snapshot): PersistedState {
  const base = state.snapshot?.metadata.index ?? 0;
  const idx = snapshot.metadata.index;
  if (idx <= base) return state;
  return { hardState: state.hardState, snapshot, entries: state.entries.filter((e) => e.index > idx) };
}
