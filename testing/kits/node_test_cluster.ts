// Three (or more) RaftNodes on MemoryStorage with a synchronous in-test network and a manual
// clock, pumped by hand: the node loop's unit-test harness. Real gRPC and SQLite are covered
// by the process-level tests.

import { bootstrapState } from "../../server/core/bootstrap.ts";
import { makeRaftConfig } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { RaftStorage, StorageWrite } from "../../server/storage/raft_storage.ts";
import { stateConfig } from "../../server/state/limits.ts";
import { MemoryDisk, MemoryStorage } from "../../server/storage/memory_storage.ts";
import type { PeerAddress, PeerTransport, PeerTransportStats } from "../../server/transport/peer_transport.ts";
import { RaftNode } from "../../server/node/raft_node.ts";

export const TICK_MS = 10;

class TestTransport implements PeerTransport {
  handler: (m: Message) => void = () => {};
  constructor(private readonly net: TestNetwork) {}
  send(messages: readonly Message[]): void {
    this.net.queue.push(...messages);
  }
  onMessage(handler: (m: Message) => void): void {
    this.handler = handler;
  }
  setPeers(_peers: readonly PeerAddress[]): void {}
  stats(): PeerTransportStats {
    return { sentMessages: 0, droppedMessages: 0, receivedMessages: 0, rejectedBatches: 0 };
  }
  async close(): Promise<void> {}
}

/**
 * `memory` given saveInBackground (RaftNodeOptions.backgroundWrites): the write is made at once,
 * its "fsync" returns when the cluster releases it (NodeCluster.releaseWrites, or the next pump
 * round), as SqliteStorage's returns from the thread pool.
 */
function withHeldWrites(memory: MemoryStorage, held: ((error: Error | null) => void)[]): RaftStorage {
  return Object.assign(memory, {
    saveInBackground: (write: StorageWrite, done: (error: Error | null) => void): void => {
      memory.save(write);
      held.push(done);
    },
  });
}

class TestNetwork {
  readonly queue: Message[] = [];
  readonly down = new Set<NodeId>();
}

export class NodeCluster {
  nowMs = 0;
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly disks = new Map<NodeId, MemoryDisk>();
  private readonly net = new TestNetwork();
  private readonly transports = new Map<NodeId, TestTransport>();
  private readonly random = new SeededRandom(7);
  /** Background writes whose "fsync" has not returned yet, per node (limits.backgroundWrites). */
  readonly heldWrites = new Map<NodeId, ((error: Error | null) => void)[]>();
  /** requestProcess() calls per node since start. */
  readonly processRequests = new Map<NodeId, number>();

  constructor(
    readonly ids: readonly NodeId[],
    readonly lockDelayMs = 1000,
    private readonly limits: {
      readonly pendingMax?: number;
      readonly overloadRetryAfterMs?: number;
      /** RaftNodeOptions.renewalCoalesceTicks; absent: the node's default (the heartbeat interval). */
      readonly renewalCoalesceTicks?: number;
      /** RaftNodeOptions.backgroundWrites on a storage whose background writes wait for releaseWrites(). */
      readonly backgroundWrites?: boolean;
    } = {},
  ) {
    for (const id of ids) {
      const disk = new MemoryDisk();
      const storage = MemoryStorage.open(disk);
      storage.save({ hardState: null, snapshot: bootstrapState(ids).snapshot, entries: [] });
      this.disks.set(id, disk);
      this.start(id);
    }
  }

  /** (Re)starts a node from its disk. */
  start(id: NodeId): RaftNode {
    const disk = this.disks.get(id);
    if (!disk) throw new Error(`no disk for ${id}`);
    const transport = new TestTransport(this.net);
    const held: ((error: Error | null) => void)[] = [];
    this.heldWrites.set(id, held);
    this.processRequests.set(id, 0);
    const memory = MemoryStorage.open(disk);
    const node = new RaftNode({
      raftConfig: makeRaftConfig({ id, random: this.random.fork() }),
      storage: this.limits.backgroundWrites === true ? withHeldWrites(memory, held) : memory,
      ...(this.limits.backgroundWrites === true ? { backgroundWrites: true } : {}),
      transport,
      clock: { monotonicMs: () => this.nowMs },
      stateConfig: stateConfig({ lockDelayMs: this.lockDelayMs }),
      snapshotEveryEntries: 50,
      pendingMax: this.limits.pendingMax ?? 1000,
      ...(this.limits.overloadRetryAfterMs === undefined ? {} : { overloadRetryAfterMs: this.limits.overloadRetryAfterMs }),
      ...(this.limits.renewalCoalesceTicks === undefined ? {} : { renewalCoalesceTicks: this.limits.renewalCoalesceTicks }),
      memberAddresses: new Map(this.ids.map((x) => [x, `127.0.0.1:${x}`])),
      requestProcess: () => this.processRequests.set(id, (this.processRequests.get(id) ?? 0) + 1),
      log: () => {},
    });
    this.nodes.set(id, node);
    this.transports.set(id, transport);
    this.net.down.delete(id);
    return node;
  }

  node(id: NodeId): RaftNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** kill -9: the process is gone; its disk stays. */
  kill(id: NodeId): void {
    this.node(id).stop();
    this.net.down.add(id);
  }

  /** Every held background write of `id` (all nodes when absent) returns, in order. */
  releaseWrites(id?: NodeId): number {
    let released = 0;
    for (const [node, held] of this.heldWrites) {
      if (id !== undefined && node !== id) continue;
      for (const done of held.splice(0)) {
        done(null);
        released++;
      }
    }
    return released;
  }

  pump(roundsMax = 200): void {
    for (let round = 0; round < roundsMax; round++) {
      const released = this.releaseWrites();
      for (const [id, n] of this.nodes) if (!this.net.down.has(id)) n.process();
      const batch = this.net.queue.splice(0);
      if (batch.length === 0 && released === 0 && [...this.heldWrites.values()].every((h) => h.length === 0)) return;
      for (const m of batch) {
        if (this.net.down.has(m.to) || this.net.down.has(m.from)) continue;
        this.transports.get(m.to)?.handler(m);
      }
    }
  }

  /** Advances the clock by `ms`, ticking every live node each TICK_MS. */
  advance(ms: number): void {
    for (let t = 0; t < ms; t += TICK_MS) {
      this.nowMs += TICK_MS;
      for (const [id, n] of this.nodes) if (!this.net.down.has(id)) n.tick();
      this.pump();
    }
  }

  leader(): RaftNode | undefined {
    return [...this.nodes.entries()].find(([id, n]) => !this.net.down.has(id) && n.status().role === "leader")?.[1];
  }

  /** Settles a promise-returning call by pumping until it resolves. */
  async settle<T>(p: Promise<T>, msMax = 2000): Promise<T> {
    let done = false;
    void p.then(() => (done = true));
    for (let t = 0; t < msMax && !done; t += TICK_MS) {
      this.pump();
      await Promise.resolve();
      if (!done) this.advance(TICK_MS);
      await new Promise((r) => setImmediate(r));
    }
    return p;
  }
}
