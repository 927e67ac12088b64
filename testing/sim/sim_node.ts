// One simulated server: the production RaftCore, a simulated disk, and a tiny state machine (a
// hash chain over applied entries) so replicas can be compared entry by entry. The Ready cycle
// follows server/core/ready.ts exactly: persist (write + sync), send, apply, advance.
// A witness (DESIGN.md §4) runs the same cycle without a state machine: it applies nothing (W2)
// and after each cycle truncates its log to the leader's floor with a metadata-only marker (W3).

import type { RaftConfig } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { Ready } from "../../server/core/ready.ts";
import type { Entry, NodeId, PersistedState, Snapshot } from "../../server/core/types.ts";
import { SimDisk } from "./sim_disk.ts";

export interface SimNodeObserver {
  onSend(m: Message): void;
  onApply(node: NodeId, entry: Entry, hashAfter: number): void;
  onRestoreSnapshot(node: NodeId, index: number, hash: number): void;
  onDiskEntries(node: NodeId, entries: readonly Entry[], nodeCommit: number): void;
  /** A witness truncated its log up to the marker (in memory; the marker is being persisted). */
  onWitnessTruncate?(node: NodeId, marker: Snapshot): void;
}

export interface SimNodeOptions {
  readonly id: NodeId;
  readonly initial: PersistedState;
  readonly makeConfig: (appliedIndex: number) => RaftConfig;
  /** Take a snapshot and compact once this many entries were applied since the last one. */
  readonly snapshotEveryEntries: number;
  /** Test-only bug: send a Ready's messages before its writes are durable. */
  readonly sendBeforePersist: boolean;
  /** A witness member: no state machine, floor truncation instead of snapshots. */
  readonly witness?: boolean;
}

const readiesPerStepMax = 64;

export class SimNode {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly witness: boolean;
  core: RaftCore | null = null;
  incarnation = 0;
  pausedUntilMs = 0;
  appliedIndex = 0;
  appliedHash = 0;
  /** Commit index as of the end of the previous Ready cycle (what entries must not overwrite). */
  private commitBefore = 0;

  constructor(private readonly options: SimNodeOptions) {
    this.id = options.id;
    this.witness = options.witness ?? false;
    this.disk = new SimDisk(options.initial);
  }

  isUp(): boolean {
    return this.core !== null;
  }

  start(): void {
    const state = this.disk.load();
    const snap = state.snapshot;
    // A witness's snapshot is a marker (or a full leader's image it never reads): no state.
    const restored = snap && !this.witness ? decodeSnapshotData(snap.data) : { index: 0, hash: 0 };
    this.appliedIndex = restored.index;
    this.appliedHash = restored.hash;
    this.core = new RaftCore(this.options.makeConfig(restored.index), state);
    this.commitBefore = this.core.status().commit;
    this.incarnation++;
  }

  crash(): void {
    this.disk.crash();
    this.core = null;
  }

  /** Runs Ready cycles until the core is quiet (bounded). */
  processReadies(observer: SimNodeObserver): void {
    const core = this.core;
    if (!core) return;
    if (this.options.sendBeforePersist) this.disk.sync(); // the bug syncs one cycle late
    for (let i = 0; i < readiesPerStepMax && core.hasReady(); i++) {
      this.handleReady(core, core.ready(), observer);
      this.commitBefore = core.status().commit;
    }
  }

  private handleReady(core: RaftCore, rd: Ready, observer: SimNodeObserver): void {
    const write = { hardState: rd.hardState, snapshot: rd.snapshot, entries: rd.entries };
    if (rd.entries.length > 0) observer.onDiskEntries(this.id, rd.entries, this.commitBefore);
    if (this.options.sendBeforePersist) {
      for (const m of rd.messages) observer.onSend(m);
      this.disk.write(write);
    } else {
      this.disk.write(write);
      this.disk.sync();
      for (const m of rd.messages) observer.onSend(m);
    }
    if (this.witness) {
      // W2: committed entries (and any snapshot a full leader sent) only move the core's
      // pointers; nothing is applied, so nothing reaches the observer's onApply.
      core.advance(rd);
      this.truncateWitness(core, observer);
      return;
    }
    if (rd.snapshot) {
      const restored = decodeSnapshotData(rd.snapshot.data);
      this.appliedIndex = restored.index;
      this.appliedHash = restored.hash;
      observer.onRestoreSnapshot(this.id, restored.index, restored.hash);
    }
    for (const e of rd.committedEntries) {
      if (e.index !== this.appliedIndex + 1) {
        throw new Error(`${this.id} applies ${e.index} after ${this.appliedIndex}`);
      }
      this.appliedHash = chainHash(this.appliedHash, e);
      this.appliedIndex = e.index;
      observer.onApply(this.id, e, this.appliedHash);
    }
    core.advance(rd);
    this.maybeSnapshot(core);
  }

  /** W3: truncate up to the floor the leader sent; the marker is persisted like any write. */
  private truncateWitness(core: RaftCore, observer: SimNodeObserver): void {
    const marker = core.compactWitnessLog();
    if (!marker) return;
    observer.onWitnessTruncate?.(this.id, marker);
    this.disk.compact(marker);
    if (!this.options.sendBeforePersist) this.disk.sync();
  }

  private maybeSnapshot(core: RaftCore): void {
    const snapIndex = core.latestSnapshot()?.metadata.index ?? 0;
    if (this.appliedIndex - snapIndex < this.options.snapshotEveryEntries) return;
    if (core.status().applied !== this.appliedIndex) return;
    const snapshot = core.createSnapshot(encodeSnapshotData(this.appliedIndex, this.appliedHash));
    this.disk.compact(snapshot);
    if (!this.options.sendBeforePersist) this.disk.sync();
  }
}

/** FNV-1a over (previous hash, term, index, type, data): equal hashes mean equal applied prefixes. */
export function chainHash(prev: number, e: Entry): number {
  let h = (prev ^ 0x811c9dc5) >>> 0;
  const mix = (byte: number): void => {
    h ^= byte & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const n of [e.term, e.index, e.type === "config" ? 1 : 0]) {
    for (let k = 0; k < 4; k++) mix(n >>> (8 * k));
  }
  for (const b of e.data) mix(b);
  return h >>> 0;
}

function encodeSnapshotData(index: number, hash: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ index, hash }));
}

function decodeSnapshotData(data: Uint8Array): { index: number; hash: number } {
  if (data.length === 0) return { index: 0, hash: 0 };
  const v = JSON.parse(new TextDecoder().decode(data)) as { index: number; hash: number };
  return { index: v.index, hash: v.hash };
}
