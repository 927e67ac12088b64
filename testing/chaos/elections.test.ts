// The elections workload's checks on hand-made bad (and good) event lists, and one short run on
// three tenured processes with a kill -9 of the Raft leader: zero violations.

import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { SeededRandom } from "../../server/core/random.ts";
import { ProcessCluster } from "../itest/process_cluster.ts";
import type { TestClient } from "../itest/test_client.ts";
import { until } from "../itest/wait.ts";
import {
  checkElectionFinal,
  checkElectionRealTimeOrder,
  checkElections,
  checkElectionTokensUnique,
  checkLeadershipExclusion,
  checkObservedProvenance,
  checkObserverOrder,
} from "./check_elections.ts";
import { probeElection, runElections, type ElectionEvent, type Outcome } from "./elections.ts";

const camp = (
  client: number,
  inv: number,
  cmp: number,
  token: number | undefined,
  value: string,
  outcome: Outcome = "ok",
): ElectionEvent => ({
  type: "campaign",
  client,
  inv,
  cmp,
  outcome,
  value,
  ...(token !== undefined ? { token } : {}),
});
const proc = (client: number, inv: number, token: number, value: string, outcome: Outcome = "ok"): ElectionEvent => ({
  type: "proclaim",
  client,
  inv,
  cmp: inv + 1,
  outcome,
  token,
  value,
});
const obs = (observer: number, at: number, token: number | null, value: string | null): ElectionEvent => ({
  type: "observe",
  observer,
  at,
  name: "e",
  token,
  value,
});
const resign = (client: number, token: number, heldFrom: number, heldUntil: number): ElectionEvent => ({
  type: "resign",
  client,
  inv: heldUntil,
  cmp: heldUntil + 1,
  outcome: "ok",
  token,
  heldFrom,
  heldUntil,
});

// Two leaders one after the other, the first proclaiming twice; both observers follow along.
const good: ElectionEvent[] = [
  camp(0, 0, 10, 5, "c0-0"),
  obs(0, 11, 5, "c0-0"),
  proc(0, 20, 5, "c0-0.p1"),
  obs(0, 22, 5, "c0-0.p1"),
  proc(0, 30, 5, "c0-0.p2", "info"),
  resign(0, 5, 10, 40),
  obs(0, 45, null, null),
  camp(1, 5, 50, 7, "c1-0"),
  obs(1, 51, 7, "c1-0"),
  obs(0, 52, 7, "c1-0"),
  resign(1, 7, 50, 60),
  camp(2, 55, 70, undefined, "c2-0", "info"),
  obs(0, 72, 9, "c2-0"),
];

describe("election checks catch bad histories", () => {
  it("stay quiet on a good history", () => {
    assert.deepEqual(checkElections(good), []);
    assert.deepEqual(checkElectionFinal(good, { probeToken: 12, leaderToken: 12 }), []);
  });

  it("flag a token granted twice", () => {
    assert.equal(checkElectionTokensUnique([camp(0, 0, 1, 4, "a"), camp(1, 2, 3, 4, "b")]).length, 1);
  });

  it("flag a real-time inversion, not overlapping campaigns", () => {
    assert.equal(checkElectionRealTimeOrder([camp(0, 0, 1, 5, "a"), camp(1, 2, 3, 4, "b")]).length, 1);
    assert.equal(checkElectionRealTimeOrder([camp(0, 0, 3, 5, "a"), camp(1, 2, 4, 4, "b")]).length, 0);
  });

  it("flag an observer going back to an older leader, to a left token, or to an older value", () => {
    assert.equal(checkObserverOrder([...good, obs(1, 80, 5, "c0-0.p1")]).length, 1, "older token");
    assert.equal(checkObserverOrder([...good, obs(1, 80, null, null), obs(1, 81, 7, "c1-0")]).length, 1, "left token again");
    assert.equal(
      checkObserverOrder([camp(0, 0, 1, 5, "a"), proc(0, 2, 5, "a.p1"), obs(0, 4, 5, "a.p1"), obs(0, 5, 5, "a")]).length,
      1,
      "older value",
    );
  });

  it("flag observed values and tokens nobody campaigned with or proclaimed", () => {
    assert.equal(checkObservedProvenance([...good, obs(1, 80, 7, "c1-9")]).length, 1, "invented value");
    assert.equal(
      checkObservedProvenance([camp(0, 0, 1, 5, "a"), proc(0, 2, 5, "a.p1", "fail"), obs(0, 4, 5, "a.p1")]).length,
      1,
      "failed proclaim",
    );
    assert.equal(checkObservedProvenance([camp(0, 0, 1, 5, "a", "fail"), obs(0, 4, 5, "a")]).length, 1, "failed campaign");
    assert.equal(
      checkObservedProvenance([camp(0, 0, 1, undefined, "a", "info"), obs(0, 4, 5, "a"), obs(1, 5, 6, "a")]).length,
      1,
      "one campaign, two tokens",
    );
    assert.equal(checkObservedProvenance([obs(0, 1, 5, "a"), camp(0, 2, 3, 5, "a")]).length, 1, "seen before invoked");
  });

  it("flag overlapping leadership beliefs, not adjacent ones", () => {
    assert.equal(checkLeadershipExclusion([resign(0, 5, 10, 40), resign(1, 7, 39, 60)]).length, 1);
    assert.equal(checkLeadershipExclusion([resign(0, 5, 10, 40), resign(1, 7, 40, 60)]).length, 0);
  });

  it("flag a healed cluster that grants nothing, an old token, or shows another leader", () => {
    assert.equal(checkElectionFinal(good, { probeToken: null, probeError: "NO_LEADER", leaderToken: null }).length, 1);
    assert.equal(checkElectionFinal(good, { probeToken: 9, leaderToken: 9 }).length, 1, "9 was observed");
    assert.equal(checkElectionFinal(good, { probeToken: 12, leaderToken: 7 }).length, 1);
  });
});

type Obj = Record<string, unknown>;

/** The member whose Cluster.Status says it leads (asked directly, no redirect). */
async function raftLeader(cluster: ProcessCluster, status: TestClient): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const m of cluster.members) {
      const r = await status.callAt<Obj>(m.clientAddress, "Cluster", "Status", {}, 500);
      if (r.ok && r.value["role"] === "leader") return m.id;
    }
    await sleep(50);
  }
  throw new Error("no Raft leader");
}

describe("elections on three tenured processes", () => {
  it("a run with a kill -9 of the Raft leader shows no violations", { timeout: 60_000 }, async () => {
    const cluster = await ProcessCluster.start({ tickMs: 20, electionTimeoutTicks: 10 });
    const status = cluster.testClient();
    const stop = new AbortController();
    const random = new SeededRandom(23);
    const live: ElectionEvent[] = [];
    const running = runElections({
      endpoints: cluster.endpoints(),
      security: cluster.clientSecurity(),
      name: "e",
      campaigners: 3,
      observers: 2,
      seed: 23,
      random: random.fork(),
      ttlMs: 2000,
      stop: stop.signal,
      onEvent: (e) => live.push(e),
    });
    const ackedSince = (from = 0): number => live.slice(from).filter((e) => e.type === "campaign" && e.outcome === "ok").length;
    const observedSince = (from = 0): number => live.slice(from).filter((e) => e.type === "observe" && e.token !== null).length;
    try {
      // Waits on what the workload did, not on the clock (generous budgets: a loaded machine).
      await until("leaders elected and observed before the kill", 30_000, () => ackedSince() >= 2 && observedSince() >= 2, 50);
      const leader = await raftLeader(cluster, status);
      await cluster.kill9(leader);
      const atKill = live.length;
      await until("the election served while the Raft leader is down", 30_000, () => ackedSince(atKill) + observedSince(atKill) >= 1, 50);
      await cluster.startMember(leader, { bootstrap: false });
      const atRestart = live.length;
      await until(
        "a leader elected and observed after the restart",
        30_000,
        () => ackedSince(atRestart) >= 1 && observedSince(atRestart) >= 1,
        50,
      );
      stop.abort();
      const stoppedAt = performance.now();
      const events = await running;
      // Generous: stopping aborts every call in flight; it must not wait out their timeouts.
      assert.ok(performance.now() - stoppedAt < 10_000, "the workload stops promptly");
      const final = await probeElection({
        endpoints: cluster.endpoints(),
        security: cluster.clientSecurity(),
        name: "e",
        ttlMs: 2000,
        clientId: `e-final-${Date.now()}`,
        random,
      });
      assert.deepEqual([...checkElections(events), ...checkElectionFinal(events, final)], []);
      const acked = events.filter((e) => e.type === "campaign" && e.outcome === "ok").length;
      const observed = events.filter((e) => e.type === "observe" && e.token !== null).length;
      assert.ok(acked >= 3, `${acked} acknowledged campaigns`);
      assert.ok(observed >= 3, `${observed} observed leaders`);
    } finally {
      stop.abort();
      await running.catch(() => []);
      status.close();
      await cluster.stopAll();
    }
  });
});
