// The blocking waits (wait_grant.ts, Election.Observe) on a member that catches up by
// InstallSnapshot: the entries the snapshot covers are never applied there and emit no events,
// so a waiter queued on that member must learn its grant from the restored state. And the retry
// of a blocking call whose wait the server withdrew itself. Three real RaftNodes on MemoryStorage
// with a synchronous in-test network that can cut one member off.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bootstrapState } from "../core/bootstrap.ts";
import { makeRaftConfig } from "../core/config.ts";
import type { Message } from "../core/messages.ts";
import { SeededRandom } from "../core/random.ts";
import type { NodeId } from "../core/types.ts";
import type { SubmitOutcome } from "../node/node_api.ts";
import { RaftNode } from "../node/raft_node.ts";
import type { ClientCommand } from "../state/commands.ts";
import { stateConfig } from "../state/limits.ts";
import { MemoryDisk, MemoryStorage } from "../storage/memory_storage.ts";
import type { PeerTransport, PeerTransportStats } from "../transport/peer_transport.ts";
import { electionService, type LeaderUpdate } from "./election_service.ts";
import type { CallContext, ServiceDeps } from "./handler_kit.ts";
import { ApiError } from "./status_map.ts";
import { acquireBlocking, type Grant } from "./wait_grant.ts";

const TICK_MS = 10;
const SNAPSHOT_EVERY_ENTRIES = 10;
const CONFIG = stateConfig({ lockDelayMs: 0 });

/** Three RaftNodes, a message queue pumped by hand, and a cut that isolates one member. */
class Cluster {
  nowMs = 0;
  readonly nodes = new Map<NodeId, RaftNode>();
  private readonly handlers = new Map<NodeId, (m: Message) => void>();
  private readonly queue: Message[] = [];
  /** Messages from or to this member are dropped. */
  cut: NodeId | null = null;

  constructor(readonly ids: readonly NodeId[]) {
    const random = new SeededRandom(11);
    for (const id of ids) {
      const disk = new MemoryDisk();
      MemoryStorage.open(disk).save({ hardState: null, snapshot: bootstrapState(ids).snapshot, entries: [] });
      const transport: PeerTransport = {
        send: (messages) => this.queue.push(...messages),
        onMessage: (handler) => this.handlers.set(id, handler),
        setPeers: () => {},
        stats: (): PeerTransportStats => ({ sentMessages: 0, droppedMessages: 0, receivedMessages: 0, rejectedBatches: 0 }),
        close: async () => {},
      };
      const node = new RaftNode({
        raftConfig: makeRaftConfig({ id, random: random.fork() }),
        storage: MemoryStorage.open(disk),
        transport,
        clock: { monotonicMs: () => this.nowMs },
        stateConfig: CONFIG,
        snapshotEveryEntries: SNAPSHOT_EVERY_ENTRIES,
        pendingMax: 1000,
        memberAddresses: new Map(ids.map((x) => [x, `127.0.0.1:${x}`])),
        requestProcess: () => {},
        log: () => {},
      });
      this.nodes.set(id, node);
    }
  }

  private pump(): void {
    for (let round = 0; round < 200; round++) {
      for (const n of this.nodes.values()) n.process();
      const batch = this.queue.splice(0);
      if (batch.length === 0) return;
      for (const m of batch) if (this.cut !== m.from && this.cut !== m.to) this.handlers.get(m.to)?.(m);
    }
  }

  /** Advances the clock by `ms`, ticking every node each TICK_MS, and lets promise continuations run. */
  async advance(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += TICK_MS) {
      this.nowMs += TICK_MS;
      for (const n of this.nodes.values()) n.tick();
      this.pump();
      await new Promise((r) => setImmediate(r));
    }
  }

  leader(): RaftNode {
    const leaders = [...this.nodes.values()].filter((n) => n.status().role === "leader" && n.id !== this.cut);
    assert.equal(leaders.length, 1, "one leader expected");
    return leaders[0]!;
  }

  async submit(node: RaftNode, command: ClientCommand): Promise<Record<string, unknown>> {
    const p = node.submit(command);
    let outcome: SubmitOutcome | null = null;
    void p.then((o) => (outcome = o));
    for (let t = 0; t < 2000 && outcome === null; t += TICK_MS) await this.advance(TICK_MS);
    const o = outcome as SubmitOutcome | null;
    assert.ok(o?.kind === "applied" && o.result.ok, JSON.stringify(o));
    return o.result as unknown as Record<string, unknown>;
  }

  /** Counts the snapshots `member` restores (the test's premise: it catches up by InstallSnapshot). */
  restoresOf(member: NodeId): { count: number } {
    const counter = { count: 0 };
    this.nodes.get(member)?.subscribe(
      () => {},
      () => counter.count++,
    );
    return counter;
  }

  /** Cuts `member` off; the others elect a leader among themselves. */
  async isolate(member: NodeId): Promise<RaftNode> {
    this.cut = member;
    for (let t = 0; t < 3000; t += TICK_MS) {
      await this.advance(TICK_MS);
      const others = [...this.nodes.values()].filter((n) => n.id !== member && n.status().role === "leader");
      if (others.length === 1 && this.nodes.get(member)?.status().role !== "leader") return others[0]!;
    }
    throw new Error("no leader elected without the isolated member");
  }

  /** Entries enough for the leader to snapshot and compact past what an isolated member holds. */
  async fill(leader: RaftNode, clientId: string, leaseId: number, fromSeq: number): Promise<void> {
    for (let seq = fromSeq; seq < fromSeq + 3 * SNAPSHOT_EVERY_ENTRIES; seq++) {
      await this.submit(leader, { kind: "LeaseKeepAlive", clientId, seq, leaseIds: [leaseId] });
    }
  }
}

function deps(node: RaftNode): ServiceDeps {
  return { node, config: CONFIG, observeBufferMax: 64, appliedStreams: { open: 0, max: 64 }, keepAlivePendingMax: 64 };
}

function callContext(): CallContext {
  return { rpc: "test", signal: new AbortController().signal, deadlineAtMs: null };
}

async function elected(): Promise<Cluster> {
  const c = new Cluster(["a", "b", "c"]);
  for (let t = 0; t < 3000 && ![...c.nodes.values()].some((n) => n.status().role === "leader"); t += TICK_MS) await c.advance(TICK_MS);
  await c.advance(100);
  return c;
}

async function lease(c: Cluster, leader: RaftNode, clientId: string): Promise<number> {
  return (await c.submit(leader, { kind: "LeaseGrant", clientId, seq: 1, ttlMs: 600_000 }))["leaseId"] as number;
}

describe("blocking waits on a member that catches up by InstallSnapshot", () => {
  it("a queued Acquire gets the grant the snapshot covers", async () => {
    const c = await elected();
    const first = c.leader();
    const holder = await lease(c, first, "p");
    const waiter = await lease(c, first, "q");
    const held = await c.submit(first, { kind: "LockAcquire", clientId: "p", seq: 2, name: "db", leaseId: holder, wait: false });
    let answer: Grant | Error | null = null;
    const command = { kind: "LockAcquire" as const, clientId: "q", seq: 2, name: "db", leaseId: waiter, wait: true };
    acquireBlocking(deps(first), callContext(), { table: "lock", command, timeoutMs: 0 }).then(
      (g) => (answer = g),
      (e: Error) => (answer = e),
    );
    await c.advance(200);
    assert.equal(answer, null, "queued behind the holder");
    // The waiter's member falls behind: the release and the hand-off to the waiter commit without it.
    const restores = c.restoresOf(first.id);
    const second = await c.isolate(first.id);
    await c.submit(second, { kind: "LockRelease", clientId: "p", seq: 3, name: "db", token: held["token"] as number });
    await c.fill(second, "p", holder, 4);
    c.cut = null;
    await c.advance(500);
    assert.equal(restores.count, 1, "caught up by a snapshot");
    assert.equal(first.status().appliedIndex, second.status().appliedIndex, "the member caught up");
    const status = second.stateMachine().lockStatus("db");
    assert.equal(status.holder?.leaseId, waiter);
    const got = answer as Grant | Error | null;
    assert.ok(got !== null, "the waiter was never answered");
    assert.ok(!(got instanceof Error), String(got));
    assert.equal(got.token, status.holder?.token);
    assert.equal(got.leaseId, waiter);
  });

  it("a queued Acquire whose lease ended in the snapshot's entries is answered LEASE_NOT_FOUND", async () => {
    const c = await elected();
    const first = c.leader();
    const holder = await lease(c, first, "p");
    const waiter = await lease(c, first, "q");
    await c.submit(first, { kind: "LockAcquire", clientId: "p", seq: 2, name: "db", leaseId: holder, wait: false });
    let answer: Grant | Error | null = null;
    const command = { kind: "LockAcquire" as const, clientId: "q", seq: 2, name: "db", leaseId: waiter, wait: true };
    acquireBlocking(deps(first), callContext(), { table: "lock", command, timeoutMs: 0 }).then(
      (g) => (answer = g),
      (e: Error) => (answer = e),
    );
    await c.advance(200);
    const restores = c.restoresOf(first.id);
    const second = await c.isolate(first.id);
    await c.submit(second, { kind: "LeaseRevoke", clientId: "q", seq: 3, leaseId: waiter });
    await c.fill(second, "p", holder, 3);
    c.cut = null;
    await c.advance(500);
    assert.equal(restores.count, 1, "caught up by a snapshot");
    const got = answer as Grant | Error | null;
    assert.ok(got instanceof Error, `answered ${JSON.stringify(got)}`);
    assert.match(got.message, /lease .* is gone/);
  });

  it("an Observe stream sends the leader the snapshot's entries elected", async () => {
    const c = await elected();
    const first = c.leader();
    const candidate = await lease(c, first, "p");
    const updates: LeaderUpdate[] = [];
    const call = {
      request: { name: "e" },
      on: () => call,
      write: (update: LeaderUpdate, cb?: () => void) => {
        updates.push(update);
        cb?.();
        return true;
      },
      emit: (_event: string, status: unknown) => {
        throw new Error(`Observe failed: ${JSON.stringify(status)}`);
      },
    };
    const observe = electionService(deps(first))["Observe"] as unknown as (c: typeof call) => void;
    observe(call);
    await c.advance(200);
    assert.equal(updates.length, 1);
    assert.equal(updates[0]!.hasLeader, false);
    const restores = c.restoresOf(first.id);
    const second = await c.isolate(first.id);
    const won = await c.submit(second, { kind: "ElectionCampaign", clientId: "p", seq: 2, name: "e", leaseId: candidate, value: "v1" });
    await c.fill(second, "p", candidate, 4);
    c.cut = null;
    await c.advance(500);
    assert.equal(restores.count, 1, "caught up by a snapshot");
    assert.equal(first.status().appliedIndex, second.status().appliedIndex, "the member caught up");
    const last = updates.at(-1);
    assert.ok(last?.hasLeader, `updates: ${JSON.stringify(updates)}`);
    assert.equal(last.leader?.token, won["token"]);
    assert.equal(last.leader?.value, "v1");
  });
});

/** Runs acquireBlocking while the cluster's clock advances; its answer, or the error it threw. */
async function blocking(
  c: Cluster,
  node: RaftNode,
  command: ClientCommand & { kind: "LockAcquire" },
  signal?: AbortSignal,
): Promise<Grant | Error> {
  let answer: Grant | Error | null = null;
  const ctx = { ...callContext(), ...(signal ? { signal } : {}) };
  acquireBlocking(deps(node), ctx, { table: "lock", command, timeoutMs: 0 }).then(
    (g) => (answer = g),
    (e: Error) => (answer = e),
  );
  for (let t = 0; t < 2000 && answer === null; t += TICK_MS) await c.advance(TICK_MS);
  const got = answer as Grant | Error | null;
  assert.ok(got !== null, "never answered");
  return got;
}

function reasonOf(answer: Grant | Error): string {
  assert.ok(answer instanceof ApiError, `answered ${answer instanceof Error ? answer.message : JSON.stringify(answer)}`);
  return answer.detail.reason;
}

/**
 * An elected cluster whose lease of "p" holds "db", a lease of "q", and q's blocking Acquire of
 * "db" under seq 2 (not yet sent); releaseByP() hands the lock on.
 */
async function heldByP() {
  const c = await elected();
  const leader = c.leader();
  const holder = await lease(c, leader, "p");
  const waiter = await lease(c, leader, "q");
  const held = await c.submit(leader, { kind: "LockAcquire", clientId: "p", seq: 2, name: "db", leaseId: holder, wait: false });
  const command = { kind: "LockAcquire" as const, clientId: "q", seq: 2, name: "db", leaseId: waiter, wait: true };
  const releaseByP = () => c.submit(leader, { kind: "LockRelease", clientId: "p", seq: 3, name: "db", token: held["token"] as number });
  return { c, leader, waiter, command, releaseByP };
}

// A blocking call cut on the server's side (its connection reset) is withdrawn with WaitCancel at
// seq + 1; the client's retry under seq then meets a session past it. errors.proto promises
// WAIT_CANCELLED there (or the grant, if it won the race), not STALE_SEQUENCE, which the SDK can
// only report as OUTCOME_UNKNOWN (found by the cert-rotation test: a reset during a lock()).
describe("the retry of a blocking call whose wait the server withdrew", () => {
  it("is answered WAIT_CANCELLED when nothing was granted", async () => {
    const { c, leader, command } = await heldByP();
    const cut = new AbortController();
    setTimeout(() => cut.abort(), 0);
    assert.equal(reasonOf(await blocking(c, leader, command, cut.signal)), "CANCELLED");
    assert.deepEqual(leader.stateMachine().sessionLast("", "q")?.lastSeq, 3, "withdrawn under seq + 1");
    assert.equal(reasonOf(await blocking(c, leader, command)), "WAIT_CANCELLED");
    assert.deepEqual(leader.stateMachine().lockStatus("db").waiters, [], "not queued again");
  });

  it("returns the grant when it won the race with the withdrawal", async () => {
    const { c, leader, waiter, command, releaseByP } = await heldByP();
    await c.submit(leader, command);
    await releaseByP();
    // The grant to q applied; then the cut call's withdrawal, which finds no wait left.
    const withdrawal = { kind: "WaitCancel" as const, clientId: "q", seq: 3, table: "lock" as const, name: "db", leaseId: waiter };
    assert.equal((await c.submit(leader, withdrawal))["cancelled"], false);
    const got = await blocking(c, leader, command);
    assert.ok(!(got instanceof Error), String(got));
    const status = leader.stateMachine().lockStatus("db");
    assert.equal(status.holder?.leaseId, waiter);
    assert.equal(got.token, status.holder?.token);
    assert.equal(got.replayed, true);
  });

  it("a handoff answers the waiter from its grant event: the lease's validity, and no read round", async () => {
    const { c, leader, waiter, command, releaseByP } = await heldByP();
    let reads = 0;
    const read = leader.read.bind(leader);
    leader.read = ((query, options) => {
      reads += 1;
      return read(query, options);
    }) as typeof leader.read;
    const answer = blocking(c, leader, command);
    await c.advance(100);
    await releaseByP();
    const got = await answer;
    assert.ok(!(got instanceof Error), String(got));
    assert.equal(reads, 0, "no ReadIndex round for the validity");
    const info = leader.stateMachine().leaseTimeToLive(waiter);
    assert.equal(got.validUntil?.serverDeadlineMs, info?.serverDeadlineMs);
    assert.equal(got.validUntil?.ttlMs, 600_000);
  });

  it("a replayed queued call whose lease is gone does not claim it was never granted", async () => {
    const { c, leader, waiter, command, releaseByP } = await heldByP();
    await c.submit(leader, command); // queued; its answer lost
    await releaseByP();
    assert.equal(leader.stateMachine().lockStatus("db").holder?.leaseId, waiter, "granted, unknown to its client");
    await c.submit(leader, { kind: "LeaseRevoke", clientId: "r", seq: 1, leaseId: waiter, admin: true });
    const got = await blocking(c, leader, command);
    assert.equal(reasonOf(got), "LEASE_NOT_FOUND");
    assert.match((got as Error).message, /may have been granted before it ended/);
  });

  it("stays STALE_SEQUENCE when the session moved past it with another request", async () => {
    const { c, leader, waiter, command } = await heldByP();
    await c.submit(leader, command);
    // seq + 1 withdraws another name's wait: not this call's withdrawal.
    const other = { kind: "WaitCancel" as const, clientId: "q", seq: 3, table: "lock" as const, name: "other", leaseId: waiter };
    await c.submit(leader, other);
    assert.equal(reasonOf(await blocking(c, leader, command)), "STALE_SEQUENCE");
    await c.submit(leader, { kind: "LeaseKeepAlive", clientId: "q", seq: 4, leaseIds: [waiter] });
    assert.equal(reasonOf(await blocking(c, leader, command)), "STALE_SEQUENCE");
  });
});
