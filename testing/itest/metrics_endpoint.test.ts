// The metrics and health endpoints of real tenured and tenure-witness processes (issue 15 points
// 1 and 2): every member runs --metrics-listen 127.0.0.1:0 and reports the address it bound in
// its "started" line (metricsAddress). Scraped over HTTP and read with the same text parser as
// the unit tests: exactly one member says it leads and all name the same leader; a lock grant
// raises the commit index and the Lock/Acquire request counter by one; the state tables, fsync
// timings, RTT and the leader's per-peer lag are live; /readyz is 200 on every member and the
// standard gRPC health service on the client port (mutual TLS) answers SERVING; reflection answers
// only on the member started with --grpc-reflection (UNIMPLEMENTED elsewhere). A member cut from
// the quorum (its peer links cut at per-link proxies) turns 503 with the reason and NOT_SERVING
// while the two others stay ready, and recovers when healed. kill -9 of the leader: is_leader sums
// to 1 again after the election, leader changes rose, the dead member's lag shows on the new
// leader. Then a witness's scrape: Raft and storage metrics, no state tables, ready with applied 0.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { channelCredentials } from "../../client-sdk/tls.ts";
import { healthServiceDefinition } from "../../server/health/grpc_health.ts";
import { parseExposition, type Sample, samplesOf, sampleValue } from "../kits/prom_text.ts";
import { ProcessCluster } from "./process_cluster.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import type { CallResult, TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

const TICK_MS = 20;
const ELECTION_TIMEOUT_MS = 10 * TICK_MS;
/** Generous bounds for a loaded 2-core machine (an election takes a few timeouts). */
const LEADER_BOUND_MS = 15_000;
/** A cut-off follower stops being ready within about an election timeout; generous here. */
const QUORUM_LOSS_BOUND_MS = 50 * ELECTION_TIMEOUT_MS;
const ACQUIRE = "/tenure.v1.Lock/Acquire";

type Obj = Record<string, unknown>;

function ok<T>(r: CallResult<T>, what: string): T {
  if (!r.ok) assert.fail(`${what}: ${grpc.status[r.code]} ${r.reason} ${r.details}`);
  return r.value;
}

/** The metricsAddress of the member's current process (its last "started" line). */
function metricsAddress(cluster: ProcessCluster, id: string): string {
  const started = (cluster.logs.get(id) ?? []).filter((l) => l.includes('"event":"started"')).pop();
  if (started === undefined) throw new Error(`${id} has not started`);
  const address = (JSON.parse(started.slice(started.indexOf("{"))) as Obj)["metricsAddress"];
  if (typeof address !== "string") throw new Error(`${id}'s started line has no metricsAddress: ${started}`);
  return address;
}

/** The sum of the samples named `name` with `labels`; 0 when there is none (a counter child not
 *  yet created). */
function total(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samplesOf(samples, name, labels).reduce((sum, x) => sum + x.value, 0);
}

async function get(address: string, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://${address}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: r.status, body: await r.text() };
}

async function scrape(cluster: ProcessCluster, id: string): Promise<Sample[]> {
  const r = await get(metricsAddress(cluster, id), "/metrics");
  assert.equal(r.status, 200, `${id} /metrics`);
  return parseExposition(r.body);
}

async function readyz(cluster: ProcessCluster, id: string): Promise<{ status: number; body: string }> {
  return get(metricsAddress(cluster, id), "/readyz");
}

/** grpc.health.v1.Health/Check on the member's client port, over the cluster's mutual TLS. */
function healthCheck(cluster: ProcessCluster, id: string, service = ""): Promise<string> {
  const check = healthServiceDefinition["Check"];
  if (check === undefined) throw new Error("no Check");
  const client = new grpc.Client(cluster.member(id).clientAddress, channelCredentials(cluster.clientSecurity()));
  return new Promise<string>((resolve) => {
    client.makeUnaryRequest(
      check.path,
      check.requestSerialize,
      (bytes: Buffer) => check.responseDeserialize(bytes) as { status: string },
      { service },
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (error: grpc.ServiceError | null, response?: { status: string }) => {
        client.close();
        resolve(error ? `error ${grpc.status[error.code]}` : (response?.status ?? ""));
      },
    );
  });
}

const reflectionProto = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..", "proto");

/** The services member `id` lists through grpc.reflection.v1, or the error's code name. */
function listServices(cluster: ProcessCluster, id: string): Promise<string[] | string> {
  const pkg = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [reflectionProto], keepCase: true });
  const service = pkg["grpc.reflection.v1.ServerReflection"] as Record<string, grpc.MethodDefinition<object, object>>;
  const def = service["ServerReflectionInfo"];
  if (def === undefined) throw new Error("no ServerReflectionInfo");
  const client = new grpc.Client(cluster.member(id).clientAddress, channelCredentials(cluster.clientSecurity()));
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, new grpc.Metadata(), {
      deadline: Date.now() + 5_000,
    });
    const done = (v: string[] | string): void => {
      client.close();
      resolve(v);
    };
    call.on("data", (r: { list_services_response?: { service: { name: string }[] } }) => {
      done((r.list_services_response?.service ?? []).map((x) => x.name));
      call.end();
    });
    call.on("error", (e: grpc.ServiceError) => done(grpc.status[e.code] ?? String(e.code)));
    call.write({ list_services: "" });
  });
}

describe("metrics and health endpoints of three real voters", () => {
  const ids = ["a", "b", "c"];
  let cluster: ProcessCluster;
  let client: TestClient;
  /** One proxy per directed peer link, to cut a member off. */
  const proxies = new Map<string, TcpProxy>();
  const link = (from: string, to: string): TcpProxy => {
    const p = proxies.get(`${from}->${to}`);
    if (!p) throw new Error(`no proxy ${from}->${to}`);
    return p;
  };
  before(async () => {
    cluster = await ProcessCluster.create({
      tickMs: TICK_MS,
      peerRoute: (from, to) => link(from, to.id).address,
      extraFlags: ["--metrics-listen", "127.0.0.1:0"],
      // Reflection on c only: off by default on a and b.
      perMemberFlags: (id) => (id === "c" ? ["--grpc-reflection"] : []),
    });
    for (const from of ids) {
      for (const to of ids) if (to !== from) proxies.set(`${from}->${to}`, await TcpProxy.start(() => cluster.peerTarget(to)));
    }
    await cluster.startAll();
    client = cluster.testClient();
  });
  after(async () => {
    client?.close();
    await cluster?.stopAll();
    await Promise.all([...proxies.values()].map((p) => p.close()));
  });

  it("/healthz is 200 at once; /readyz becomes 200 on every member; exactly one reports itself leader", async () => {
    for (const id of ids) assert.equal((await get(metricsAddress(cluster, id), "/healthz")).status, 200);
    await until("every member ready", LEADER_BOUND_MS, async () => {
      for (const id of ids) if ((await readyz(cluster, id)).status !== 200) return false;
      return true;
    });
    const scrapes = await until("one leader, named by all", LEADER_BOUND_MS, async () => {
      const all = await Promise.all(ids.map((id) => scrape(cluster, id)));
      const leaders = all.map((s) => sampleValue(s, "tenure_is_leader"));
      const named = all.map((s) => samplesOf(s, "tenure_leader")[0]?.labels["leader_id"]);
      return leaders.reduce((x, y) => x + y, 0) === 1 && new Set(named).size === 1 && named[0] !== undefined ? all : false;
    });
    const leaderIndex = scrapes.findIndex((s) => sampleValue(s, "tenure_is_leader") === 1);
    const leader = ids[leaderIndex];
    for (const s of scrapes) {
      assert.equal(samplesOf(s, "tenure_leader")[0]?.labels["leader_id"], leader);
      assert.equal(sampleValue(s, "tenure_has_leader"), 1);
      assert.equal(sampleValue(s, "tenure_recovering"), 0);
      assert.ok(sampleValue(s, "tenure_term") >= 1);
      assert.ok(sampleValue(s, "tenure_leader_changes_total") >= 1);
      assert.ok(sampleValue(s, "process_resident_memory_bytes") > 0, "process metrics");
    }
    assert.equal(sampleValue(scrapes[leaderIndex] ?? [], "tenure_role", { role: "leader" }), 1);
    assert.equal(await client.leaderId(), leader);
  });

  it("a lock grant raises the commit index and the Lock/Acquire counter; tables, proposals, fsync and peers are live", async () => {
    const leader = await client.leaderId();
    const before = await Promise.all(ids.map((id) => scrape(cluster, id)));
    const acquiresBefore = before.map((s) => total(s, "tenure_requests_total", { method: ACQUIRE, code: "OK" }));
    const commitBefore = sampleValue(before[ids.indexOf(leader)] ?? [], "tenure_commit_index");

    const lease = ok(await client.callSameSeq<Obj>("Lease", "Grant", { clientId: "m1", seq: 1, ttlMs: 30_000 }), "grant");
    const got = ok(
      await client.callSameSeq<Obj>("Lock", "Acquire", { clientId: "m1", seq: 3, name: "jobs/metrics", leaseId: lease["leaseId"] }),
      "acquire",
    );
    assert.ok(Number(got["token"]) > 0, "a fencing token");

    const after = await until("the grant applied everywhere", 10_000, async () => {
      const all = await Promise.all(ids.map((id) => scrape(cluster, id)));
      return all.every((s) => sampleValue(s, "tenure_locks_held") === 1) ? all : false;
    });
    const leaderAfter = after[ids.indexOf(leader)] ?? [];
    const commitAfter = sampleValue(leaderAfter, "tenure_commit_index");
    assert.ok(commitAfter >= commitBefore + 2, `commit index ${commitBefore} -> ${commitAfter} (a grant and an acquire)`);
    // The Acquire answered OK was counted once, by the member that answered it (the leader).
    const acquiresAfter = after.map((s) => total(s, "tenure_requests_total", { method: ACQUIRE, code: "OK" }));
    assert.equal(
      acquiresAfter.reduce((x, y) => x + y, 0),
      acquiresBefore.reduce((x, y) => x + y, 0) + 1,
      `Acquire OK per member ${acquiresBefore} -> ${acquiresAfter}`,
    );
    assert.equal((acquiresAfter[ids.indexOf(leader)] ?? 0) - (acquiresBefore[ids.indexOf(leader)] ?? 0), 1);
    assert.ok(sampleValue(leaderAfter, "tenure_request_duration_seconds_count", { method: ACQUIRE, code: "OK" }) >= 1);
    for (const s of after) {
      assert.equal(sampleValue(s, "tenure_leases_active"), 1);
      assert.ok(sampleValue(s, "tenure_fencing_token_last") > 0);
      assert.ok(sampleValue(s, "tenure_tokens_issued_total", { table: "lock" }) >= 1);
      assert.ok(sampleValue(s, "tenure_applied_index") >= commitBefore + 2);
      assert.ok(sampleValue(s, "tenure_storage_save_seconds_count") > 0, "fsync timings");
      assert.ok(sampleValue(s, "tenure_peer_messages_received_total") > 0);
      assert.equal(sampleValue(s, "tenure_leader_conflicts_total"), 0);
    }
    assert.ok(sampleValue(leaderAfter, "tenure_proposals_total", { outcome: "applied" }) >= 2);
    assert.ok(sampleValue(leaderAfter, "tenure_proposal_apply_seconds_count") >= 2);
    assert.ok(sampleValue(leaderAfter, "tenure_leases_granted_total") >= 1);
    assert.ok(sampleValue(leaderAfter, "tenure_peer_messages_sent_total") > 0);
    const peers = ids.filter((id) => id !== leader);
    for (const p of peers) {
      assert.ok(sampleValue(leaderAfter, "tenure_peer_rtt_seconds_count", { peer: p }) > 0, `rtt to ${p}`);
      assert.equal(samplesOf(leaderAfter, "tenure_peer_replication_lag_entries", { peer: p }).length, 1);
    }
  });

  it("the gRPC health service answers SERVING on every member's client port; reflection only with --grpc-reflection", async () => {
    for (const id of ids) {
      assert.equal(await healthCheck(cluster, id), "SERVING", id);
      assert.equal(await healthCheck(cluster, id, "tenure.v1.Lock"), "SERVING", id);
    }
    assert.equal(await listServices(cluster, "a"), "UNIMPLEMENTED");
    const listed = await listServices(cluster, "c");
    assert.ok(Array.isArray(listed), String(listed));
    for (const name of ["tenure.v1.Lock", "tenure.v1.Lease", "grpc.health.v1.Health"])
      assert.ok(listed.includes(name), `${name} in ${listed}`);
  });

  it("a member cut from the quorum: its /readyz is 503 with the reason and its gRPC health NOT_SERVING, the others stay ready; healed: ready again", async () => {
    const leader = await client.leaderId();
    const cutOff = ids.find((id) => id !== leader) ?? "";
    for (const other of ids.filter((id) => id !== cutOff)) {
      link(cutOff, other).cut();
      link(other, cutOff).cut();
    }
    try {
      const notReady = await until(`${cutOff} not ready once cut off`, QUORUM_LOSS_BOUND_MS, async () => {
        const r = await readyz(cluster, cutOff);
        return r.status === 503 ? r : false;
      });
      assert.match(notReady.body, /^not ready: (no leader|campaigning)/);
      await until(`${cutOff}'s gRPC health NOT_SERVING`, 5_000, async () => (await healthCheck(cluster, cutOff)) === "NOT_SERVING");
      assert.equal((await get(metricsAddress(cluster, cutOff), "/healthz")).status, 200, "alive all the same");
      assert.equal(sampleValue(await scrape(cluster, cutOff), "tenure_has_leader"), 0);
      for (const id of ids.filter((x) => x !== cutOff)) {
        assert.equal((await readyz(cluster, id)).status, 200, `${id} keeps its quorum`);
        assert.equal(await healthCheck(cluster, id), "SERVING", id);
      }
    } finally {
      for (const other of ids.filter((id) => id !== cutOff)) {
        link(cutOff, other).heal();
        link(other, cutOff).heal();
      }
    }
    await until(`${cutOff} ready again once healed`, LEADER_BOUND_MS, async () => (await readyz(cluster, cutOff)).status === 200);
    await until(`${cutOff} SERVING again`, 5_000, async () => (await healthCheck(cluster, cutOff)) === "SERVING");
  });

  it("kill -9 of the leader: after the election is_leader sums to 1, leader changes rose, the dead member's lag is on the new leader, both ready", async () => {
    const leader = await client.leaderId();
    const survivors = ids.filter((id) => id !== leader);
    const changesBefore = await Promise.all(
      survivors.map(async (id) => sampleValue(await scrape(cluster, id), "tenure_leader_changes_total")),
    );
    await cluster.kill9(leader);
    const scrapes = await until("a new leader among the two left", LEADER_BOUND_MS, async () => {
      const all = await Promise.all(survivors.map((id) => scrape(cluster, id)));
      return all.map((x) => sampleValue(x, "tenure_is_leader")).reduce((x, y) => x + y, 0) === 1 ? all : false;
    });
    const newLeader = survivors[scrapes.findIndex((x) => sampleValue(x, "tenure_is_leader") === 1)] ?? "";
    await until("both survivors saw the new leadership", 5_000, async () => {
      const changes = await Promise.all(survivors.map(async (id) => sampleValue(await scrape(cluster, id), "tenure_leader_changes_total")));
      return changes.every((c, i) => c > (changesBefore[i] ?? 0));
    });
    // Entries the dead member misses: its lag on the new leader.
    const lease = ok(await client.callSameSeq<Obj>("Lease", "Grant", { clientId: "m2", seq: 1, ttlMs: 30_000 }), "grant");
    ok(
      await client.callSameSeq<Obj>("Lock", "Acquire", { clientId: "m2", seq: 3, name: "jobs/after-kill", leaseId: lease["leaseId"] }),
      "acquire",
    );
    const lag = await until(`${leader}'s lag on ${newLeader}`, 10_000, async () => {
      const x = await scrape(cluster, newLeader);
      const v = total(x, "tenure_peer_replication_lag_entries", { peer: leader });
      return v >= 2 ? v : false;
    });
    assert.ok(lag >= 2, `lag ${lag}`);
    for (const id of survivors) {
      assert.equal((await readyz(cluster, id)).status, 200, `${id} /readyz with the old leader dead`);
      assert.equal(await healthCheck(cluster, id), "SERVING", id);
    }
    await assert.rejects(get(metricsAddress(cluster, leader), "/healthz"), "the dead member's port is gone");
  });
  it("the metrics port answers only GET on its three paths", async () => {
    const address = metricsAddress(cluster, await client.leaderId());
    assert.equal((await get(address, "/debug")).status, 404);
    const post = await fetch(`http://${address}/metrics`, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
  });
});

describe("metrics of a real tenure-witness", () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({
      ids: ["a", "b", "w"],
      witnesses: ["w"],
      tickMs: TICK_MS,
      extraFlags: ["--metrics-listen", "127.0.0.1:0"],
    });
  });
  after(() => cluster.stopAll());

  it("the witness is ready once it knows the voter leading; its scrape has Raft and storage metrics and no state tables", async () => {
    await until("the witness ready", LEADER_BOUND_MS, async () => (await readyz(cluster, "w")).status === 200);
    const s = await until("a leader known to the witness", LEADER_BOUND_MS, async () => {
      const x = await scrape(cluster, "w");
      return sampleValue(x, "tenure_has_leader") === 1 && sampleValue(x, "tenure_commit_index") > 0 ? x : false;
    });
    assert.equal(sampleValue(s, "tenure_applied_index"), 0, "a witness applies nothing");
    assert.ok(sampleValue(s, "tenure_term") >= 1);
    assert.ok(sampleValue(s, "tenure_last_index") >= sampleValue(s, "tenure_commit_index"));
    assert.ok(sampleValue(s, "tenure_storage_save_seconds_count") > 0, "the witness fsyncs its log");
    assert.ok(sampleValue(s, "tenure_peer_messages_received_total") > 0);
    assert.equal(samplesOf(s, "tenure_leases_active").length, 0, "no state machine, no state tables");
    assert.equal(samplesOf(s, "tenure_proposals_total").length, 0);
    const voters = await Promise.all(["a", "b"].map((id) => scrape(cluster, id)));
    const leading = [...voters, s].map((x) => sampleValue(x, "tenure_is_leader"));
    assert.equal(
      leading.reduce((x, y) => x + y, 0),
      1,
      `is_leader a, b, w: ${leading}`,
    );
    assert.equal(sampleValue(s, "tenure_witness_leading"), leading[2] === 1 ? 1 : 0);
    assert.equal(await healthCheck(cluster, "w"), "SERVING", "the witness's client port serves grpc.health.v1 too");
  });
});
