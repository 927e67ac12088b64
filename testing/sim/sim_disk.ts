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
//
// Beside the log the disk holds the member's ack record (sim_ack_record.ts, production's rules),
// updated by SimStorage around each save. The disk's lies (sim_disk_lies.ts: corrupt, lost and
// misdirected writes, a wiped disk) damage the durable state while the member is stopped, through
// damage() and wipe(); every record carries a checksum over its index and content as production's
// (server/storage/checksum.ts entryChecksum), which the start (sim_startup.ts) verifies.

import { SeededRandom } from "../../server/core/random.ts";
import type { Entry, HardState, Index, PersistedState, Snapshot, SnapshotMetadata } from "../../server/core/types.ts";
import { entryChecksum } from "../../server/storage/checksum.ts";
import type { StorageWrite } from "../../server/storage/raft_storage.ts";
import { EXACT_ACK_POLICY, SimAckTracker, type SimAckPolicy, type SimAckRecord } from "./sim_ack_record.ts";

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

export interface SimDiskOptions {
  /** When the ack record's watermark is rewritten (default: on every save, EXACT_ACK_POLICY). */
  readonly ackPolicy?: SimAckPolicy;
  /** The simulated clock, for the ack record's interval (default: none, the interval never comes due). */
  readonly nowMs?: () => number;
}

/** Earlier durable hard states kept for the lost-write lie (a truncated WAL rolls the hard state back too). */
const HARD_STATE_HISTORY_MAX = 8;

export class SimDisk {
  private durable: PersistedState;
  private unsynced: DiskOp[] = [];
  syncCount = 0;
  /** Operations (crash point passes) since the disk was created. */
  opCount = 0;
  /** Armed: the process stops before the opsLeft-th operation from now; 0 = not armed. */
  private opsLeft = 0;
  /** The ack record, or null once the disk was wiped. */
  private ack: SimAckTracker | null;
  /**
   * Each record's checksum is entryChecksum of what was written at its index. A record the disk
   * wrote faithfully has exactly its content's checksum, so it is computed when the start checks
   * it (not on every write, which would cost the CI corpus a CRC per entry written); only the
   * records a lie left behind carry another one, kept here until the start drops them.
   */
  private readonly damagedChecksums = new Map<Index, number>();
  /** The durable state just before the latest lie (the checkers' view of what the member acknowledged). */
  private beforeDamage: PersistedState | null = null;
  /** Earlier durable hard states, oldest first. */
  private readonly hardStates: HardState[] = [];

  constructor(initial: PersistedState, options: SimDiskOptions = {}) {
    this.durable = initial;
    this.ack = new SimAckTracker(
      initial.hardState,
      lastIndexOf(initial),
      options.ackPolicy ?? EXACT_ACK_POLICY,
      options.nowMs ?? (() => 0),
    );
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
    const hardStateBefore = this.durable.hardState;
    for (const op of this.unsynced) {
      this.durable = op.kind === "write" ? applyWrite(this.durable, op.write) : applyCompact(this.durable, op.snapshot, op.logStart);
    }
    if (this.durable.hardState !== hardStateBefore) {
      this.hardStates.push(hardStateBefore);
      if (this.hardStates.length > HARD_STATE_HISTORY_MAX) this.hardStates.shift();
    }
    if (this.unsynced.length > 0) this.syncCount++;
    this.unsynced = [];
  }

  hasUnsynced(): boolean {
    return this.unsynced.length > 0;
  }

  /** Power loss: the volatile buffer is gone (and an armed crash point with the process, and its ack timer). */
  crash(): void {
    this.unsynced = [];
    this.opsLeft = 0;
    this.ack?.crash();
  }

  load(): PersistedState {
    return this.durable;
  }

  // ---------------------------------------------------------------- the ack record

  /** The ack record as it is on this disk, or null (wiped). */
  ackRecord(): SimAckRecord | null {
    return this.ack?.record ?? null;
  }

  /** Production's AckTracker, driven by SimStorage.save around its writes and sync. */
  ackTracker(): SimAckTracker | null {
    return this.ack;
  }

  // ---------------------------------------------------------------- damage (sim_disk_lies.ts, sim_startup.ts)

  /** The checksum stored with the record at `index` (see damagedChecksums). */
  storedChecksum(index: Index, stored: Entry): number {
    return this.damagedChecksums.get(index) ?? entryChecksum(stored);
  }

  /** Earlier durable hard states (oldest first), for the lost-write lie. */
  earlierHardStates(): readonly HardState[] {
    return this.hardStates;
  }

  /** A lie: the durable state becomes `state`, with `checksums` stored at the indexes it names. */
  damage(state: PersistedState, checksums: ReadonlyMap<Index, number> = new Map()): void {
    this.assertStopped();
    if (this.beforeDamage === null) this.beforeDamage = this.durable;
    this.durable = state;
    for (const [index, checksum] of checksums) this.damagedChecksums.set(index, checksum);
  }

  /** The whole disk gone, the ack record with it. */
  wipe(): void {
    this.assertStopped();
    if (this.beforeDamage === null) this.beforeDamage = this.durable;
    this.durable = { hardState: { term: 0, vote: "", commit: 0 }, snapshot: null, entries: [] };
    this.damagedChecksums.clear();
    this.hardStates.length = 0;
    this.ack = null;
  }

  /** What the disk held before its latest lie (null: never lied), for the checkers. */
  stateBeforeDamage(): PersistedState | null {
    return this.beforeDamage;
  }

  /** The start dropped the damaged records and fixed the hard state: that is the durable state now. */
  repair(state: PersistedState): void {
    this.assertStopped();
    this.durable = state;
    this.damagedChecksums.clear();
  }

  /** The member caught up after its lie: the checkers read its disk alone again. */
  forgetDamage(): void {
    this.beforeDamage = null;
  }

  private assertStopped(): void {
    if (this.unsynced.length > 0) throw new Error("the disk lies only while its member is stopped (unsynced writes pending)");
  }
}

/** The last index a state holds: its last entry's, or its snapshot's. */
export function lastIndexOf(state: PersistedState): Index {
  return state.entries.at(-1)?.index ?? state.snapshot?.metadata.index ?? 0;
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
