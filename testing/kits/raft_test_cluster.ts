// A minimal synchronous in-memory cluster for core unit tests: deliver every message at once,
// in order, with optional drops. Each core runs the production Ready loop
// (server/node/ready_loop.ts) with nothing on disk (no restart here) and an applier that records
// committed entries and read states. The simulator (testing/sim) is the adversarial version.

import { bootstrapState } from "../../server/core/bootstrap.ts";
import { makeRaftConfig, type BugSwitches, NO_BUGS } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { ReadState } from "../../server/core/ready.ts";
import type { Entry, NodeId } from "../../server/core/types.ts";
import { ReadyLoop, type ReadyStorage } from "../../server/node/ready_loop.ts";

/** Nothing survives here: the kit never restarts a node. */
const NO_DISK: ReadyStorage = { save: () => {}, saveSnapshotAndCompact: () => {} };

export class TestCluster {
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly cut = new Set<string>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** term -> leader, as observed after every Ready (scenario assertions). */
  readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly loops = new Map<NodeId, ReadyLoop>();
  private outbox: Message[] = [];

  constructor(ids: readonly NodeId[], seed = 1, bugs: BugSwitches = NO_BUGS, witnesses: readonly NodeId[] = []) {
    const random = new SeededRandom(seed);
    for (const id of ids) {
      const config = makeRaftConfig({ id, random: random.fork(), bugs });
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

  private loopOf(id: NodeId, core: RaftCore): ReadyLoop {
    return new ReadyLoop({
      core,
      storage: NO_DISK,
      transport: { send: (messages) => this.outbox.push(...messages) },
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
