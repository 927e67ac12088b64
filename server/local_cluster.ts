// `npm start` until the lock service lands (issue 3): three Raft voters in one process, each on
// its own SQLite store, joined by an in-process transport. It runs the real core and the real
// storage through the Ready contract (persist in one transaction, then send, then apply, then
// advance), commits a stream of entries, and resumes from disk when started again.
//
//   npm start -- [--data-dir DIR] [--duration-ms N]

import { randomInt } from "node:crypto";
import { join, resolve } from "node:path";
import { bootstrapState } from "./core/bootstrap.ts";
import { makeRaftConfig } from "./core/config.ts";
import type { Message } from "./core/messages.ts";
import { SeededRandom } from "./core/random.ts";
import { RaftCore } from "./core/raft.ts";
import type { Ready } from "./core/ready.ts";
import type { NodeId } from "./core/types.ts";
import { SqliteStorage } from "./storage/sqlite_storage.ts";

const ids: readonly NodeId[] = ["a", "b", "c"];
const tickMs = 10;
const proposeEveryMs = 100;
const statusEveryMs = 1000;
const snapshotEveryEntries = 1000;

interface LocalNode {
  readonly id: NodeId;
  readonly storage: SqliteStorage;
  readonly core: RaftCore;
}

function parseArgs(argv: readonly string[]): { dataDir: string; durationMs: number } {
  let dataDir = "data/local";
  let durationMs = Infinity;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === "--data-dir" && value) (dataDir = value), i++;
    else if (arg === "--duration-ms" && value && Number(value) > 0) (durationMs = Number(value)), i++;
    else throw new Error(`unknown or incomplete argument: ${arg ?? ""} (use --data-dir DIR, --duration-ms N)`);
  }
  return { dataDir: resolve(dataDir), durationMs };
}

/** Opens every store; bootstraps a new cluster only when all three are empty. */
function openNodes(dataDir: string, seed: number): LocalNode[] {
  const stores = ids.map((id) => ({ id, storage: SqliteStorage.open({ dataDir: join(dataDir, id) }) }));
  const fresh = stores.filter((s) => s.storage.identity() === null);
  if (fresh.length > 0 && fresh.length < stores.length) {
    for (const s of stores) s.storage.close();
    // A member whose disk was wiped forgot its votes and log: under its old id it could help
    // elect a second leader in a term, or lose committed entries (Raft thesis §3.8).
    const wiped = fresh.map((s) => s.id).join(", ");
    throw new Error(`data for ${wiped} is missing while the others hold a cluster: refusing to rejoin it under the old id`);
  }
  const clusterId = `local-${seed.toString(16)}`;
  const random = new SeededRandom(seed);
  return stores.map(({ id, storage }) => {
    if (fresh.length > 0) {
      storage.setIdentity({ clusterId, nodeId: id });
      storage.save({ hardState: null, snapshot: bootstrapState(ids).snapshot, entries: [] });
    }
    const identity = storage.identity();
    if (identity?.nodeId !== id) throw new Error(`${storage.dataDir} belongs to ${identity?.nodeId ?? "nobody"}, not ${id}`);
    const persisted = storage.load();
    const appliedIndex = persisted.snapshot?.metadata.index ?? 0;
    const core = new RaftCore(makeRaftConfig({ id, random: random.fork(), appliedIndex }), persisted);
    return { id, storage, core };
  });
}

class LocalCluster {
  private readonly inbox: Message[] = [];
  private proposals = 0;
  private leaderSeen = "";

  constructor(private readonly nodes: readonly LocalNode[]) {}

  tick(): void {
    for (const n of this.nodes) n.core.tick();
    this.drain();
  }

  propose(): void {
    const leader = this.nodes.find((n) => n.core.status().role === "leader");
    if (!leader) return;
    leader.core.propose(new TextEncoder().encode(`entry-${++this.proposals}`));
    this.drain();
  }

  /** Ready cycles and in-process delivery until every node is quiet (bounded). */
  private drain(): void {
    for (let round = 0; round < 100; round++) {
      for (const n of this.nodes) {
        while (n.core.hasReady()) this.handleReady(n, n.core.ready());
      }
      const batch = this.inbox.splice(0);
      if (batch.length === 0) return;
      for (const m of batch) this.nodes.find((n) => n.id === m.to)?.core.step(m);
    }
  }

  private handleReady(n: LocalNode, rd: Ready): void {
    // 1. persist in one durable transaction, 2. send, 3. apply, 4. advance.
    n.storage.save({ hardState: rd.hardState, snapshot: rd.snapshot, entries: rd.entries });
    this.inbox.push(...rd.messages);
    if (rd.softState?.role === "leader" && this.leaderSeen !== `${n.id}/${rd.softState.term}`) {
      this.leaderSeen = `${n.id}/${rd.softState.term}`;
      log({ event: "leader", node: n.id, term: rd.softState.term });
    }
    n.core.advance(rd);
    const s = n.core.status();
    const snapIndex = n.core.latestSnapshot()?.metadata.index ?? 0;
    if (s.applied - snapIndex >= snapshotEveryEntries) {
      const snapshot = n.core.createSnapshot(new TextEncoder().encode(JSON.stringify({ applied: s.applied })));
      n.storage.saveSnapshotAndCompact(snapshot);
    }
  }

  status(): void {
    const nodes = this.nodes.map((n) => {
      const s = n.core.status();
      return { id: n.id, role: s.role, term: s.term, commit: s.commit, applied: s.applied, lastIndex: s.lastIndex };
    });
    log({ event: "status", nodes });
  }

  close(): void {
    for (const n of this.nodes) n.storage.close();
  }
}

function log(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ timeMs: Date.now(), ...fields }));
}

function main(): void {
  const { dataDir, durationMs } = parseArgs(process.argv.slice(2));
  const seed = randomInt(2 ** 31);
  const cluster = new LocalCluster(openNodes(dataDir, seed));
  log({ event: "started", dataDir, voters: ids, note: "Raft foundation demo; the gRPC lock service arrives with issue 3" });
  const timers = [
    setInterval(() => cluster.tick(), tickMs),
    setInterval(() => cluster.propose(), proposeEveryMs),
    setInterval(() => cluster.status(), statusEveryMs),
  ];
  let stopped = false;
  const stop = (why: string): void => {
    if (stopped) return;
    stopped = true;
    for (const t of timers) clearInterval(t);
    cluster.status();
    cluster.close();
    log({ event: "stopped", why });
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
  if (Number.isFinite(durationMs)) setTimeout(() => stop("duration elapsed"), durationMs);
}

try {
  main();
} catch (err) {
  console.error(JSON.stringify({ event: "fatal", error: err instanceof Error ? err.message : String(err) }));
  process.exitCode = 1;
}
