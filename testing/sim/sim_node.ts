// One simulated server: the production RaftCore driven by the production Ready loop
// (server/node/ready_loop.ts) over a simulated disk (SimStorage over SimDisk), with one of two
// appliers: a voter's tiny state machine (a hash chain over applied entries, so replicas can be
// compared entry by entry, plus periodic snapshots), or a witness's production WitnessApplier
// (witness/witness_node.ts: applies nothing, W2; truncates to the leader's floor with a
// metadata-only marker after each cycle, W3). So the witness simulation runs the witness's own
// production loop and applier, not a copy of them.
//
// Crash points (sim_disk.ts): every storage operation of the loop and every send passes the
// disk's crash point; when an armed one comes due, the process stops right there, in the middle of
// a Ready, and processReadies() reports it (the simulator schedules the restart).
//
// Start (sim_startup.ts): the storage checks the disk first. A wiped disk is refused (the node
// stays down); damaged records are dropped, term and vote raised to the ack record's, and a
// member that lost data it may have acknowledged starts its core with RaftConfig.recovery; once
// the core says it caught up, the disk's ack record forgets the recovery.

import type { RaftConfig } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { Ready } from "../../server/core/ready.ts";
import type { Entry, NodeId, PersistedState, Snapshot } from "../../server/core/types.ts";
import { type Compact, ReadyLoop, type ReadyApplier } from "../../server/node/ready_loop.ts";
import { WitnessApplier } from "../../witness/witness_node.ts";
import { SimDisk, SimulatedCrash, type CrashPointOp, type SimDiskOptions } from "./sim_disk.ts";
import { checkAtStart } from "./sim_startup.ts";
import { SimStorage } from "./sim_storage.ts";

export interface SimNodeObserver {
  onSend(m: Message): void;
  onApply(node: NodeId, entry: Entry, hashAfter: number): void;
  onRestoreSnapshot(node: NodeId, index: number, hash: number): void;
  /** Entries about to be written, with the commit index the disk held before this write. */
  onDiskEntries(node: NodeId, entries: readonly Entry[], nodeCommit: number): void;
  /** A witness truncated its log up to the marker (in memory; the marker is being persisted). */
  onWitnessTruncate?(node: NodeId, marker: Snapshot): void;
}

export interface SimNodeOptions {
  readonly id: NodeId;
  readonly initial: PersistedState;
  /** The disk's ack-record policy and clock (SimDisk's defaults without). */
  readonly disk?: SimDiskOptions;
  readonly makeConfig: (appliedIndex: number, recovery: RaftConfig["recovery"]) => RaftConfig;
  /** Take a snapshot and compact once this many entries were applied since the last one. */
  readonly snapshotEveryEntries: number;
  /** The Ready loop's test-only bug (ReadyLoopOptions.testOnlyBugSendBeforePersist). */
  readonly sendBeforePersist: boolean;
  /** Leaders send their appends before their own write (ReadyLoopOptions.leaderSendsBeforePersist). */
  readonly leaderSendsBeforePersist?: boolean;
  /** The Ready loop's test-only bug (ReadyLoopOptions.testOnlyBugHardStateAfterSend). */
  readonly hardStateAfterSend?: boolean;
  /** A witness member: no state machine, floor truncation instead of snapshots. */
  readonly witness?: boolean;
  readonly observer: SimNodeObserver;
  /** The witness applier's log lines (debug runs), or null. */
  readonly log?: ((fields: Record<string, unknown>) => void) | null;
}

const readiesPerStepMax = 64;

export class SimNode {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly witness: boolean;
  core: RaftCore | null = null;
  incarnation = 0;
  pausedUntilMs = 0;
  /** Why the last start was refused (a wiped disk), or null. */
  refusal: string | null = null;
  /** The recovery target this process started with (null: a normal start). */
  startedRecovering: number | null = null;
  /** What the last start found and repaired on the disk (debug runs), or null. */
  startupDetail: string | null = null;
  private loop: ReadyLoop | null = null;
  private machine: HashChainApplier | null = null;

  constructor(private readonly options: SimNodeOptions) {
    this.id = options.id;
    this.witness = options.witness ?? false;
    this.disk = new SimDisk(options.initial, options.disk);
  }

  /** The voter's applied index and hash (0 for a witness, which applies nothing). */
  get appliedIndex(): number {
    return this.machine?.index ?? 0;
  }

  get appliedHash(): number {
    return this.machine?.hash ?? 0;
  }

  isUp(): boolean {
    return this.core !== null;
  }

  /** Starts the process; false if its storage refused to start (the node stays down). */
  start(): boolean {
    const o = this.options;
    const observer = o.observer;
    const check = checkAtStart(this.disk);
    if (check.kind === "refused") {
      this.refusal = check.detail;
      return false;
    }
    this.startedRecovering = check.recovery?.untilIndex ?? null;
    this.startupDetail = check.detail;
    const onDiskEntries = (node: NodeId, entries: readonly Entry[], commit: number): void => observer.onDiskEntries(node, entries, commit);
    // Only a witness's compactions are truncations at the floor; a voter's are its snapshots.
    const onCompact = (node: NodeId, marker: Snapshot): void => observer.onWitnessTruncate?.(node, marker);
    const storage = new SimStorage(this.id, this.disk, this.witness ? { onDiskEntries, onCompact } : { onDiskEntries });
    const state = storage.load();
    // A witness's snapshot is a marker (or a full leader's image it never reads): no state.
    const restored = state.snapshot && !this.witness ? decodeSnapshotData(state.snapshot.data) : { index: 0, hash: 0 };
    const core = new RaftCore(o.makeConfig(restored.index, check.recovery), state);
    let applier: ReadyApplier;
    if (this.witness) {
      this.machine = null;
      applier = new WitnessApplier(this.id, core, o.log ?? (() => {}));
    } else {
      this.machine = new HashChainApplier(this.id, core, restored, o.snapshotEveryEntries, observer);
      applier = this.machine;
    }
    this.loop = new ReadyLoop({
      core,
      storage,
      transport: {
        send: (messages) => {
          this.disk.crashPoint("send"); // between the persist and the send
          for (const m of messages) observer.onSend(m);
        },
      },
      applier,
      readiesPerPassMax: readiesPerStepMax,
      testOnlyBugSendBeforePersist: o.sendBeforePersist,
      leaderSendsBeforePersist: o.leaderSendsBeforePersist === true,
      testOnlyBugHardStateAfterSend: o.hardStateAfterSend === true,
    });
    this.core = core;
    this.incarnation++;
    return true;
  }

  /** Power loss: the disk drops what was not synced, the process (and its loop) is gone. */
  crash(): void {
    this.disk.crash();
    this.core = null;
    this.loop = null;
  }

  /**
   * Runs Ready cycles until the core is quiet (bounded). Returns the operation an armed crash
   * point stopped the process before, inside a Ready (the node is then down, its disk holding only
   * what was synced), or null.
   */
  /** True while the loop holds a leader's Ready whose appends left before its write. */
  parked(): boolean {
    return this.loop?.parked() === true;
  }

  /**
   * Writes a parked Ready (steps 1-5) before the core takes any input; returns the operation an
   * armed crash point stopped the process before (the node is then down), or null.
   */
  finishParked(): CrashPointOp | null {
    try {
      this.loop?.finishParked();
      return null;
    } catch (err) {
      if (!(err instanceof SimulatedCrash)) throw err;
      this.crash();
      return err.op;
    }
  }

  processReadies(): CrashPointOp | null {
    try {
      this.loop?.process();
      // The Ready that ended the recovery is durable now (the loop saved it before advancing).
      if (this.startedRecovering !== null && this.core?.recovering() === false) {
        this.startedRecovering = null;
        this.disk.ackTracker()?.recoveryDone();
      }
      return null;
    } catch (err) {
      if (!(err instanceof SimulatedCrash)) throw err;
      this.crash();
      return err.op;
    }
  }
}

/** The voter's stand-in state machine: a hash chain over applied entries, snapshotted now and then. */
class HashChainApplier implements ReadyApplier {
  index: number;
  hash: number;

  constructor(
    private readonly id: NodeId,
    private readonly core: RaftCore,
    restored: { index: number; hash: number },
    private readonly snapshotEveryEntries: number,
    private readonly observer: SimNodeObserver,
  ) {
    this.index = restored.index;
    this.hash = restored.hash;
  }

  restoreSnapshot(snapshot: Snapshot): void {
    const restored = decodeSnapshotData(snapshot.data);
    this.index = restored.index;
    this.hash = restored.hash;
    this.observer.onRestoreSnapshot(this.id, restored.index, restored.hash);
  }

  applyEntry(e: Entry): void {
    if (e.index !== this.index + 1) throw new Error(`${this.id} applies ${e.index} after ${this.index}`);
    this.hash = chainHash(this.hash, e);
    this.index = e.index;
    this.observer.onApply(this.id, e, this.hash);
  }

  afterAdvance(_rd: Ready, compact: Compact): void {
    const snapIndex = this.core.latestSnapshot()?.metadata.index ?? 0;
    if (this.index - snapIndex < this.snapshotEveryEntries) return;
    if (this.core.status().applied !== this.index) return;
    const snapshot = this.core.createSnapshot(encodeSnapshotData(this.index, this.hash));
    compact(snapshot, this.core.storageLogStart());
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
