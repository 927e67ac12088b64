// Authentication, permissions and ownership at the API, over real gRPC (bearer tokens over
// loopback plaintext; client certificates are tested with real processes in
// testing/itest/client_auth.test.ts).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { assertError, errorReply, type Message, nextMessage, type Reply, streamEnd, TestApi } from "../../testing/kits/api_test_kit.ts";
import type { AuditRecord } from "../auth/audit.ts";
import { Authenticator } from "../auth/authenticator.ts";
import { sha256Hex } from "../auth/token_file.ts";
import { serviceDefinition, type ServiceName } from "./protos.ts";

const TOKENS = {
  alice: "alice-token-0123456789abcdefghij",
  bob: "bob-token-0123456789abcdefghijkl",
  ops: "ops-token-0123456789abcdefghijkl",
};
type Who = keyof typeof TOKENS | "nobody" | "forged";

describe("API: authentication, permissions, ownership", () => {
  const dir = mkdtempSync(join(tmpdir(), "tenure-auth-api-"));
  const audit: AuditRecord[] = [];
  let api: TestApi;
  let client: grpc.Client;

  before(async () => {
    const tokenFile = join(dir, "tokens.yaml");
    const lines = Object.entries(TOKENS).map(([identity, token]) => `  - identity: ${identity}\n    sha256: ${sha256Hex(token)}`);
    writeFileSync(tokenFile, `tokens:\n${lines.join("\n")}\n`);
    const configFile = join(dir, "auth.yaml");
    writeFileSync(
      configFile,
      "roles:\n  worker:\n    - prefix: jobs/\n      permissions: [lock, elect, read]\n    - permissions: [lease]\nbindings:\n  alice: [worker]\n  bob: [worker]\n  ops: [admin]\n",
    );
    const auth = Authenticator.start({ authConfigFile: configFile, tokenFile, adminIdentities: [], tls: false, log: () => {} });
    api = await TestApi.start({ auth, audit: (r) => void audit.push(r) });
    client = new grpc.Client(`127.0.0.1:${api.handle.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function call(who: Who, service: ServiceName, method: string, request: object): Promise<Reply> {
    const def = serviceDefinition(service)[method];
    if (def === undefined) throw new Error(`no ${method}`);
    const metadata = new grpc.Metadata();
    if (who === "forged") metadata.set("authorization", "Bearer forged-token-0123456789abcdefgh");
    else if (who !== "nobody") metadata.set("authorization", `Bearer ${TOKENS[who]}`);
    return new Promise((resolve) => {
      client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, request, metadata, {}, (error, response) => {
        resolve(error ? errorReply(error) : { ok: true, response: (response ?? {}) as Message });
      });
    });
  }
  async function ok(who: Who, service: ServiceName, method: string, request: object): Promise<Message> {
    const r = await call(who, service, method, request);
    if (!r.ok) throw new Error(`${who} ${service}.${method}: ${grpc.status[r.code]} ${r.details}`);
    return r.response;
  }
  async function denied(who: Who, service: ServiceName, method: string, request: object, code: grpc.status): Promise<string> {
    const r = await call(who, service, method, request);
    assert.ok(!r.ok, `${who} ${service}.${method} must fail`);
    assert.equal(grpc.status[r.code], grpc.status[code], r.details);
    return r.details;
  }

  it("no credential or an unknown token is UNAUTHENTICATED, with a message, before the request is read", async () => {
    const none = await denied("nobody", "Lease", "Grant", { clientId: "x", seq: 1, ttlMs: 5000 }, grpc.status.UNAUTHENTICATED);
    assert.match(none, /no credentials: .*authorization: Bearer <token>/);
    assert.equal(await denied("forged", "Cluster", "Status", {}, grpc.status.UNAUTHENTICATED), "the bearer token is not recognized");
    assert.equal(api.node.submitted.length, 0);
  });

  it("identity A cannot release B's lock, revoke, renew or read B's lease, nor see B's lease ids", async () => {
    const grant = await ok("alice", "Lease", "Grant", { clientId: "a", seq: 1, ttlMs: 10_000 });
    const leaseId = String(grant["leaseId"]);
    assert.ok(Number(leaseId) > 2 ** 32, `a drawn id, not a counter: ${leaseId}`);
    const lock = await ok("alice", "Lock", "Acquire", { clientId: "a", seq: 2, name: "jobs/x", leaseId, wait: false });
    const token = String(lock["token"]);
    assert.equal(api.node.submitted.at(-1)?.identity, "alice", "the identity comes from the token, not the request");

    const release = await denied("bob", "Lock", "Release", { clientId: "b", seq: 1, name: "jobs/x", token }, grpc.status.PERMISSION_DENIED);
    assert.match(release, /^identity "bob" may not LockRelease: the holder's lease belongs to another identity/);
    await denied("bob", "Lease", "Revoke", { clientId: "b", seq: 2, leaseId }, grpc.status.PERMISSION_DENIED);
    await denied("bob", "Lease", "TimeToLive", { leaseId }, grpc.status.PERMISSION_DENIED);
    await denied("bob", "Lock", "Acquire", { clientId: "b", seq: 3, name: "jobs/y", leaseId, wait: false }, grpc.status.PERMISSION_DENIED);
    const bobsList = await ok("bob", "Lease", "List", {});
    assert.deepEqual(bobsList["leases"], []);
    const alicesList = await ok("alice", "Lease", "List", {});
    assert.deepEqual(
      (alicesList["leases"] as Message[]).map((l) => [l["leaseId"], l["owner"]]),
      [[leaseId, "alice"]],
    );
    // A reader sees that the lock is held and its token (fencing tokens are not secrets), not the lease.
    const seenByBob = await ok("bob", "Lock", "Status", { name: "jobs/x" });
    assert.equal((seenByBob["holder"] as Message)["token"], token);
    assert.equal((seenByBob["holder"] as Message)["leaseId"], "0");
    const seenByAlice = await ok("alice", "Lock", "Status", { name: "jobs/x" });
    assert.equal((seenByAlice["holder"] as Message)["leaseId"], leaseId);
    // Alice still holds it.
    assert.equal((await ok("alice", "Lock", "ValidateToken", { name: "jobs/x", token }))["current"], true);
  });

  it("permissions are per name prefix, and the message names identity, permission and name", async () => {
    const grant = await ok("bob", "Lease", "Grant", { clientId: "p", seq: 1, ttlMs: 10_000 });
    const details = await denied(
      "bob",
      "Lock",
      "Acquire",
      { clientId: "p", seq: 2, name: "db/primary", leaseId: String(grant["leaseId"]), wait: false },
      grpc.status.PERMISSION_DENIED,
    );
    assert.equal(details, 'identity "bob" lacks permission lock on "db/primary" (roles: worker)');
    await denied("bob", "Lock", "Status", { name: "db/primary" }, grpc.status.PERMISSION_DENIED);
  });

  it("Lock.Watch and Election.Observe need read on the name; a watcher sees lease ids of its own leases only", async () => {
    const watch = (who: Who, service: ServiceName, method: string, name: string) => {
      const def = serviceDefinition(service)[method];
      if (def === undefined) throw new Error(`no ${method}`);
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${TOKENS[who as keyof typeof TOKENS]}`);
      return client.makeServerStreamRequest(
        def.path,
        def.requestSerialize,
        (b: Buffer) => def.responseDeserialize(b) as Message,
        { name },
        metadata,
        {},
      );
    };
    for (const [service, method] of [
      ["Lock", "Watch"],
      ["Election", "Observe"],
    ] as const) {
      const refused = assertError(
        await streamEnd(watch("bob", service, method, "db/primary")),
        grpc.status.PERMISSION_DENIED,
        "PERMISSION_DENIED",
      );
      assert.match(refused.details, /identity "bob" lacks permission read on "db\/primary"/);
    }
    const grant = await ok("alice", "Lease", "Grant", { clientId: "wa", seq: 1, ttlMs: 10_000 });
    const leaseId = String(grant["leaseId"]);
    await ok("alice", "Lock", "Acquire", { clientId: "wa", seq: 2, name: "jobs/w", leaseId, wait: false });
    const bobs = watch("bob", "Lock", "Watch", "jobs/w");
    const alices = watch("alice", "Lock", "Watch", "jobs/w");
    const holderOf = (m: Message) => (m["status"] as Message)["holder"] as Message;
    assert.equal(holderOf(await nextMessage(bobs))["leaseId"], "0", "another identity's lease id is hidden");
    assert.equal(holderOf(await nextMessage(alices))["leaseId"], leaseId);
    for (const s of [bobs, alices]) {
      s.on("error", () => {});
      s.cancel();
    }
  });

  it("a non-admin cannot change membership or transfer leadership; an admin can, audited; admin acts on others' objects are audited", async () => {
    const remove = await denied("alice", "Cluster", "RemoveMember", { nodeId: "c" }, grpc.status.PERMISSION_DENIED);
    assert.equal(remove, 'identity "alice" lacks permission admin: Cluster.RemoveMember needs the admin role');
    await denied("alice", "Cluster", "TransferLeader", { toNodeId: "b" }, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(api.node.transfers, []);
    assert.deepEqual(audit.at(-1), {
      identity: "alice",
      rpc: "Cluster.TransferLeader",
      target: "leadership to b",
      owner: null,
      outcome: "denied",
    });
    await ok("ops", "Cluster", "TransferLeader", { toNodeId: "b" });
    assert.deepEqual(api.node.transfers, ["b"]);
    assert.deepEqual(audit.at(-1), {
      identity: "ops",
      rpc: "Cluster.TransferLeader",
      target: "leadership to b",
      owner: null,
      outcome: "ok",
    });

    const grant = await ok("alice", "Lease", "Grant", { clientId: "q", seq: 1, ttlMs: 10_000 });
    const leaseId = String(grant["leaseId"]);
    assert.equal((await ok("ops", "Lease", "Revoke", { clientId: "o", seq: 1, leaseId }))["leaseId"], leaseId);
    assert.deepEqual(audit.at(-1), { identity: "ops", rpc: "LeaseRevoke", target: `lease ${leaseId}`, owner: "alice", outcome: "ok" });
    const status = await ok("ops", "Cluster", "Status", {});
    assert.deepEqual([status["authMode"], status["callerIdentity"], status["callerAdmin"]], ["roles", "ops", true]);
  });

  it("elections: a reader sees the leader's value and token, not its lease; only the owner proclaims", async () => {
    const grant = await ok("alice", "Lease", "Grant", { clientId: "e", seq: 1, ttlMs: 10_000 });
    const leaseId = String(grant["leaseId"]);
    const elected = await ok("alice", "Election", "Campaign", { clientId: "e", seq: 2, name: "jobs/leader", leaseId, value: "a:1" });
    const token = String((elected["leader"] as Message)["token"]);
    const byBob = (await ok("bob", "Election", "Leader", { name: "jobs/leader" }))["leader"] as Message;
    assert.deepEqual([byBob["value"], byBob["token"], byBob["leaseId"]], ["a:1", token, "0"]);
    const byAlice = (await ok("alice", "Election", "Leader", { name: "jobs/leader" }))["leader"] as Message;
    assert.equal(byAlice["leaseId"], leaseId);
    const proclaim = await denied(
      "bob",
      "Election",
      "Proclaim",
      { clientId: "eb", seq: 1, name: "jobs/leader", token, value: "b" },
      grpc.status.PERMISSION_DENIED,
    );
    assert.match(proclaim, /^identity "bob" may not ElectionProclaim/);
    await denied("bob", "Election", "Resign", { clientId: "eb", seq: 2, name: "jobs/leader", token }, grpc.status.PERMISSION_DENIED);
    assert.equal((await ok("alice", "Election", "Resign", { clientId: "e", seq: 4, name: "jobs/leader", token }))["resigned"], true);
  });

  it("the same client id under two identities is two sessions", async () => {
    const a = await ok("alice", "Lease", "Grant", { clientId: "shared", seq: 1, ttlMs: 10_000 });
    const b = await ok("bob", "Lease", "Grant", { clientId: "shared", seq: 1, ttlMs: 10_000 });
    assert.equal(b["replayed"], false);
    assert.notEqual(a["leaseId"], b["leaseId"]);
  });
  it("a KeepAlive stream stops renewing once its token is removed from the token file", async () => {
    const file = join(dir, "revocable.yaml");
    const token = "dave-token-0123456789abcdefghijklm";
    writeFileSync(file, `tokens:\n  - identity: dave\n    sha256: ${sha256Hex(token)}\n`);
    const auth = Authenticator.start({
      authConfigFile: null,
      tokenFile: file,
      adminIdentities: [],
      tls: false,
      log: () => {},
      checkIntervalMs: 0,
    });
    const own = await TestApi.start({ auth });
    const c = new grpc.Client(`127.0.0.1:${own.handle.port}`, grpc.credentials.createInsecure());
    try {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      const grantDef = serviceDefinition("Lease")["Grant"];
      const kaDef = serviceDefinition("Lease")["KeepAlive"];
      if (grantDef === undefined || kaDef === undefined) throw new Error("no Lease methods");
      const grant = await new Promise<Message>((resolve, reject) =>
        c.makeUnaryRequest(
          grantDef.path,
          grantDef.requestSerialize,
          grantDef.responseDeserialize,
          { clientId: "d", seq: 1, ttlMs: 10_000 },
          metadata,
          {},
          (e, r) => (e ? reject(e) : resolve((r ?? {}) as Message)),
        ),
      );
      const stream = c.makeBidiStreamRequest(
        kaDef.path,
        kaDef.requestSerialize,
        (b: Buffer) => kaDef.responseDeserialize(b) as Message,
        metadata,
        {},
      );
      stream.write({ clientId: "d-ka", seq: 1, leaseIds: [String(grant["leaseId"])] });
      assert.equal(((await nextMessage(stream))["renewed"] as unknown[]).length, 1);
      writeFileSync(file, "tokens: []\n");
      const ended = streamEnd(stream);
      stream.write({ clientId: "d-ka", seq: 2, leaseIds: [String(grant["leaseId"])] });
      const reply = assertError(await ended, grpc.status.UNAUTHENTICATED, "UNAUTHENTICATED");
      assert.equal(reply.details, "the bearer token is not recognized");
    } finally {
      c.close();
      await own.close();
    }
  });
});
