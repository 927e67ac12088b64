// Client authentication, permissions and ownership on real tenured processes (issue 12, point 3):
// mutual TLS with client certificates of the dev CA (alice, bob: workers on jobs/; itest-admin:
// admin)
// plus a bearer token file (carol), under an auth config. Each test fails on the code before:
// any client could release another's lock, revoke and list its leases, and change membership.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { BearerToken, bearerInterceptor } from "../../client-sdk/bearer_token.ts";
import { TenureClient } from "../../client-sdk/client.ts";
import { channelCredentials } from "../../client-sdk/tls.ts";
import { decodeErrorDetail, ERROR_DETAIL_METADATA_KEY } from "../../proto/tenure_protos.ts";
import { sha256Hex } from "../../server/auth/token_file.ts";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import type { TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

type Obj = Record<string, unknown>;
const CAROL_TOKEN = "carol-0123456789abcdefghijklmnopqrstuv";
const AUTH_CONFIG = [
  "roles:",
  "  worker:",
  "    - prefix: jobs/",
  "      permissions: [lock, elect, read]",
  "    - permissions: [lease]",
  "bindings:",
  "  alice: [worker]",
  "  bob: [worker]",
  "  carol: [worker]",
  "  itest-admin: [admin]",
].join("\n");

/** One unary call at `address` with `creds` and optional bearer token; code 0 on success. */
function rawCall(
  address: string,
  creds: grpc.ChannelCredentials,
  method: string,
  token?: string,
): Promise<{ code: number; details: string; reason: string }> {
  const interceptors = token === undefined ? [] : [bearerInterceptor(new BearerToken({ token }))];
  const client = new grpc.Client(address, creds, { "grpc.use_local_subchannel_pool": 1, interceptors });
  const pass = (b: Buffer): Buffer => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, pass, pass, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e) => {
      client.close();
      const raw = e?.metadata?.get(ERROR_DETAIL_METADATA_KEY)[0];
      const reason = Buffer.isBuffer(raw) ? decodeErrorDetail(raw).reason : "";
      resolve({ code: e ? e.code : 0, details: e?.details ?? "", reason });
    });
  });
}

function ok<T>(r: { ok: boolean } & ({ ok: true; value: T } | { ok: false; details: string }), what: string): T {
  if (!r.ok) assert.fail(`${what}: ${r.details}`);
  return r.value;
}

function denied(r: { ok: true } | { ok: false; code: grpc.status; details: string }, code: grpc.status, what: string): string {
  assert.ok(!r.ok, `${what} must be refused`);
  assert.equal(grpc.status[r.code], grpc.status[code], `${what}: ${r.details}`);
  return r.details;
}

describe("client authentication, permissions and ownership (real processes, mutual TLS)", () => {
  let cluster: ProcessCluster;
  let alice: TestClient;
  let bob: TestClient;
  let admin: TestClient;

  const dir = mkdtempSync(join(tmpdir(), "tenure-client-auth-"));

  before(async () => {
    const authFile = join(dir, "auth.yaml");
    const tokenFile = join(dir, "tokens.yaml");
    writeFileSync(authFile, AUTH_CONFIG);
    writeFileSync(tokenFile, `tokens:\n  - identity: carol\n    sha256: ${sha256Hex(CAROL_TOKEN)}\n`);
    cluster = await ProcessCluster.start({
      clientIdentities: ["alice", "bob"],
      extraFlags: ["--auth-config", authFile, "--auth-tokens", tokenFile],
    });
    alice = cluster.testClient(undefined, "alice");
    bob = cluster.testClient(undefined, "bob");
    admin = cluster.testClient(undefined, ADMIN_CLIENT_IDENTITY);
    await admin.leaderId(15_000);
  });
  after(async () => {
    for (const c of [alice, bob, admin]) c?.close();
    await cluster?.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it("identity A cannot release B's lock, revoke or read B's lease, nor see B's leases", async () => {
    const grant = ok(await alice.call<Obj>("Lease", "Grant", { clientId: "a1", seq: 1, ttlMs: 30_000 }), "alice grants");
    const leaseId = String(grant["leaseId"]);
    const lock = ok(
      await alice.call<Obj>("Lock", "Acquire", { clientId: "a1", seq: 2, name: "jobs/report", leaseId, wait: false }),
      "alice locks",
    );
    const token = String(lock["token"]);

    const release = denied(
      await bob.call("Lock", "Release", { clientId: "b1", seq: 1, name: "jobs/report", token }),
      grpc.status.PERMISSION_DENIED,
      "bob releases",
    );
    assert.match(release, /identity "bob" may not LockRelease/);
    denied(await bob.call("Lease", "Revoke", { clientId: "b1", seq: 2, leaseId }), grpc.status.PERMISSION_DENIED, "bob revokes");
    denied(await bob.call("Lease", "TimeToLive", { leaseId }), grpc.status.PERMISSION_DENIED, "bob reads the lease");
    const listed = ok(await bob.call<Obj>("Lease", "List", {}), "bob lists");
    assert.deepEqual(listed["leases"], [], "bob sees none of alice's leases");
    const status = ok(await bob.call<Obj>("Lock", "Status", { name: "jobs/report" }), "bob reads the lock");
    assert.equal((status["holder"] as Obj)["leaseId"], "0", "no lease id for a non-owner");
    assert.equal((status["holder"] as Obj)["token"], token, "the token is visible: it fences, it does not authorize");
    const still = ok(await alice.call<Obj>("Lock", "ValidateToken", { name: "jobs/report", token }), "alice checks");
    assert.equal(still["current"], true, "alice still holds the lock");
    assert.equal(
      ok(await alice.call<Obj>("Lock", "Release", { clientId: "a1", seq: 3, name: "jobs/report", token }), "alice releases")["released"],
      true,
    );
    // Outside its prefix a worker may do nothing.
    const outside = denied(
      await alice.call("Lock", "Acquire", { clientId: "a1", seq: 4, name: "db/primary", leaseId, wait: false }),
      grpc.status.PERMISSION_DENIED,
      "alice locks db/primary",
    );
    assert.equal(outside, 'identity "alice" lacks permission lock on "db/primary" (roles: worker)');
  });

  it("a non-admin cannot remove a member or transfer leadership; an admin can, and the audit line names who", async () => {
    const leader = await admin.leaderId(10_000);
    const before = ok(await admin.call<Obj>("Cluster", "Status", {}), "status");
    const target = cluster.members.find((m) => m.id !== leader)?.id ?? "";
    denied(await alice.call("Cluster", "RemoveMember", { nodeId: target }), grpc.status.PERMISSION_DENIED, "alice removes a member");
    const transfer = denied(
      await alice.call("Cluster", "TransferLeader", { toNodeId: target }),
      grpc.status.PERMISSION_DENIED,
      "alice transfers",
    );
    assert.match(transfer, /identity "alice" lacks permission admin: Cluster.TransferLeader/);
    const after = ok(await admin.call<Obj>("Cluster", "Status", {}), "status");
    assert.deepEqual(
      [after["leaderId"], (after["confState"] as Obj)["voters"]],
      [before["leaderId"], (before["confState"] as Obj)["voters"]],
    );
    assert.deepEqual([after["authMode"], after["callerIdentity"], after["callerAdmin"]], ["roles", ADMIN_CLIENT_IDENTITY, true]);

    ok(await admin.call("Cluster", "TransferLeader", { toNodeId: target }), "admin transfers");
    await until("the new leader", 10_000, async () => (await admin.leaderId(5_000)) === target);
    const audit = await until("the audit line", 5_000, () =>
      (cluster.logs.get(leader) ?? []).find(
        (l) => l.includes('"component":"audit"') && l.includes('"outcome":"ok"') && l.includes("Cluster.TransferLeader"),
      ),
    );
    const line = JSON.parse(audit) as Obj;
    assert.deepEqual([line["identity"], line["target"], line["outcome"]], [ADMIN_CLIENT_IDENTITY, `leadership to ${target}`, "ok"]);

    // An admin may revoke another identity's lease; the leader's audit line names both.
    const grant = ok(await bob.call<Obj>("Lease", "Grant", { clientId: "b2", seq: 1, ttlMs: 30_000 }), "bob grants");
    const leaseId = String(grant["leaseId"]);
    ok(await admin.call("Lease", "Revoke", { clientId: "adm", seq: 1, leaseId }), "admin revokes bob's lease");
    const revokeLine = await until("the revoke audit line", 5_000, () =>
      [...cluster.logs.values()]
        .flat()
        .find((l) => l.includes('"component":"audit"') && l.includes('"outcome":"ok"') && l.includes(`lease ${leaseId}`)),
    );
    const revoke = JSON.parse(revokeLine) as Obj;
    assert.deepEqual([revoke["identity"], revoke["rpc"], revoke["owner"]], [ADMIN_CLIENT_IDENTITY, "LeaseRevoke", "bob"]);
  });

  it("no credentials or a bad token is UNAUTHENTICATED; a good bearer token works through the SDK", async () => {
    const leader = await admin.leaderId(10_000);
    const address = cluster.member(leader).clientAddress;
    const caFile = cluster.certificates?.caFile;
    assert.ok(caFile !== undefined, "a TLS cluster has a CA");
    const caOnly = channelCredentials({ tls: { caFile } });
    const none = await rawCall(address, caOnly, "/tenure.v1.Lease/List");
    assert.deepEqual([grpc.status[none.code], none.reason], ["UNAUTHENTICATED", "UNAUTHENTICATED"]);
    assert.match(none.details, /no credentials/);
    const bad = await rawCall(address, caOnly, "/tenure.v1.Lease/List", "not-carols-token-0123456789abcdefgh");
    assert.deepEqual([grpc.status[bad.code], bad.details], ["UNAUTHENTICATED", "the bearer token is not recognized"]);

    const carol = new TenureClient({
      endpoints: cluster.endpoints(),
      tls: { caFile },
      bearerToken: { token: CAROL_TOKEN },
    });
    try {
      await carol.withLock("jobs/nightly", async ({ token }) => {
        assert.ok(token > 0);
        const seen = await carol.lockStatus("jobs/nightly");
        assert.equal(seen.token, token);
        assert.ok(seen.holderLeaseId > 0, "carol sees her own lease id");
      });
      await assert.rejects(
        carol.withLock("db/primary", () => undefined),
        (e: { code?: string }) => e.code === "PERMISSION_DENIED",
      );
    } finally {
      carol.close();
    }
  });
  // Last: it shrinks the cluster.
  it("an admin removes a member; the audit line names who and which", async () => {
    const leader = await admin.leaderId(10_000);
    const target = cluster.members.find((m) => m.id !== leader)?.id ?? "";
    denied(await bob.call("Cluster", "RemoveMember", { nodeId: target }), grpc.status.PERMISSION_DENIED, "bob removes a member");
    const removed = ok(await admin.call<Obj>("Cluster", "RemoveMember", { nodeId: target }, 15_000), "admin removes");
    assert.ok(!((removed["confState"] as Obj)["voters"] as string[]).includes(target));
    const line = await until("the remove audit line", 5_000, () =>
      [...cluster.logs.values()]
        .flat()
        .find((l) => l.includes('"component":"audit"') && l.includes('"outcome":"ok"') && l.includes("Cluster.RemoveMember")),
    );
    const audit = JSON.parse(line) as Obj;
    assert.deepEqual([audit["identity"], audit["target"], audit["outcome"]], [ADMIN_CLIENT_IDENTITY, `member ${target}`, "ok"]);
  });
});
