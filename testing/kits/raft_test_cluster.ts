// A minimal synchronous in-memory cluster for core unit tests: deliver every message at once,
// in order, with optional drops. The simulator (testing/sim) is the adversarial version.

import { bootstrapState } from "../../server/core/bootstrap.ts";
import { makeRaftConfig, type BugSwitches, NO_BUGS } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { ReadState } from "../../server/core/ready.ts";
import type { Entry, NodeId } from "../../server/core/types.ts";

export class TestCluster {
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly cut = new Set<string>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** term -> leader, as observed after every Ready (scenario assertions). */
  readonly leaderOfTerm = new Map<number, NodeId>();

  constructor(ids: readonly NodeId[], seed = 1, bugs: BugSwitches = NO_BUGS, witnesses: readonly NodeId[] = []) {
    const random = new SeededRandom(seed);
    for (const id of ids) {
      const config = makeRaftConfig({ id, random: random.fork(), bugs });
      this.nodes.set(id, new RaftCore(config, bootstrapState(ids, witnesses)));
      this.applied.set(id, []);
    }
  }

  node(id: NodeId): RaftCore {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Processes Readys and delivers messages until nothing moves. */
  stabilize(roundsMax = 1000): void {
    for (let round = 0; round < roundsMax; round++) {
      const outbox: Message[] = [];
      for (const [id, n] of this.nodes) {
        while (n.hasReady()) {
          const rd = n.ready();
          this.applied.get(id)?.push(...rd.committedEntries);
          outbox.push(...rd.messages);
          if (rd.readStates.length > 0) this.readStates.set(id, [...(this.readStates.get(id) ?? []), ...rd.readStates]);
          n.advance(rd);
        }
        const st = n.status();
        if (st.role === "leader") this.leaderOfTerm.set(st.term, id);
      }
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
