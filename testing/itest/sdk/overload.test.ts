// Overload is not "no leader" (issue 14 point 4), on three real tenured: with room for only two
// requests waiting on the leader (--pending-requests-max 2), a burst of 24 concurrent lease grants
// through the SDK is answered RESOURCE_EXHAUSTED OVERLOADED for what does not fit, and the SDK
// backs off on the leader itself with the same seq instead of rotating to a follower (which would
// only answer NOT_LEADER): every grant succeeds, once each, the leader's request counter shows the
// OVERLOADED answers, and no follower sees a single Lease/Grant during the burst.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TenureClient } from "../../../client-sdk/index.ts";
import { parseExposition, samplesOf } from "../../kits/prom_text.ts";
import { ProcessCluster } from "../process_cluster.ts";

const GRANT = "/tenure.v1.Lease/Grant";
const BURST = 24;

function metricsAddress(cluster: ProcessCluster, id: string): string {
  const started = (cluster.logs.get(id) ?? []).filter((l) => l.includes('"event":"started"')).pop();
  if (started === undefined) throw new Error(`${id} has not started`);
  const address = (JSON.parse(started.slice(started.indexOf("{"))) as Record<string, unknown>)["metricsAddress"];
  if (typeof address !== "string") throw new Error(`${id}'s started line has no metricsAddress`);
  return address;
}

/** tenure_requests_total for Lease/Grant on member `id`, by gRPC code name. */
async function grantsByCode(cluster: ProcessCluster, id: string): Promise<Map<string, number>> {
  const r = await fetch(`http://${metricsAddress(cluster, id)}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(r.status, 200);
  const byCode = new Map<string, number>();
  for (const s of samplesOf(parseExposition(await r.text()), "tenure_requests_total", { method: GRANT })) {
    const code = s.labels["code"] ?? "?";
    byCode.set(code, (byCode.get(code) ?? 0) + s.value);
  }
  return byCode;
}

/** Every member's "leader" log lines (one per member and term it led). */
function leaderLines(cluster: ProcessCluster): string[] {
  return cluster.members.flatMap((m) => (cluster.logs.get(m.id) ?? []).filter((l) => l.includes('"event":"leader"')));
}

const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

describe("a leader with a full request queue (real processes)", () => {
  let cluster: ProcessCluster;
  let client: TenureClient;
  before(async () => {
    cluster = await ProcessCluster.start({ extraFlags: ["--pending-requests-max", "2", "--metrics-listen", "127.0.0.1:0"] });
    client = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(), clientId: "itest-overload" });
  });
  after(async () => {
    client?.close();
    await cluster?.stopAll();
  });

  it("answers OVERLOADED; the SDK waits on the leader and every grant of the burst succeeds once, no follower asked", async () => {
    // Grants first, until one lands OK on the member the cluster names leader: the SDK knows the
    // leader, and that leader has committed in its term (a leader still settling in answers
    // NO_LEADER, and a leader elected just after the first grant would be asked only then).
    const first = await client.grantLease({ ttlMs: 30_000 }, { timeoutMs: 20_000 });
    const probe = cluster.testClient();
    let leaderId: string | null = null;
    const ids = new Set([first.id]);
    for (const deadline = Date.now() + 20_000; leaderId === null && Date.now() < deadline; ) {
      const candidate = await probe.leaderId(15_000);
      const okBefore = (await grantsByCode(cluster, candidate)).get("OK") ?? 0;
      ids.add((await client.grantLease({ ttlMs: 30_000 }, { timeoutMs: 20_000 })).id);
      const okAfter = (await grantsByCode(cluster, candidate)).get("OK") ?? 0;
      if (okAfter === okBefore + 1 && (await probe.leaderId(15_000)) === candidate) leaderId = candidate;
    }
    probe.close();
    assert.ok(leaderId, "a leader that answers the SDK's grants");
    const followers = cluster.members.map((m) => m.id).filter((id) => id !== leaderId);
    const followersBefore = await Promise.all(followers.map(async (id) => sum(await grantsByCode(cluster, id))));
    const leaderBefore = await grantsByCode(cluster, leaderId);
    const delta = (after: Map<string, number>, code: string): number => (after.get(code) ?? 0) - (leaderBefore.get(code) ?? 0);
    const electionsBefore = leaderLines(cluster);

    const leases = await Promise.all(Array.from({ length: BURST }, () => client.grantLease({ ttlMs: 30_000 }, { timeoutMs: 30_000 })));
    const warmUp = ids.size;
    for (const l of leases) ids.add(l.id);
    assert.equal(ids.size, warmUp + BURST, "each grant applied once: as many distinct leases as calls");
    // A leader elected during the burst (a loaded machine) would explain a NO_LEADER; say so.
    const elections = leaderLines(cluster).filter((l) => !electionsBefore.includes(l));

    const onLeader = await grantsByCode(cluster, leaderId);
    const overloaded = delta(onLeader, "RESOURCE_EXHAUSTED");
    assert.ok(overloaded >= 1, `the leader answered some grants RESOURCE_EXHAUSTED (codes: ${JSON.stringify([...onLeader])})`);
    assert.equal(
      delta(onLeader, "UNAVAILABLE"),
      0,
      `never NO_LEADER for a full queue (codes: ${JSON.stringify([...onLeader])}; leaders elected meanwhile: ${JSON.stringify(elections)})`,
    );
    assert.equal(delta(onLeader, "OK"), BURST, "each grant of the burst answered OK once, on the leader");
    const followersAfter = await Promise.all(followers.map(async (id) => sum(await grantsByCode(cluster, id))));
    assert.deepEqual(followersAfter, followersBefore, "no grant of the burst went to a follower");
    process.stdout.write(`# ${BURST} concurrent grants with 2 slots: ${overloaded} OVERLOADED answers, all granted on ${leaderId}\n`);
  });
});
