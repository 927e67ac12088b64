// A minimal synchronous in-memory cluster for core unit tests: deliver every message at once,
// in order, with optional drops. Each core runs the production Ready loop
// (server/node/ready_loop.ts) with nothing on disk and an applier that records
// committed entries and read states. The simulator (testing/sim) is the adversarial version.
//
// Every loop runs under a DurabilityRecorder, so every core test that uses this cluster also
// checks ready.ts step 1 on EVERY Ready it takes: no message of a Ready leaves while a write of
// that Ready is not yet durable (by default the first violation throws).

import { bootstrapState } from "../../server/core/bootstrap.ts";
import { makeRaftConfig, type BugSwitches, NO_BUGS, type RaftConfigInput } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { ReadState, Ready } from "../../server/core/ready.ts";
import type { Entry, HardState, NodeId, PersistedState, Snapshot } from "../../server/core/types.ts";
import { ReadyLoop, type MessageSink, type ReadyStorage } from "../../server/node/ready_loop.ts";
import type { StorageWrite } from "../../server/storage/raft_storage.ts";

/** Nothing survives here: restartNode hands the new core what its disk is meant to hold. */
const NO_DISK: ReadyStorage = { save: () => {}, saveSnapshotAndCompact: () => {} };

/** What one Ready asked to be made durable and is not yet (struck off as saves return). */
interface Undurable {
  readonly readyNumber: number;
  hardState: HardState | null;
  snapshot: Snapshot | null;
  lastEntry: Entry | null;
}

/**
 * ready.ts step 1, checked on every Ready of one node's loop: no message of a Ready leaves while
 * a write that Ready asked for (its hard state, snapshot or entries) is not yet durable. A save is
 * durable when it returns (raft_storage.ts). The recorder wraps the loop's storage and transport
 * and is told of each Ready as the loop takes it (ReadyLoopOptions.onReady); the loop hands the
 * Ready's own hard state, snapshot and entries to save(), so they are recognised by identity.
 */
export class DurabilityRecorder {
  readies = 0;
  saves = 0;
  sends = 0;
  readonly violations: string[] = [];
  private current: Undurable | null = null;
  private saving = false;

  constructor(
    private readonly id: NodeId,
    private readonly inner: ReadyStorage,
    private readonly sink: MessageSink,
    private readonly throwOnViolation: boolean,
  ) {}

  readonly onReady = (rd: Ready): void => {
    this.readies++;
    const lastEntry = rd.entries[rd.entries.length - 1] ?? null;
    this.current = { readyNumber: this.readies, hardState: rd.hardState, snapshot: rd.snapshot, lastEntry };
  };

  readonly storage: ReadyStorage = {
    save: (w: StorageWrite) => {
      this.saving = true;
      this.inner.save(w);
      this.saving = false;
      this.saves++;
      this.strike(w);
    },
    saveSnapshotAndCompact: (snapshot: Snapshot) => this.inner.saveSnapshotAndCompact(snapshot),
  };

  readonly transport: MessageSink = {
    send: (messages) => {
      this.sends++;
      const c = this.current;
      const missing: string[] = [];
      if (this.saving) missing.push("a save still in progress");
      if (c?.hardState) missing.push(`hard state term=${c.hardState.term} vote=${c.hardState.vote || "none"}`);
      if (c?.snapshot) missing.push(`snapshot ${c.snapshot.metadata.term}/${c.snapshot.metadata.index}`);
      if (c?.lastEntry) missing.push(`entries up to ${c.lastEntry.term}/${c.lastEntry.index}`);
      if (missing.length > 0) {
        const kinds = [...new Set(messages.map((m) => m.kind))].join(",");
        this.violate(
          `${this.id}: Ready #${c?.readyNumber ?? 0} sent ${messages.length} message(s) (${kinds}) before ${missing.join(", ")} was durable`,
        );
      }
      this.sink.send(messages);
    },
  };

  private strike(w: StorageWrite): void {
    const c = this.current;
    if (!c) return;
    if (w.hardState !== null && w.hardState === c.hardState) c.hardState = null;
    if (w.snapshot !== null && w.snapshot === c.snapshot) c.snapshot = null;
    const last = c.lastEntry;
    if (last && w.entries.some((e) => e.index === last.index && e.term === last.term)) c.lastEntry = null;
  }

  private violate(detail: string): void {
    this.violations.push(detail);
    if (this.throwOnViolation) throw new Error(`durability order broken: ${detail}`);
  }
}

export interface TestClusterOptions {
  /** The Ready loop's test-only bugs (ready_loop.ts), to show that the recorder catches them. */
  readonly loopBugs?: { readonly sendBeforePersist?: boolean; readonly hardStateAfterSend?: boolean };
  /** false: collect durability violations (durabilityViolations()) instead of throwing. */
  readonly throwOnDurabilityViolation?: boolean;
  /** Sees each save while it is in progress, i.e. before the write is durable. */
  readonly onSave?: (id: NodeId, write: StorageWrite) => void;
  /** RaftConfig fields every core gets (beside its id, seed and bugs). */
  readonly raftConfig?: Partial<Omit<RaftConfigInput, "id" | "random" | "bugs">>;
}

export class TestCluster {
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly cut = new Set<string>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** term -> leader, as observed after every Ready (scenario assertions). */
  readonly leaderOfTerm = new Map<number, NodeId>();
  readonly recorders = new Map<NodeId, DurabilityRecorder>();
  private readonly loops = new Map<NodeId, ReadyLoop>();
  private outbox: Message[] = [];
  private restarts = 0;

  constructor(
    ids: readonly NodeId[],
    seed = 1,
    bugs: BugSwitches = NO_BUGS,
    witnesses: readonly NodeId[] = [],
    private readonly options: TestClusterOptions = {},
  ) {
    const random = new SeededRandom(seed);
    for (const id of ids) {
      const config = makeRaftConfig({ ...options.raftConfig, id, random: random.fork(), bugs });
      const core = new RaftCore(config, bootstrapState(ids, witnesses));
      this.nodes.set(id, core);
      this.applied.set(id, []);
      this.loops.set(id, this.loopOf(id, core));
    }
  }

  node(id: NodeId): RaftCore {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Every durability violation any node's recorder saw (with throwOnDurabilityViolation: false). */
  durabilityViolations(): string[] {
    return [...this.recorders.values()].flatMap((r) => r.violations);
  }

  private loopOf(id: NodeId, core: RaftCore): ReadyLoop {
    const onSave = this.options.onSave;
    const disk: ReadyStorage = onSave ? { ...NO_DISK, save: (w) => onSave(id, w) } : NO_DISK;
    const sink: MessageSink = { send: (messages) => this.outbox.push(...messages) };
    const recorder = new DurabilityRecorder(id, disk, sink, this.options.throwOnDurabilityViolation ?? true);
    this.recorders.set(id, recorder);
    return new ReadyLoop({
      core,
      storage: recorder.storage,
      transport: recorder.transport,
      onReady: recorder.onReady,
      testOnlyBugSendBeforePersist: this.options.loopBugs?.sendBeforePersist === true,
      testOnlyBugHardStateAfterSend: this.options.loopBugs?.hardStateAfterSend === true,
      applier: {
        restoreSnapshot: () => {},
        applyEntry: (e) => void this.applied.get(id)?.push(e),
        afterAdvance: (rd) => {
          if (rd.readStates.length > 0) this.readStates.set(id, [...(this.readStates.get(id) ?? []), ...rd.readStates]);
        },
      },
      readiesPerPassMax: 1000,
    });
  }

  /**
   * Replaces `id` with a new core started from `persisted` (what the test says its disk still
   * holds, e.g. a log cut short) and these config fields (recovery, bugs, logger); its applied
   * record starts empty. The other cores keep their view of it (a leader's progress included), as
   * after a real restart.
   */
  restartNode(id: NodeId, persisted: PersistedState, config: Partial<Omit<RaftConfigInput, "id">> = {}): RaftCore {
    if (!this.nodes.has(id)) throw new Error(`no node ${id}`);
    const core = new RaftCore(makeRaftConfig({ id, random: new SeededRandom(this.restarts++ + 1000), ...config }), persisted);
    this.nodes.set(id, core);
    this.applied.set(id, []);
    this.loops.set(id, this.loopOf(id, core));
    return core;
  }

  /** Processes Readys and delivers messages until nothing moves. */
  stabilize(roundsMax = 1000): void {
    for (let round = 0; round < roundsMax; round++) {
      this.outbox = [];
      for (const [id, n] of this.nodes) {
        const loop = this.loops.get(id);
        if (!loop) throw new Error(`no Ready loop for ${id}`);
        while (loop.process() > 0);
        const st = n.status();
        if (st.role === "leader") this.leaderOfTerm.set(st.term, id);
      }
      const outbox = this.outbox;
      if (outbox.length === 0) return;
      for (const m of outbox) {
        if (this.cut.has(`${m.from}-${m.to}`)) continue;
        this.nodes.get(m.to)?.step(m);
      }
    }
    throw new Error("cluster did not stabilize");
  }

  /** Runs one node's Ready loop until it is quiet; returns what it sent, undelivered. */
  processOnly(id: NodeId): Message[] {
    const loop = this.loops.get(id);
    if (!loop) throw new Error(`no Ready loop for ${id}`);
    const held = this.outbox;
    this.outbox = [];
    while (loop.process() > 0);
    const sent = this.outbox;
    this.outbox = held;
    return sent;
  }

  /** Hands one message to its addressee now (a test choosing the order of events). */
  deliver(m: Message): void {
    this.node(m.to).step(m);
  }

  tickAll(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      for (const n of this.nodes.values()) n.tick();
      this.stabilize();
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}-${other}`);
      this.cut.add(`${other}-${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.status().role === "leader").map((n) => n.id);
  }
}
