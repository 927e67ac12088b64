// A simulated disk: writes land in a volatile buffer and become durable only on sync(); a crash
// drops everything not yet synced (TigerBeetle's storage simulator, reduced to what Raft needs).
//
// Crash points. Every storage operation (a write of a snapshot, of entries or of a hard state, a
// compaction, a sync) and every send of the node's Ready loop first passes its disk's crash
// point. Armed with k, the point stops the process just before the k-th such operation from now:
// the disk drops what was not synced and SimulatedCrash is thrown out of the loop (the simulator
// catches it and treats the node as crashed). So a crash falls between ANY two storage operations
// of one Ready and between its persist and its send, not only between events; the messages of the
// Ready that crashed before its send never leave.

import { SeededRandom } from "../../server/core/random.ts";
import type { Entry, HardState, PersistedState, Snapshot, SnapshotMetadata } from "../../server/core/types.ts";
import type { StorageWrite } from "../../server/storage/raft_storage.ts";

/**
 * How far ahead a crash point is armed, in operations: a Ready of a busy node is about four
 * (entries, hard state, sync, send), so 1..8 covers every position of its next one or two.
 */
export const CRASH_POINT_OPS_MAX = 8;

export interface CrashPointOptions {
  /** The share of the nemesis's crashes that strike inside a Ready instead of between events. */
  readonly inReadyProbability: number;
}

/**
 * The crash points' own stream, so that drawing them shifts no draw of the swarm or the nemesis
 * (a seed's swarm stays what it was; runs differ only from the first crash point on).
 */
export function crashPointRandom(seed: number): SeededRandom {
  return new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x63727368) >>> 0);
}

export function drawCrashPoints(r: SeededRandom): CrashPointOptions {
  return { inReadyProbability: r.pick([0.25, 0.5, 0.9]) };
}

type DiskOp =
  | { readonly kind: "write"; readonly write: StorageWrite }
  | { readonly kind: "compact"; readonly snapshot: Snapshot; readonly logStart: SnapshotMetadata | null };

/** The operations a crash point can stop before. */
export type CrashPointOp = "writeSnapshot" | "writeEntries" | "writeHardState" | "compact" | "sync" | "send";

/** Thrown out of the Ready loop when an armed crash point is reached: the process is gone. */
export class SimulatedCrash extends Error {
  override readonly name = "SimulatedCrash";
  constructor(readonly op: CrashPointOp) {
    super(`simulated crash before ${op}`);
  }
}

export class SimDisk {
  private durable: PersistedState;
  private unsynced: DiskOp[] = [];
  syncCount = 0;
  /** Operations (crash point passes) since the disk was created. */
  opCount = 0;
  /** Armed: the process stops before the opsLeft-th operation from now; 0 = not armed. */
  private opsLeft = 0;

  constructor(initial: PersistedState) {
    this.durable = initial;
  }

  /** Arms a crash point `k` (>= 1) operations ahead; re-arming replaces the previous one. */
  armCrash(k: number): void {
    if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`crash point must be >= 1, got ${k}`);
    this.opsLeft = k;
  }

  isArmed(): boolean {
    return this.opsLeft > 0;
  }

  disarm(): void {
    this.opsLeft = 0;
  }

  /** Every operation passes here first; an armed point that comes due crashes the process. */
  crashPoint(op: CrashPointOp): void {
    this.opCount++;
    if (this.opsLeft === 0 || --this.opsLeft > 0) return;
    this.crash();
    throw new SimulatedCrash(op);
  }

  private write(write: StorageWrite): void {
    this.unsynced.push({ kind: "write", write });
  }

  /** The parts of one storage write, each its own operation (and crash point). */
  writeSnapshot(snapshot: Snapshot): void {
    this.crashPoint("writeSnapshot");
    this.write({ hardState: null, snapshot, entries: [] });
  }

  writeEntries(entries: readonly Entry[]): void {
    this.crashPoint("writeEntries");
    this.write({ hardState: null, snapshot: null, entries });
  }

  writeHardState(hardState: HardState): void {
    this.crashPoint("writeHardState");
    this.write({ hardState, snapshot: null, entries: [] });
  }

  /** Records `snapshot` and drops the entries up to `logStart` or the snapshot (RaftStorage.saveSnapshotAndCompact). */
  compact(snapshot: Snapshot, logStart: SnapshotMetadata | null = null): void {
    this.crashPoint("compact");
    this.unsynced.push({ kind: "compact", snapshot, logStart });
  }

  /** The fsync; a crash point only when there is something to sync (an empty sync does nothing). */
  sync(): void {
    if (this.unsynced.length > 0) this.crashPoint("sync");
    for (const op of this.unsynced) {
      this.durable = op.kind === "write" ? applyWrite(this.durable, op.write) : applyCompact(this.durable, op.snapshot, op.logStart);
    }
    if (this.unsynced.length > 0) this.syncCount++;
    this.unsynced = [];
  }

  hasUnsynced(): boolean {
    return this.unsynced.length > 0;
  }

  /** Power loss: the volatile buffer is gone (and an armed crash point with the process). */
  crash(): void {
    this.unsynced = [];
    this.opsLeft = 0;
  }

  load(): PersistedState {
    return this.durable;
  }
}

/** The storage contract of server/storage/raft_storage.ts, on plain data. */
export function applyWrite(state: PersistedState, w: StorageWrite): PersistedState {
  let snapshot = state.snapshot;
  let entries = state.entries;
  let logStart = state.logStart;
  if (w.snapshot) {
    snapshot = w.snapshot;
    entries = [];
    logStart = undefined;
  }
  const first = w.entries[0];
  if (first) {
    // The stored log starts after its log start while kept below the snapshot for a witness.
    const base = logStart?.index ?? snapshot?.metadata.index ?? 0;
    const keep = Math.max(0, first.index - base - 1);
    if (keep > entries.length) throw new Error(`disk append at ${first.index} leaves a gap after ${base + entries.length}`);
    entries = [...entries.slice(0, keep), ...w.entries];
  }
  const hardState = w.hardState ?? state.hardState;
  return logStart === undefined ? { hardState, snapshot, entries } : { hardState, snapshot, entries, logStart };
}

function applyCompact(state: PersistedState, snapshot: Snapshot, logStart: SnapshotMetadata | null): PersistedState {
  const base = state.snapshot?.metadata.index ?? 0;
  const idx = snapshot.metadata.index;
  if (idx <= base) return state;
  if (logStart === null) return { hardState: state.hardState, snapshot, entries: state.entries.filter((e) => e.index > idx) };
  if (logStart.index >= idx) throw new Error(`compaction at ${idx} keeps the log from ${logStart.index}`);
  const entries = state.entries.filter((e) => e.index > logStart.index);
  if (entries[0]?.index !== logStart.index + 1) throw new Error(`compaction keeps the log from ${logStart.index}, not stored`);
  return { hardState: state.hardState, snapshot, entries, logStart };
}
