// Member incarnations on real tenured processes over mutual TLS (issue 13 point 3): a follower
// restarted on its own data directory is accepted; the same follower wiped and restarted with
// --bootstrap under its old id is refused by the two others (their logs say
// peer_incarnation_refused; their term and leader do not move; it never leads, never receives an
// entry, and is not counted: with the other follower stopped the leader alone with it commits
// nothing), and it logs why; RemoveMember then AddMember with a fresh data directory brings the id
// back, and it catches up.

import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import type { TestClient } from "./test_client.ts";
import { sleep, until } from "./wait.ts";

type Obj = Record<string, unknown>;

function events(cluster: ProcessCluster, id: string, event: string): Obj[] {
  const lines = cluster.logs.get(id) ?? [];
  return lines.filter((l) => l.includes(`"event":"${event}"`)).map((l) => JSON.parse(l.slice(l.indexOf("{"))) as Obj);
}

function incarnationOf(cluster: ProcessCluster, id: string): string {
  const line = readFileSync(join(cluster.dataDir(id), "incarnation"), "utf8");
  const m = /"incarnation":"([0-9a-f]{32})"/.exec(line);
  assert.ok(m?.[1], `no incarnation in ${line}`);
  return m[1];
}

describe("member incarnations on real tenured processes", { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  let admin: TestClient;
  let seq = 0;
  /** The follower that is restarted, wiped and re-added; `other` is the third member. */
  let victim = "";
  let other = "";
  let leader = "";

  const status = async (id: string): Promise<Obj | null> => {
    const r = await admin.callAt<Obj>(cluster.member(id).clientAddress, "Cluster", "Status", {}, 2_000);
    return r.ok ? r.value : null;
  };
  const grant = async (budgetMs = 10_000): Promise<boolean> =>
    (await admin.callSameSeq<Obj>("Lease", "Grant", { clientId: "incarnation-itest", seq: ++seq, ttlMs: 60_000 }, budgetMs)).ok;

  before(async () => {
    cluster = await ProcessCluster.start();
    admin = cluster.testClient(cluster.endpoints(), ADMIN_CLIENT_IDENTITY);
    leader = await admin.leaderId(20_000);
    const followers = cluster.members.map((m) => m.id).filter((id) => id !== leader);
    victim = followers[0] ?? "";
    other = followers[1] ?? "";
    for (let i = 0; i < 5; i++) assert.ok(await grant(), "grant");
  });
  after(async () => {
    admin?.close?.();
    await cluster?.stopAll();
  });

  it("every member learns the others' incarnations, followers too (they greet with nothing to send)", async () => {
    for (const m of cluster.members) {
      await until(`${m.id} records both peers`, 20_000, () => {
        const peers = new Set(events(cluster, m.id, "peer_incarnation_recorded").map((f) => f["peer"]));
        return peers.size === 2 && !peers.has(m.id);
      });
    }
    const recorded = events(cluster, other, "peer_incarnation_recorded").find((f) => f["peer"] === victim);
    assert.equal(recorded?.["incarnation"], incarnationOf(cluster, victim));
  });

  it("a restart on the same data directory is accepted", async () => {
    const before = incarnationOf(cluster, victim);
    await cluster.stop(victim);
    assert.ok(await grant(), "grant while it is down");
    await cluster.startMember(victim, { bootstrap: false });
    assert.equal(incarnationOf(cluster, victim), before);
    const target = Number((await status(leader))?.["commitIndex"]);
    await until(`${victim} catches up after its restart`, 30_000, async () => Number((await status(victim))?.["appliedIndex"]) >= target);
    for (const id of [leader, other]) assert.deepEqual(events(cluster, id, "peer_incarnation_refused"), [], id);
    assert.deepEqual(events(cluster, victim, "incarnation_refused_by_peer"), []);
  });

  it("wiped and restarted with --bootstrap under its old id: refused by both others, never counted, and it says why", async () => {
    const old = incarnationOf(cluster, victim);
    const before = { leader: await status(leader), other: await status(other) };
    await cluster.stop(victim);
    rmSync(cluster.dataDir(victim), { recursive: true, force: true });
    await cluster.startMember(victim, { bootstrap: true });
    const wiped = incarnationOf(cluster, victim);
    assert.notEqual(wiped, old);

    for (const id of [leader, other]) {
      const line = await until(`${id} refuses ${victim}`, 20_000, () =>
        events(cluster, id, "peer_incarnation_refused").find((f) => f["peer"] === victim && f["claimed"] === wiped),
      );
      assert.equal(line["remembered"], old);
      assert.match(String(line["reason"]), /its data directory was wiped or replaced; it must rejoin as a new member/);
    }
    const told = await until(`${victim} logs that both refuse it`, 20_000, () => {
      const lines = events(cluster, victim, "incarnation_refused_by_peer");
      const by = new Set(lines.map((f) => f["peer"]));
      return by.has(leader) && by.has(other) ? lines : null;
    });
    assert.match(String(told[0]?.["reason"]), new RegExp(`this member \\(${victim}\\) was wiped and is refused by`));

    // Several election timeouts (200 ms each) while grants go on through the other two.
    for (let i = 0; i < 10; i++) {
      assert.ok(await grant(), "grant while the wiped member campaigns");
      const v = await status(victim);
      assert.notEqual(v?.["role"], "leader");
      assert.equal(Number(v?.["lastIndex"]), 0, "the wiped member never received an entry");
      await sleep(150);
    }
    const afterward = { leader: await status(leader), other: await status(other) };
    for (const k of ["leader", "other"] as const) {
      assert.equal(afterward[k]?.["term"], before[k]?.["term"], `${k}'s term did not move`);
      assert.equal(afterward[k]?.["leaderId"], leader, `${k}'s leader did not move`);
    }

    // Not counted: with the other follower down, the leader and the wiped member commit nothing.
    await cluster.stop(other);
    const commitBefore = Number((await status(leader))?.["commitIndex"]);
    assert.equal(await grant(3_000), false, "a grant with only the leader and the refused member");
    const l = await status(leader);
    assert.equal(Number(l?.["commitIndex"] ?? commitBefore), commitBefore, "no commit with the refused member");
    assert.notEqual((await status(victim))?.["role"], "leader");
    await cluster.startMember(other, { bootstrap: false });
    assert.ok(await grant(20_000), "a grant once the other follower is back");
  });

  it("RemoveMember then AddMember with a fresh data directory brings the id back; it catches up", async () => {
    const removed = await admin.call<Obj>("Cluster", "RemoveMember", { nodeId: victim }, 20_000);
    assert.ok(removed.ok, JSON.stringify(removed));
    leader = await admin.leaderId(20_000);
    const survivors = cluster.members.map((m) => m.id).filter((id) => id !== victim);
    for (const id of survivors) {
      await until(`${id} applied the removal`, 20_000, async () => {
        const cs = (await status(id))?.["confState"] as Obj | undefined;
        const all = [...((cs?.["voters"] as string[]) ?? []), ...((cs?.["votersOutgoing"] as string[]) ?? [])];
        return cs !== undefined && all.length > 0 && !all.includes(victim);
      });
      await until(`${id} forgets ${victim}'s incarnation`, 10_000, () =>
        events(cluster, id, "peer_incarnations_forgotten").some((f) => (f["peers"] as string[]).includes(victim)),
      );
    }
    await cluster.stop(victim);
    rmSync(cluster.dataDir(victim), { recursive: true, force: true });
    await cluster.startMember(victim, { bootstrap: true });
    const fresh = incarnationOf(cluster, victim);
    const added = await until("AddMember", 30_000, async () => {
      const r = await admin.call<Obj>("Cluster", "AddMember", { nodeId: victim }, 10_000);
      return r.ok ? r : null;
    });
    assert.ok(added.ok);
    for (const id of survivors) {
      await until(`${id} records the new incarnation`, 20_000, () =>
        events(cluster, id, "peer_incarnation_recorded").some((f) => f["peer"] === victim && f["incarnation"] === fresh),
      );
    }
    assert.ok(await grant(), "grant after the re-add");
    const target = Number((await status(leader))?.["commitIndex"]);
    await until(`${victim} catches up`, 30_000, async () => Number((await status(victim))?.["appliedIndex"]) >= target);
    const cs = (await status(leader))?.["confState"] as Obj;
    assert.ok((cs["voters"] as string[]).includes(victim), JSON.stringify(cs));
  });
});

// tenure-witness carries and checks incarnations with the same transport: a wiped witness
// restarted with --bootstrap under its old id is refused by both voters, and says why.
describe("a wiped witness", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let admin: TestClient;

  before(async () => {
    cluster = await ProcessCluster.start({ ids: ["a", "b", "w"], witnesses: ["w"] });
    admin = cluster.testClient([cluster.member("a").clientAddress, cluster.member("b").clientAddress], ADMIN_CLIENT_IDENTITY);
  });
  after(async () => {
    admin?.close();
    await cluster?.stopAll();
  });

  it("is refused by both voters under its old id; the voters keep serving", async () => {
    assert.ok((await admin.call<Obj>("Lease", "Grant", { clientId: "incarnation-w", seq: 1, ttlMs: 60_000 }, 20_000)).ok);
    for (const id of ["a", "b"]) {
      await until(`${id} records w`, 20_000, () => events(cluster, id, "peer_incarnation_recorded").some((f) => f["peer"] === "w"));
    }
    await until(
      "w records a and b",
      20_000,
      () => new Set(events(cluster, "w", "peer_incarnation_recorded").map((f) => f["peer"])).size === 2,
    );
    const old = incarnationOf(cluster, "w");
    await cluster.stop("w");
    rmSync(cluster.dataDir("w"), { recursive: true, force: true });
    await cluster.startMember("w", { bootstrap: true });
    const wiped = incarnationOf(cluster, "w");
    assert.notEqual(wiped, old);
    for (const id of ["a", "b"]) {
      await until(`${id} refuses the wiped witness`, 20_000, () =>
        events(cluster, id, "peer_incarnation_refused").some((f) => f["peer"] === "w" && f["remembered"] === old && f["claimed"] === wiped),
      );
    }
    await until("w logs that both refuse it", 20_000, () => {
      const by = new Set(events(cluster, "w", "incarnation_refused_by_peer").map((f) => f["peer"]));
      return by.has("a") && by.has("b");
    });
    assert.ok((await admin.call<Obj>("Lease", "Grant", { clientId: "incarnation-w", seq: 2, ttlMs: 60_000 }, 20_000)).ok);
  });
});
