// ReadyLoop: the ONE implementation of the Ready contract of server/core/ready.ts (DESIGN.md §1
// "one Ready loop drives every role"). A voter's RaftNode, the witness's WitnessNode, the Raft
// simulator's SimNode and the scenario-script runner all hand it their core, storage, message
// sink and a role-specific applier, and none of them takes a Ready itself
// (ready_loop.test.ts fails if a second copy appears). For every Ready, in this order:
//
//   1. PERSIST: snapshot, entries and hard state in ONE storage.save(), durable when it returns
//      (a Ready whose only change is the commit index, mustSync false, is saved without an
//      fsync: Raft need not keep the commit index durable; StorageWrite.sync);
//   2. SEND the messages (they may promise what step 1 made durable: a vote, an ack); nothing of
//      the Ready is written after this point, so a crash anywhere in the cycle (the simulator
//      stops the process between any two storage operations) never leaves a promise undurable;
//   3. APPLY: applier.restoreSnapshot(snapshot), then applier.applyEntry(e) for each committed
//      entry in order, then applier.softStateChanged(s) if the soft state changed;
//   4. ADVANCE: core.advance(rd): the durable acknowledgement of rd (a leader's own entries count
//      towards the commit only now, ready.ts "Self-durability"; config entries take effect);
//   5. the role's after-advance step, applier.afterAdvance(rd, compact): the voter serves
//      confirmed reads and takes periodic snapshots, the witness truncates at the floor (W3).
//      `compact` records a snapshot and drops the log up to it, or up to the log start the role
//      passes (storage.saveSnapshotAndCompact; the core's storageLogStart(): null, or below the
//      snapshot while a member keeps its log for a witness, churn issue 4).
//
// A leader's own write in parallel with its followers' (leaderSendsBeforePersist, issue 14
// point 3; etcd-io/raft lets a leader send its entries before its own append is durable, Raft
// thesis 10.2.1): a Ready that only a leader makes (entries of its own, term and vote unchanged,
// no snapshot) sends its appends and heartbeats FIRST and is then PARKED: process() returns, the
// turn ends and the gRPC frames reach the socket, and the next pass, or any input the node hands
// the core before it (finishParked()), persists it and runs steps 2-5 with the rest of its
// messages. Safe because the leader counts itself towards a commit only in advance(), after its
// own write returned (ready.ts "Self-durability"), exactly as it counts a follower only once that
// follower's acknowledgement, sent after ITS write, arrives; and the appends promise nothing of
// this Ready's writes (the term was durable before the node could lead in it; the commit index
// they carry is a quorum's). Every acknowledgement, vote or other response still leaves only
// after the write of its Ready is durable, and no entry is applied before it is on this disk.
//
// The parked Ready's write in the background (backgroundWrites, issue 14 point 3): with a storage
// that offers saveInBackground (SqliteStorage: the transaction now, its fsync on the thread
// pool), the parked Ready's write starts at once, right after its appends, and the loop stays
// parked until the storage reports it durable (onWriteDurable; the owner then asks for a pass).
// Meanwhile the event loop is free for the gRPC traffic (TLS, decoding, auth) the fsync used to
// block; the owner still holds every input to the core back while parked, so the core sees
// exactly the order of the synchronous case (a write, then its Ready's rest, then the inputs).
//
// Synchronous and deterministic: no clock, no randomness, no timers, no Promises, so the
// simulator drives the production loop step by step. It imports nothing of server/state (the
// witness uses it and must never reach the state machine; witness/purity.test.ts).
// A storage throw propagates: it is fatal to the process (raft_storage.ts), the caller stops.

import { assert } from "../core/assert.ts";
import type { Message } from "../core/messages.ts";
import type { Ready, SoftState } from "../core/ready.ts";
import type { Entry, Snapshot, SnapshotMetadata } from "../core/types.ts";
import type { RaftStorage, StorageWrite } from "../storage/raft_storage.ts";

/** What the loop needs of the core (RaftCore fits). */
export interface ReadySource {
  hasReady(): boolean;
  ready(): Ready;
  advance(rd: Ready): void;
}

/** Where a Ready's messages go once its write is durable (PeerTransport fits). */
export interface MessageSink {
  send(messages: readonly Message[]): void;
}

/**
 * Records `snapshot` durably and drops the stored log up to `logStart` (the core's
 * storageLogStart() right after it made the snapshot), or up to the snapshot when null (always
 * without a witness).
 */
export type Compact = (snapshot: Snapshot, logStart: SnapshotMetadata | null) => void;

/** The durable half of the loop: one save per Ready, plus the role's own compactions. */
export type ReadyStorage = Pick<RaftStorage, "save" | "saveSnapshotAndCompact" | "saveInBackground">;

/** What a role does with what the Ready hands over. Every call comes after the persist step. */
export interface ReadyApplier {
  /** The leader's snapshot of this Ready (already durable): replace the state with its image. */
  restoreSnapshot(snapshot: Snapshot): void;
  /** One committed entry (already durable), in index order; config entries included. */
  applyEntry(entry: Entry): void;
  /** The soft state changed in this Ready; called after the entries, before advance. */
  softStateChanged?(softState: SoftState): void;
  /**
   * After core.advance(rd): the role's own step. `compact` records `snapshot` durably and drops
   * the log up to the log start given, or up to the snapshot when null (a voter's state-machine
   * snapshot, with the core's storageLogStart(); a witness's marker, with null).
   */
  afterAdvance(rd: Ready, compact: Compact): void;
}

export interface ReadyLoopOptions {
  readonly core: ReadySource;
  readonly storage: ReadyStorage;
  readonly transport: MessageSink;
  readonly applier: ReadyApplier;
  /** Readies handled by one process() pass at most (the next pass picks up the rest). */
  readonly readiesPerPassMax: number;
  /** Sees each Ready as it is taken, before step 1 (the scenario scripts print it). */
  readonly onReady?: (rd: Ready) => void;
  /**
   * TEST-ONLY DELIBERATE BUG (the simulator's `sendBeforePersist` switch, testing/sim): each
   * Ready's messages are sent BEFORE its write, and the write (and any compaction after it) is
   * made durable only at the start of the next pass. A crash between the two passes loses the
   * vote, term or entries those messages promised, which the simulator's checkers must catch.
   * Absent (false) in every real configuration.
   */
  readonly testOnlyBugSendBeforePersist?: boolean;
  /**
   * TEST-ONLY DELIBERATE BUG (the simulator's `hardStateAfterSend` switch, testing/sim): the
   * snapshot and entries are saved, the messages sent, and only then the hard state saved in a
   * second save. A crash between the send and the second save (a crash point inside the Ready)
   * loses the term or vote those messages promised: a restart votes again in the same term.
   * Absent (false) in every real configuration.
   */
  readonly testOnlyBugHardStateAfterSend?: boolean;
  /**
   * A leader's appends and heartbeats leave before its own write, which the next pass makes
   * durable (the header: "A leader's own write in parallel"). The owner must call
   * finishParked() before it hands the core any input, and ask for a pass while parked().
   */
  readonly leaderSendsBeforePersist?: boolean;
  /**
   * With leaderSendsBeforePersist and a storage with saveInBackground: the parked Ready's write
   * starts at once and the loop stays parked until it is durable (the header). `onWriteDurable`
   * is then called from the storage's callback: the owner asks for a pass, which finishes it.
   */
  readonly backgroundWrites?: { readonly onWriteDurable: () => void };
}

/** A parked Ready's write: not started (the next pass makes it), in the background, or done. */
type ParkedWrite = "next pass" | "in flight" | "durable";

interface Parked {
  readonly rd: Ready;
  /** Its messages that leave after the write. */
  readonly rest: readonly Message[];
  write: ParkedWrite;
  /** A background write's failure, thrown by the pass that would finish the Ready. */
  error: Error | null;
}

/** What a leader may send before its own write of the Ready: it promises nothing of it. */
const SENT_BEFORE_PERSIST = new Set<Message["kind"]>(["append", "heartbeat"]);

/** A durable step the deliberate bug holds back until the next pass. */
type HeldWrite =
  | { readonly kind: "save"; readonly write: StorageWrite }
  | { readonly kind: "compact"; readonly snapshot: Snapshot; readonly logStart: SnapshotMetadata | null };

export class ReadyLoop {
  private readonly compact: Compact = (snapshot, logStart) => this.persistCompaction(snapshot, logStart);
  /** Only under testOnlyBugSendBeforePersist: writes whose messages already left. */
  private held: HeldWrite[] = [];
  /** A leader's Ready whose appends left before its write; `rest` leave after it (leaderSendsBeforePersist). */
  private parkedReady: Parked | null = null;
  /** Term and vote of the last hard state this loop saved (null: none yet; the stored ones). */
  private savedTermVote: { readonly term: number; readonly vote: string } | null = null;

  constructor(private readonly options: ReadyLoopOptions) {
    assert(options.readiesPerPassMax > 0, "readiesPerPassMax must be positive");
  }

  /** Runs Ready cycles until the core is quiet or the pass bound is reached; returns how many. */
  /**
   * `handledBefore`: Readies this pass already handled (a parked Ready the owner finished first),
   * counted towards readiesPerPassMax.
   */
  process(handledBefore = 0): number {
    this.releaseHeldWrites();
    const core = this.options.core;
    let handled = handledBefore;
    if (this.finishParked()) handled++;
    if (this.writing()) return handled; // the core still waits for the parked Ready's advance
    while (handled < this.options.readiesPerPassMax && core.hasReady()) {
      const rd = core.ready();
      handled++;
      this.options.onReady?.(rd);
      const early = this.sendableBeforePersist(rd);
      if (early !== null) {
        // Parked: the pass ends here so the turn ends and the appends reach the wire before
        // this node's fsync (the next pass, or finishParked() at the next input, persists it).
        this.options.transport.send(early.before);
        this.park(rd, early.after);
        break;
      }
      this.handle(rd);
    }
    return handled;
  }

  /** Runs exactly one Ready cycle if the core has one (the scenario scripts' process-ready). */
  processOne(): boolean {
    this.releaseHeldWrites();
    this.finishParked();
    if (this.writing() || !this.options.core.hasReady()) return false;
    const rd = this.options.core.ready();
    this.options.onReady?.(rd);
    this.handle(rd);
    return true;
  }

  /** True while a leader's Ready is parked: its appends left, the rest of it is not done. */
  parked(): boolean {
    return this.parkedReady !== null;
  }

  /**
   * True while the parked Ready's write runs in the background: nothing can finish it until
   * the storage reports it durable (backgroundWrites.onWriteDurable), so a pass before that
   * does nothing.
   */
  writing(): boolean {
    return this.parkedReady?.write === "in flight";
  }

  /**
   * Persists the parked Ready, sends the rest of its messages, applies and advances it (steps
   * 1-5). The owner calls it before any input to the core (which refuses input while a Ready is
   * outstanding) and the next process() pass calls it first. Returns false (a no-op) when
   * nothing is parked.
   */
  finishParked(): boolean {
    const parked = this.parkedReady;
    if (parked === null || parked.write === "in flight") return false;
    this.parkedReady = null;
    if (parked.error !== null) throw parked.error; // fatal, as a save() that threw
    if (parked.write === "durable") this.sendApply(parked.rd, parked.rest);
    else this.persistSendApply(parked.rd, parked.rest);
    return true;
  }

  /** Parks `rd` (its appends just left) and, with backgroundWrites, starts its write. */
  private park(rd: Ready, rest: readonly Message[]): void {
    const parked: Parked = { rd, rest, write: "next pass", error: null };
    this.parkedReady = parked;
    const background = this.options.backgroundWrites;
    const saveInBackground = this.options.storage.saveInBackground;
    if (background === undefined || saveInBackground === undefined) return;
    parked.write = "in flight";
    saveInBackground.call(this.options.storage, this.writeOf(rd), (error) => {
      assert(parked.write === "in flight", "a background write reported twice");
      parked.write = "durable";
      parked.error = error;
      background.onWriteDurable();
    });
  }

  private writeOf(rd: Ready): StorageWrite {
    return { hardState: rd.hardState, snapshot: rd.snapshot, entries: rd.entries, sync: rd.mustSync };
  }

  /**
   * The messages a leader may send before its own write of `rd`, and the rest, or null when the
   * Ready must be persisted first: the option is off, a test-only bug is on, it has no entries
   * to write (nothing to overlap), a snapshot, a term or vote not yet durable, or no append or
   * heartbeat to send.
   */
  private sendableBeforePersist(rd: Ready): { before: Message[]; after: Message[] } | null {
    const o = this.options;
    if (o.leaderSendsBeforePersist !== true || o.testOnlyBugSendBeforePersist === true || o.testOnlyBugHardStateAfterSend === true) {
      return null;
    }
    if (rd.entries.length === 0 || rd.snapshot !== null) return null;
    const hs = rd.hardState;
    const saved = this.savedTermVote;
    // A null hard state is the durable one; a new one must keep the term and vote last saved.
    if (hs !== null && (saved === null || hs.term !== saved.term || hs.vote !== saved.vote)) return null;
    const before = rd.messages.filter((m) => SENT_BEFORE_PERSIST.has(m.kind));
    if (before.length === 0) return null;
    return { before, after: rd.messages.filter((m) => !SENT_BEFORE_PERSIST.has(m.kind)) };
  }

  private handle(rd: Ready): void {
    const { storage, transport } = this.options;
    const write = this.writeOf(rd);
    if (this.options.testOnlyBugSendBeforePersist === true) {
      // The deliberate bug: see ReadyLoopOptions.testOnlyBugSendBeforePersist.
      if (rd.messages.length > 0) transport.send(rd.messages);
      this.held.push({ kind: "save", write });
    } else if (this.options.testOnlyBugHardStateAfterSend === true) {
      // The deliberate bug: see ReadyLoopOptions.testOnlyBugHardStateAfterSend.
      storage.save({ ...write, hardState: null });
      if (rd.messages.length > 0) transport.send(rd.messages);
      if (rd.hardState) storage.save({ hardState: rd.hardState, snapshot: null, entries: [] });
    } else {
      this.persistSendApply(rd, rd.messages);
      return;
    }
    this.applyAndAdvance(rd);
  }

  /** Steps 1-5 for `rd`, sending `messages` after its write (all of them, or a parked Ready's rest). */
  private persistSendApply(rd: Ready, messages: readonly Message[]): void {
    // 1. Persist: one transaction, durable before anything (else) of this Ready leaves the node.
    // mustSync false: only the commit index changed; saved without an fsync (StorageWrite.sync;
    // SqliteStorage holds it for its next synced write).
    this.options.storage.save(this.writeOf(rd));
    this.sendApply(rd, messages);
  }

  /** Steps 2-5 for `rd`, whose write is durable. */
  private sendApply(rd: Ready, messages: readonly Message[]): void {
    if (rd.hardState !== null) this.savedTermVote = { term: rd.hardState.term, vote: rd.hardState.vote };
    // 2. Send.
    if (messages.length > 0) this.options.transport.send(messages);
    this.applyAndAdvance(rd);
  }

  /** Steps 3-5: apply what rd commits (already durable here), advance, the role's step. */
  private applyAndAdvance(rd: Ready): void {
    const { applier, core } = this.options;
    // 3. Apply.
    if (rd.snapshot) applier.restoreSnapshot(rd.snapshot);
    for (const e of rd.committedEntries) applier.applyEntry(e);
    if (rd.softState) applier.softStateChanged?.(rd.softState);
    // 4. Advance; 5. the role's own step.
    core.advance(rd);
    applier.afterAdvance(rd, this.compact);
  }

  private persistCompaction(snapshot: Snapshot, logStart: SnapshotMetadata | null): void {
    if (this.options.testOnlyBugSendBeforePersist === true) this.held.push({ kind: "compact", snapshot, logStart });
    else this.options.storage.saveSnapshotAndCompact(snapshot, logStart);
  }

  private releaseHeldWrites(): void {
    if (this.held.length === 0) return;
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (h.kind === "save") this.options.storage.save(h.write);
      else this.options.storage.saveSnapshotAndCompact(h.snapshot, h.logStart);
    }
  }
}
