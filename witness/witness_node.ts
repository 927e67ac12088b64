// WitnessNode: the witness process's node (DESIGN.md §4). The same pure RaftCore, RaftStorage,
// PeerTransport and Ready loop (server/node/ready_loop.ts) as a voter's RaftNode, with the
// witness rules the core enforces itself once the member is flagged in ConfState.witnesses.
// What differs is the applier, WitnessApplier (the simulator runs the same one):
//   - committed entries are NOT applied (W2): there is no state machine, only a commit index;
//   - after every Ready the log is truncated up to the floor the leader sent (W3), never by a
//     snapshot of its own, and the metadata-only marker is persisted;
// and the node takes no client input at all: no submit, no read, no timers to propose.
// It deliberately imports nothing from server/state or server/api (witness/purity.test.ts).

import { asInvariantViolation } from "../server/core/assert.ts";
import { RaftCore } from "../server/core/raft.ts";
import type { RaftConfig } from "../server/core/config.ts";
import type { Message } from "../server/core/messages.ts";
import type { Ready, Role, SoftState } from "../server/core/ready.ts";
import type { ConfState, Index, NodeId, Snapshot, Term } from "../server/core/types.ts";
import { type Compact, ReadyLoop, type ReadyApplier } from "../server/node/ready_loop.ts";
import type { RaftStorage } from "../server/storage/raft_storage.ts";
import type { PeerTransport } from "../server/transport/peer_transport.ts";

export interface WitnessNodeOptions {
  readonly raftConfig: RaftConfig;
  readonly storage: RaftStorage;
  readonly transport: PeerTransport;
  /** Asks the driver for a process() pass soon (coalesced by ProcessScheduler). */
  readonly requestProcess: () => void;
  readonly log: (fields: Record<string, unknown>) => void;
  /** As RaftNodeOptions.onConfiguration: the applied configuration after every process() pass. */
  readonly onConfiguration?: (confState: ConfState) => void;
}

/** What Cluster.Status reports for a witness. */
export interface WitnessStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly leader: NodeId;
  readonly commitIndex: Index;
  /** Always 0: a witness applies nothing (W2). */
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  /** First index still in the log; everything below was truncated at a floor (W3). */
  readonly firstIndex: Index;
  readonly confState: ConfState;
  /** Recovering lost log data (server/core/raft.ts "Recovery"): no vote, not counted in commits. */
  readonly recovering?: boolean;
}

const readiesPerPassMax = 1000;

export class WitnessNode {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly loop: ReadyLoop;
  private stopped = false;

  constructor(private readonly options: WitnessNodeOptions) {
    this.id = options.raftConfig.id;
    const persisted = options.storage.load();
    // Everything at or below the marker was committed and handed out before; there is nothing to
    // rebuild, so the core starts "applied" at the marker (a voter's snapshot index likewise).
    const appliedIndex = persisted.snapshot?.metadata.index ?? 0;
    this.core = new RaftCore({ ...options.raftConfig, appliedIndex }, persisted);
    const cs = this.core.status().confState;
    // A store rebuilt empty after its raft.db was lost (storage recovery) holds no configuration
    // yet: it learns it, with the witness flag, from the leader's marker.
    const rebuiltEmpty = this.core.recovering() && cs.voters.length === 0 && persisted.snapshot === null;
    if (!rebuiltEmpty && !cs.witnesses.includes(this.id)) {
      // The core applies the witness rules only to a member flagged in the configuration; run
      // without the flag, this process would vote and lead as a full copy it does not have.
      throw new Error(`the stored configuration does not list ${this.id} as a witness (witnesses: ${cs.witnesses.join(",") || "none"})`);
    }
    this.loop = new ReadyLoop({
      core: this.core,
      storage: options.storage,
      transport: options.transport,
      applier: new WitnessApplier(this.id, this.core, options.log),
      readiesPerPassMax,
    });
    options.transport.onMessage((m) => this.receive(m));
  }

  tick(): void {
    if (this.stopped) return;
    this.core.tick();
    this.options.requestProcess();
  }

  receive(message: Message): void {
    if (this.stopped) return;
    try {
      this.core.step(message);
    } catch (err) {
      throw asInvariantViolation(err, `core.step(${message.kind} from ${message.from})`);
    }
    this.options.requestProcess();
  }

  status(): WitnessStatus {
    const s = this.core.status();
    return {
      id: s.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commit,
      appliedIndex: 0,
      lastIndex: s.lastIndex,
      firstIndex: s.firstIndex,
      confState: s.confState,
      recovering: s.recovering,
    };
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs Ready cycles until the core is quiet. Storage failure throws: fatal to the process. */
  process(): void {
    if (this.stopped) return;
    this.loop.process();
    this.options.onConfiguration?.(this.core.status().confState);
  }
}

/**
 * The witness's part of the Ready loop (W1-W3): everything is persisted by the loop before any
 * ack leaves (W1: a commit counted with the witness must survive its crash); nothing is applied
 * (W2); after each advance the log is truncated up to the leader's floor and the metadata-only
 * marker that replaces the prefix is persisted (W3). The simulator runs this same class.
 */
export class WitnessApplier implements ReadyApplier {
  constructor(
    private readonly id: NodeId,
    private readonly core: Pick<RaftCore, "compactWitnessLog">,
    private readonly log: (fields: Record<string, unknown>) => void,
  ) {}

  /** A snapshot from a leader is kept as stored, never restored: there is nothing to restore. */
  restoreSnapshot(snapshot: Snapshot): void {
    this.log({ event: "snapshotReceived", index: snapshot.metadata.index });
  }

  /** W2: nothing to apply; config entries take effect inside the core at advance(). */
  applyEntry(): void {}

  softStateChanged(soft: SoftState): void {
    // A witness leads only to hand over (W5); operators want to see every such term.
    const { role, term, leader } = soft;
    this.log({ event: role === "leader" ? "witnessLeader" : "role", node: this.id, role, term, leader });
  }

  /** W3: truncate up to the leader's floor, never past what this node handed out. */
  afterAdvance(_rd: Ready, compact: Compact): void {
    const marker = this.core.compactWitnessLog();
    if (!marker) return;
    compact(marker, null); // a witness keeps nothing below its marker (W3)
    this.log({ event: "truncated", upTo: marker.metadata.index, term: marker.metadata.term });
  }
}
