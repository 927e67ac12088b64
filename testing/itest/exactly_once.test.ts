// Exactly-once that cannot be fooled (issue 13 point 5), on three real tenured processes over
// mutual TLS. Raw gRPC requests, so the test picks every client_id and seq itself:
//   - a reused (client_id, seq) with other arguments is STALE_SEQUENCE for every mutating call
//     (Grant, KeepAlive, Revoke, Acquire, Release, Campaign, Proclaim, Resign), never another
//     request's result; the same arguments still replay; another identity under the same
//     client_id never sees the first one's result; the refusal survives a leader's kill -9, and
//     a member that caught up by InstallSnapshot gives it too once it leads (the digest is in the
//     snapshot image);
//   - a seq without a successor (2^53 - 1; 2^53 - 2 for a blocking call) is INVALID_ARGUMENT;
//   - membership calls naming a node in the wrong place are FAILED_PRECONDITION and change
//     nothing (ReplaceMember with a non-member old id used to leave 4 voters).
// On the code before (793f606) all but the identity test fail: it answered the reused seq with
// the stored result (replayed: true, X's token for Y), took 2^53 - 1, and proposed the
// ReplaceMember. The identity test passes there too (sessions were already keyed by identity):
// it guards that.

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { after, before, describe, it } from "node:test";
import { decodeErrorDetail, ERROR_DETAIL_METADATA_KEY } from "../../server/api/protos.ts";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import type { CallResult, TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

type Obj = Record<string, unknown>;

const OTHER_IDENTITY = "other-service";
/** The smallest --snapshot-every-entries (server/config.ts). */
const SNAPSHOT_EVERY_ENTRIES = 10;
const MISMATCH = (seq: number) => new RegExp(`^seq ${seq} was first applied to a request with other arguments; this one differs`);

function ok<T>(r: CallResult<T>, what: string): T {
  if (!r.ok) assert.fail(`${what}: ${grpc.status[r.code]} ${r.reason} ${r.details}`);
  return r.value;
}

function refused(r: CallResult<unknown>, code: grpc.status, reason: string, details: RegExp, what: string): void {
  if (r.ok) assert.fail(`${what}: answered OK ${JSON.stringify(r.value)}`);
  assert.equal(grpc.status[r.code], grpc.status[code], `${what}: ${r.reason} ${r.details}`);
  assert.equal(r.reason, reason, `${what}: ${r.details}`);
  assert.match(r.details, details, what);
}

/** One KeepAlive request on its own stream at `endpoint`: its answer or the stream's status. */
function keepAlive(c: TestClient, endpoint: string, request: Obj): Promise<CallResult<Obj>> {
  const client = c.client("Lease", endpoint) as unknown as Record<string, (o: grpc.CallOptions) => grpc.ClientDuplexStream<Obj, Obj>>;
  const open = client["KeepAlive"];
  assert.ok(open);
  const stream = open.call(client, { deadline: Date.now() + 5_000 });
  return new Promise((resolve) => {
    stream.once("data", (value: Obj) => {
      resolve({ ok: true, value, endpoint });
      stream.end();
    });
    stream.once("error", (err: grpc.ServiceError) => {
      const raw = err.metadata?.get(ERROR_DETAIL_METADATA_KEY)[0];
      const detail = Buffer.isBuffer(raw) ? decodeErrorDetail(raw) : null;
      resolve({ ok: false, code: err.code, details: err.details, reason: detail?.reason ?? "", leaderAddress: "", endpoint });
    });
    stream.write(request);
  });
}

describe("exactly-once sessions and membership preconditions on three tenured processes", { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  let c: TestClient;
  let other: TestClient;
  let admin: TestClient;
  const id = "eo";
  let lease = "";
  let spare = "";
  let token = "";

  before(async () => {
    cluster = await ProcessCluster.start({
      tickMs: 50,
      electionTimeoutTicks: 10,
      lockDelayMs: 500,
      clientIdentities: [OTHER_IDENTITY],
      // Snapshots (and log compaction) every few entries: a lagging member catches up by one.
      extraFlags: ["--snapshot-every-entries", String(SNAPSHOT_EVERY_ENTRIES)],
    });
    c = cluster.testClient();
    other = cluster.testClient(cluster.endpoints(), OTHER_IDENTITY);
    admin = cluster.testClient(cluster.endpoints(), ADMIN_CLIENT_IDENTITY);
    await c.leaderId(15_000);
  });

  after(async () => {
    for (const client of [c, other, admin]) client?.close();
    await cluster?.stopAll();
  });

  it("a reused seq with other arguments is STALE_SEQUENCE for every mutating call; the same arguments replay", async () => {
    const call = (service: "Lease" | "Lock" | "Election", method: string, request: Obj) =>
      c.callSameSeq<Obj>(service, method, { clientId: id, ...request }, 15_000);
    lease = String(ok(await call("Lease", "Grant", { seq: 1, ttlMs: 20_000 }), "grant")["leaseId"]);
    spare = String(ok(await call("Lease", "Grant", { seq: 2, ttlMs: 20_000 }), "grant 2")["leaseId"]);

    // The first case: Acquire of Y under the seq of X's Acquire.
    const x = ok(await call("Lock", "Acquire", { seq: 3, name: "X", leaseId: lease, wait: false }), "acquire X");
    token = String(x["token"]);
    const retry = ok(await call("Lock", "Acquire", { seq: 3, name: "X", leaseId: lease, wait: false }), "retry X");
    assert.deepEqual([retry["token"], retry["replayed"]], [token, true]);
    for (const change of [{ name: "Y" }, { leaseId: spare }, { wait: true }]) {
      const r = await call("Lock", "Acquire", { seq: 3, name: "X", leaseId: lease, wait: false, ...change });
      refused(r, grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE", MISMATCH(3), `Acquire ${JSON.stringify(change)}`);
    }
    const y = ok(await c.callSameSeq<Obj>("Lock", "Status", { name: "Y" }), "status Y");
    assert.equal(y["state"], "MUTEX_STATE_FREE", "Y is free, and no caller was told it holds it");

    // The second: Release of a never-held lock under the seq of a real release.
    const released = ok(await call("Lock", "Release", { seq: 4, name: "X", token }), "release X");
    assert.equal(released["released"], true);
    const never = await call("Lock", "Release", { seq: 4, name: "never-held", token });
    refused(never, grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE", MISMATCH(4), "Release of a never-held lock");
    refused(
      await call("Lock", "Release", { seq: 4, name: "X", token: "99" }),
      grpc.status.FAILED_PRECONDITION,
      "STALE_SEQUENCE",
      MISMATCH(4),
      "Release, other token",
    );
    assert.equal(ok(await call("Lock", "Release", { seq: 4, name: "X", token }), "release retry")["released"], true);

    // Elections: Campaign reserves seq + 1, so the next seq is 7.
    const elected = ok(await call("Election", "Campaign", { seq: 5, name: "E", leaseId: lease, value: "v1" }), "campaign");
    const electionToken = String((elected["leader"] as Obj)["token"]);
    for (const change of [{ value: "v2" }, { name: "E2" }, { leaseId: spare }]) {
      const r = await call("Election", "Campaign", { seq: 5, name: "E", leaseId: lease, value: "v1", ...change });
      refused(r, grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE", MISMATCH(5), `Campaign ${JSON.stringify(change)}`);
    }
    ok(await call("Election", "Proclaim", { seq: 7, name: "E", token: electionToken, value: "v2" }), "proclaim");
    refused(
      await call("Election", "Proclaim", { seq: 7, name: "E", token: electionToken, value: "v3" }),
      grpc.status.FAILED_PRECONDITION,
      "STALE_SEQUENCE",
      MISMATCH(7),
      "Proclaim, other value",
    );
    const leader = ok(await c.callSameSeq<Obj>("Election", "Leader", { name: "E" }), "leader");
    assert.equal((leader["leader"] as Obj)["value"], "v2", "the refused proclaim changed nothing");
    ok(await call("Election", "Resign", { seq: 8, name: "E", token: electionToken }), "resign");
    refused(
      await call("Election", "Resign", { seq: 8, name: "F", token: electionToken }),
      grpc.status.FAILED_PRECONDITION,
      "STALE_SEQUENCE",
      MISMATCH(8),
      "Resign, other name",
    );

    // KeepAlive on a stream of its own at the leader.
    const ttl = await c.callSameSeq<Obj>("Lease", "TimeToLive", { leaseId: lease });
    assert.ok(ttl.ok, "TimeToLive");
    const endpoint = ttl.endpoint; // the leader's: only it answers reads
    const renewed = ok(await keepAlive(c, endpoint, { clientId: id, seq: 9, leaseIds: [lease] }), "keepalive");
    assert.deepEqual(
      (renewed["renewed"] as Obj[]).map((r) => r["leaseId"]),
      [lease],
    );
    const ka = await keepAlive(c, endpoint, { clientId: id, seq: 9, leaseIds: [spare] });
    refused(ka, grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE", MISMATCH(9), "KeepAlive, other lease");

    // Revoke, then Grant.
    ok(await call("Lease", "Revoke", { seq: 10, leaseId: spare }), "revoke spare");
    refused(
      await call("Lease", "Revoke", { seq: 10, leaseId: lease }),
      grpc.status.FAILED_PRECONDITION,
      "STALE_SEQUENCE",
      MISMATCH(10),
      "Revoke, other lease",
    );
    ok(await c.callSameSeq<Obj>("Lease", "TimeToLive", { leaseId: lease }), "the lease the refused revoke named is still there");
    const granted = ok(await call("Lease", "Grant", { seq: 11, ttlMs: 20_000 }), "grant 11");
    refused(
      await call("Lease", "Grant", { seq: 11, ttlMs: 30_000 }),
      grpc.status.FAILED_PRECONDITION,
      "STALE_SEQUENCE",
      MISMATCH(11),
      "Grant, other TTL",
    );
    const again = ok(await call("Lease", "Grant", { seq: 11, ttlMs: 20_000 }), "grant 11 retry");
    assert.deepEqual([again["leaseId"], again["replayed"]], [granted["leaseId"], true]);
  });

  it("another identity under the same client_id has its own session: it never gets the first one's result", async () => {
    const r = await other.callSameSeq<Obj>("Lock", "Acquire", { clientId: id, seq: 3, name: "X", leaseId: lease, wait: false });
    refused(r, grpc.status.FAILED_PRECONDITION, "SESSION_EXPIRED", /no session/, "other identity, seq 3");
    const own = ok(await other.callSameSeq<Obj>("Lease", "Grant", { clientId: id, seq: 1, ttlMs: 5_000 }), "other's grant");
    assert.equal(own["replayed"], false);
    assert.notEqual(String(own["leaseId"]), lease);
  });

  it("the refusal survives the leader's kill -9: the digest is replicated state", async () => {
    const leaderId = await c.leaderId(10_000);
    await cluster.kill9(leaderId);
    try {
      const r = await c.callSameSeq<Obj>("Lease", "Grant", { clientId: id, seq: 11, ttlMs: 30_000 }, 30_000);
      refused(r, grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE", MISMATCH(11), "Grant, other TTL, at the new leader");
      const same = ok(
        await c.callSameSeq<Obj>("Lease", "Grant", { clientId: id, seq: 11, ttlMs: 20_000 }, 30_000),
        "retry at the new leader",
      );
      assert.equal(same["replayed"], true);
      assert.notEqual(await c.leaderId(10_000), leaderId);
    } finally {
      await cluster.startMember(leaderId, { bootstrap: false });
    }
  });

  it("a member that caught up by InstallSnapshot refuses the same mismatch when it leads: the digest is in the image", async () => {
    const leaderId = await c.leaderId(10_000);
    const lagging = cluster.members.map((m) => m.id).find((m) => m !== leaderId) ?? "";
    await cluster.kill9(lagging);
    let fill = 0;
    const filler = async (entries: number) => {
      for (let i = 0; i < entries; i++) {
        fill += 1;
        const r = await c.callSameSeq<Obj>("Lease", "Revoke", { clientId: "filler", seq: fill, leaseId: "1" }, 15_000);
        assert.ok(!r.ok && r.reason === "LEASE_NOT_FOUND", `filler ${fill}: ${r.ok ? "ok" : r.details}`);
      }
    };
    const snapLease = String(
      ok(await c.callSameSeq<Obj>("Lease", "Grant", { clientId: "snap", seq: 1, ttlMs: 60_000 }, 15_000), "grant")["leaseId"],
    );
    await filler(3 * SNAPSHOT_EVERY_ENTRIES);
    const held = ok(
      await c.callSameSeq<Obj>("Lock", "Acquire", { clientId: "snap", seq: 2, name: "S", leaseId: snapLease, wait: false }),
      "acquire S",
    );
    await filler(3 * SNAPSHOT_EVERY_ENTRIES); // the leader's snapshot covers seq 2; its log no longer reaches the lagging member
    await cluster.startMember(lagging, { bootstrap: false });
    // cluster.logs holds the lines of the member's current run only.
    await until(`${lagging} receives a snapshot`, 30_000, () =>
      (cluster.logs.get(lagging) ?? []).some((l) => l.includes('"event":"snapshot_received"')),
    );
    await until(`${lagging} leads`, 30_000, async () => {
      const moved = await admin.call<Obj>("Cluster", "TransferLeader", { toNodeId: lagging }, 5_000);
      if (!moved.ok && moved.reason !== "REFUSED") assert.fail(`transfer: ${moved.reason} ${moved.details}`);
      return (await c.leaderId(5_000)) === lagging;
    });
    const r = await c.callSameSeq<Obj>(
      "Lock",
      "Acquire",
      { clientId: "snap", seq: 2, name: "S2", leaseId: snapLease, wait: false },
      15_000,
    );
    refused(r, grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE", MISMATCH(2), "Acquire S2 under S's seq, at the restored member");
    assert.equal(r.endpoint, cluster.member(lagging).clientAddress, "answered by the member restored from the snapshot");
    const again = ok(
      await c.callSameSeq<Obj>("Lock", "Acquire", { clientId: "snap", seq: 2, name: "S", leaseId: snapLease, wait: false }),
      "retry S",
    );
    assert.deepEqual([again["token"], again["replayed"]], [held["token"], true]);
  });

  it("a seq without a successor is INVALID_ARGUMENT, not accepted and then unusable", async () => {
    const top = Number.MAX_SAFE_INTEGER;
    const r = await c.callSameSeq<Obj>("Lease", "Grant", { clientId: "top", seq: String(top), ttlMs: 5_000 });
    refused(
      r,
      grpc.status.INVALID_ARGUMENT,
      "INVALID_ARGUMENT",
      /^seq must be 1\.\.9007199254740990, got 9007199254740991 \(/,
      "seq 2^53 - 1",
    );
    const blocking = await c.callSameSeq<Obj>("Lock", "Acquire", {
      clientId: "top",
      seq: String(top - 1),
      name: "T",
      leaseId: lease,
      wait: true,
    });
    refused(blocking, grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT", /reserves seq \+ 1/, "blocking seq 2^53 - 2");
    // 2^53 - 2 passes validation: the state machine answers (an unknown client past seq 1).
    const below = await c.callSameSeq<Obj>("Lease", "Grant", { clientId: "top", seq: String(top - 1), ttlMs: 5_000 });
    refused(below, grpc.status.FAILED_PRECONDITION, "SESSION_EXPIRED", /no session/, "seq 2^53 - 2");
  });

  it("membership calls naming a node in the wrong place are FAILED_PRECONDITION and change nothing", async () => {
    const leaderId = await admin.leaderId(15_000);
    const target = cluster.members.map((m) => m.id).find((m) => m !== leaderId) ?? "";
    const voter = cluster.members.map((m) => m.id).find((m) => m !== leaderId && m !== target) ?? "";
    const voters = async (): Promise<string[]> => {
      const s = ok(await admin.call<Obj>("Cluster", "Status", {}), "status");
      const cs = s["confState"] as { voters: string[]; votersOutgoing?: string[] };
      return (cs.votersOutgoing ?? []).length > 0 ? [] : [...cs.voters].sort();
    };
    const removed = ok(await admin.call<Obj>("Cluster", "RemoveMember", { nodeId: target }, 20_000), "remove target");
    assert.ok(!((removed["confState"] as Obj)["voters"] as string[]).includes(target));
    const two = await until("two voters, not joint", 15_000, async () => ((await voters()).length === 2 ? voters() : null));
    const membership = (method: string, request: Obj, details: RegExp) =>
      admin
        .call<Obj>("Cluster", method, request, 20_000)
        .then((r) => refused(r, grpc.status.FAILED_PRECONDITION, "REFUSED", details, `${method} ${JSON.stringify(request)}`));
    // The case: its old id is no member (it used to add the new voter and remove nothing).
    await membership(
      "ReplaceMember",
      { oldNodeId: "zz", newNodeId: target },
      /^old_node_id zz is not a member in the configuration voters=/,
    );
    await membership("RemoveMember", { nodeId: target }, new RegExp(`^${target} is not a member`));
    await membership("AddMember", { nodeId: leaderId }, new RegExp(`^${leaderId} is already a voter`));
    await membership("ReplaceMember", { oldNodeId: leaderId, newNodeId: voter }, new RegExp(`^new_node_id ${voter} is already a voter`));
    assert.deepEqual(await voters(), two, "no refused call changed the configuration");
    ok(await admin.call<Obj>("Cluster", "AddMember", { nodeId: target }, 20_000), "add the target back");
    await until("three voters again", 20_000, async () => (await voters()).length === 3);
  });
});
