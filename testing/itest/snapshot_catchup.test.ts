// A lagging follower catches up by a snapshot far larger than a peer frame (issue 10, item 3), on
// three real tenured processes: stop a follower, grant SNAPSHOT_CATCHUP_LEASES leases through 500
// clients at once, let the leader compact its log past everything the follower has, restart the
// follower, and require that it reaches the leader's applied index through one InstallSnapshot
// transfer (its "snapshot_received" line), with nothing dropped for its size on the way. Before
// chunked snapshots the image was one message above the 4 MiB frame: dropped at every heartbeat,
// and the follower never caught up.
//
// Lease count: 40,000 by default (an image of about 5.3 MB, above the frame; about 1.5 min on a
// loaded 2-core machine, where the grants take most of it). The figure for the lease table at
// leasesMax (100,000 leases, about 13 MB) comes from
//   SNAPSHOT_CATCHUP_LEASES=100000 node --import tsx --test testing/itest/snapshot_catchup.test.ts
// which takes 2.5-3 minutes on that machine: too long for every npm test. The figures (snapshot
// bytes, transfer and catch-up time) are printed as a test diagnostic.

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { after, before, describe, it } from "node:test";
import { ProcessCluster } from "./process_cluster.ts";
import type { TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

const LEASES = Number(process.env["SNAPSHOT_CATCHUP_LEASES"] ?? 40_000);
/** leasesPerClientMax is 1,000: 500 clients, each granting its share one call after another. */
const CLIENTS = 500;
/** Proposals in flight are at most CLIENTS, so one Ready applies at most about this many entries. */
const READY_ENTRIES_MAX = 2 * CLIENTS;
/**
 * The leader snapshots every this many applied entries (--snapshot-every-entries): once, just
 * after the last grant (the grants end near index LEASES), so the image the follower receives holds
 * every lease, and the leader does not carry a large snapshot while it grants. A few filler entries
 * after the grants reach it; the snapshot compacts away everything the follower would need.
 */
const SNAPSHOT_EVERY_ENTRIES = LEASES + 1_000;
const FILLER_UNTIL_INDEX = SNAPSHOT_EVERY_ENTRIES + 2 * READY_ENTRIES_MAX;
/** Above the leases' lifetime in this test: no expiry commands interleave. */
const TTL_MS = 3_600_000;
/** The default peer frame (server/limits.ts PEER_MESSAGE_BYTES_MAX_DEFAULT). */
const PEER_FRAME_BYTES = 4 * 1024 * 1024;

type Obj = Record<string, unknown>;

/** The JSON log lines of `id` whose event is `event`. */
function events(cluster: ProcessCluster, id: string, event: string): Obj[] {
  const lines = cluster.logs.get(id) ?? [];
  return lines.filter((l) => l.includes(`"event":"${event}"`)).map((l) => JSON.parse(l.slice(l.indexOf("{"))) as Obj);
}

async function status(c: TestClient, endpoint: string): Promise<Obj | null> {
  const r = await c.callAt<Obj>(endpoint, "Cluster", "Status", {}, 2_000);
  return r.ok ? r.value : null;
}

/**
 * Calls the leader on its own port (not the test's proxy: the load measures the cluster), and
 * follows a leader change (one shared search, not one per caller); a call whose outcome is unknown
 * is retried with the same seq, which the state machine deduplicates.
 */
class LeaderCaller {
  private endpoint: string;
  private search: Promise<void> | null = null;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly c: TestClient,
    leader: string,
  ) {
    this.endpoint = cluster.bound(leader)?.clientAddress ?? assert.fail(`${leader} is not up`);
  }

  async call(method: "Grant" | "Revoke", request: Obj): Promise<Obj> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const endpoint = this.endpoint;
      const r = await this.c.callAt<Obj>(endpoint, "Lease", method, request, 30_000);
      if (r.ok) return r.value;
      if (r.code === grpc.status.NOT_FOUND) return {}; // a filler Revoke of no lease: still one entry
      if (r.code !== grpc.status.UNAVAILABLE && r.code !== grpc.status.DEADLINE_EXCEEDED) {
        assert.fail(`${method} ${JSON.stringify(request)}: ${grpc.status[r.code]} ${r.reason} ${r.details}`);
      }
      if (this.endpoint === endpoint) {
        this.search ??= this.findLeader().finally(() => (this.search = null));
      }
      await this.search;
    }
    return assert.fail(`${method} ${JSON.stringify(request)}: no answer after 20 attempts`);
  }

  /** Asks every running member (on its own port) until one says it leads. */
  private async findLeader(): Promise<void> {
    this.endpoint = await until(
      "a leader",
      60_000,
      async () => {
        for (const m of this.cluster.members) {
          const bound = this.cluster.bound(m.id)?.clientAddress;
          if (bound === undefined) continue;
          const s = await status(this.c, bound);
          if (s?.["role"] === "leader") return bound;
        }
        return null;
      },
      100,
    );
  }

  async appliedIndex(): Promise<number> {
    return Number((await status(this.c, this.endpoint))?.["appliedIndex"] ?? 0);
  }
}

/** `count` grants by one client, in seq order (one mutating request in flight per client id). */
async function grantAll(leader: LeaderCaller, clientId: string, count: number): Promise<void> {
  for (let seq = 1; seq <= count; seq++) await leader.call("Grant", { clientId, seq, ttlMs: TTL_MS });
}

/** Entries that change nothing but sessions (Revoke of no lease) until the applied index is `index`. */
async function fillUntil(leader: LeaderCaller, index: number): Promise<void> {
  const seqs = Array.from({ length: CLIENTS }, () => 1_000);
  while ((await leader.appliedIndex()) < index) {
    await Promise.all(
      seqs.map((_, i) => leader.call("Revoke", { clientId: `catchup-${i}`, seq: (seqs[i] = (seqs[i] ?? 0) + 1), leaseId: "999999999999" })),
    );
  }
}

describe(`a follower that missed ${LEASES} lease grants catches up by a chunked snapshot`, { timeout: 600_000 }, () => {
  let cluster: ProcessCluster;
  let c: TestClient;

  before(async () => {
    // A 2 s election timeout: a loaded 2-core machine should not turn this into an election test.
    cluster = await ProcessCluster.start({
      tickMs: 50,
      electionTimeoutTicks: 40,
      extraFlags: ["--snapshot-every-entries", String(SNAPSHOT_EVERY_ENTRIES)],
    });
    c = cluster.testClient();
  });

  after(async () => {
    c?.close();
    await cluster?.stopAll();
  });

  it("reaches the leader's applied index through one InstallSnapshot transfer, nothing dropped for size", async (t) => {
    const leader = await c.leaderId(15_000);
    const lagging = cluster.members.map((m) => m.id).find((id) => id !== leader) ?? assert.fail("no follower");
    await cluster.stop(lagging);
    const caller = new LeaderCaller(cluster, c, leader);
    const grantStartMs = performance.now();
    const perClient = Math.ceil(LEASES / CLIENTS);
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => grantAll(caller, `catchup-${i}`, Math.max(0, Math.min(perClient, LEASES - i * perClient)))),
    );
    const grantMs = performance.now() - grantStartMs;
    const lastGrantIndex = await caller.appliedIndex();
    assert.ok(lastGrantIndex >= LEASES, `applied index ${lastGrantIndex} after ${LEASES} grants`);
    await fillUntil(caller, FILLER_UNTIL_INDEX);
    const target = await caller.appliedIndex();

    const restartMs = performance.now();
    await cluster.startMember(lagging, { bootstrap: false });
    const endpoint = cluster.member(lagging).clientAddress;
    await until(
      `${lagging} to apply up to ${target}`,
      180_000,
      async () => Number((await status(c, endpoint))?.["appliedIndex"] ?? 0) >= target,
    );
    const catchUpMs = performance.now() - restartMs;

    const received = events(cluster, lagging, "snapshot_received");
    assert.equal(received.length, 1, `one snapshot transfer reached ${lagging}: ${JSON.stringify(received)}`);
    const snapshot = received[0] ?? assert.fail();
    const bytes = Number(snapshot["bytes"]);
    assert.ok(bytes > PEER_FRAME_BYTES, `the image (${bytes} bytes) is larger than a peer frame`);
    assert.ok(
      Number(snapshot["index"]) >= lastGrantIndex,
      `the snapshot (index ${snapshot["index"]}) holds every lease (last grant at ${lastGrantIndex})`,
    );
    const sent = cluster.members.flatMap((m) => events(cluster, m.id, "snapshot_sent")).filter((e) => e["peer"] === lagging);
    assert.equal(sent.length, 1, `the leader streamed the snapshot once: ${JSON.stringify(sent)}`);
    for (const { id } of cluster.members) {
      assert.deepEqual(events(cluster, id, "message_dropped_too_large"), [], `${id} dropped nothing for its size`);
      assert.deepEqual(events(cluster, id, "snapshot_refused"), [], `${id} refused no snapshot`);
    }
    const figures = {
      leases: LEASES,
      grantSeconds: +(grantMs / 1000).toFixed(1),
      grantsPerSecond: Math.round(LEASES / (grantMs / 1000)),
      snapshotIndex: snapshot["index"],
      snapshotBytes: bytes,
      snapshotMiB: +(bytes / 1024 / 1024).toFixed(1),
      chunks: snapshot["chunks"],
      transferMs: sent[0]?.["durationMs"],
      catchUpMs: Math.round(catchUpMs),
      lastGrantIndex,
      leaderAppliedIndex: target,
    };
    t.diagnostic(`snapshot catch-up: ${JSON.stringify(figures)}`);
  });
});
