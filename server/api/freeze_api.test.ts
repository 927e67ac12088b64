// Cluster.Freeze / Cluster.Thaw over real gRPC: admin only and audited, the reason validated,
// Status shows the freeze, a Grant or Acquire is FROZEN with who, when and why, reads are served.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { errorReply, type Message, type Reply, TestApi } from "../../testing/kits/api_test_kit.ts";
import { FakeNode } from "../../testing/kits/fake_node.ts";
import type { AuditRecord } from "../auth/audit.ts";
import { Authenticator } from "../auth/authenticator.ts";
import { sha256Hex } from "../auth/token_file.ts";
import { serviceDefinition, type ServiceName } from "./protos.ts";

const TOKENS = { alice: "alice-token-0123456789abcdefghij", ops: "ops-token-0123456789abcdefghijkl" };
type Who = keyof typeof TOKENS;

describe("API: Cluster.Freeze / Cluster.Thaw", () => {
  const dir = mkdtempSync(join(tmpdir(), "tenure-freeze-api-"));
  const audit: AuditRecord[] = [];
  let api: TestApi;
  let client: grpc.Client;

  before(async () => {
    const tokenFile = join(dir, "tokens.yaml");
    const lines = Object.entries(TOKENS).map(([identity, token]) => `  - identity: ${identity}\n    sha256: ${sha256Hex(token)}`);
    writeFileSync(tokenFile, `tokens:\n${lines.join("\n")}\n`);
    const auth = Authenticator.start({ authConfigFile: null, tokenFile, adminIdentities: ["ops"], tls: false, log: () => {} });
    api = await TestApi.start({ auth, audit: (r) => void audit.push(r) }, new FakeNode());
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
    metadata.set("authorization", `Bearer ${TOKENS[who]}`);
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
  async function fails(
    who: Who,
    service: ServiceName,
    method: string,
    request: object,
    code: grpc.status,
    reason: string,
  ): Promise<string> {
    const r = await call(who, service, method, request);
    assert.ok(!r.ok, `${who} ${service}.${method} must fail`);
    assert.equal(grpc.status[r.code], grpc.status[code], r.details);
    assert.equal(r.detail?.reason, reason, r.details);
    return r.details;
  }

  it("a non-admin may not freeze or thaw (audited, nothing proposed); a reason is required and bounded", async () => {
    const details = await fails("alice", "Cluster", "Freeze", { reason: "x" }, grpc.status.PERMISSION_DENIED, "PERMISSION_DENIED");
    assert.match(details, /Cluster.Freeze needs the admin role/);
    assert.deepEqual(audit.at(-1), {
      identity: "alice",
      rpc: "Cluster.Freeze",
      target: 'cluster (freeze: "x")',
      owner: null,
      outcome: "denied",
    });
    await fails("alice", "Cluster", "Thaw", {}, grpc.status.PERMISSION_DENIED, "PERMISSION_DENIED");
    assert.equal(api.node.submitted.length, 0);
    const empty = await fails("ops", "Cluster", "Freeze", { reason: "" }, grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
    assert.equal(empty, "reason must be 1..256 bytes, got 0 (say why the cluster is frozen)");
    await fails("ops", "Cluster", "Freeze", { reason: "x".repeat(257) }, grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
    const control = await fails("ops", "Cluster", "Freeze", { reason: "a\nb" }, grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
    assert.match(control, /control characters, found U\+000A at 1/);
    assert.equal(api.node.submitted.length, 0);
    const status = await ok("alice", "Cluster", "Status", {});
    assert.deepEqual([status["frozen"], status["frozenReason"], status["frozenBy"]], [false, "", ""]);
  });

  it("freeze: Status shows it, a Grant and an Acquire are FROZEN naming who and why, reads are served; thaw resumes", async () => {
    const lease = await ok("alice", "Lease", "Grant", { clientId: "a", seq: 1, ttlMs: 10_000 });
    const frozen = await ok("ops", "Cluster", "Freeze", { reason: "drill" });
    assert.equal(frozen["alreadyFrozen"], false);
    assert.deepEqual([frozen["frozenReason"], frozen["frozenBy"]], ["drill", "ops"]);
    assert.deepEqual(audit.at(-1), {
      identity: "ops",
      rpc: "Cluster.Freeze",
      target: 'cluster (freeze: "drill")',
      owner: null,
      outcome: "ok",
    });
    const again = await ok("ops", "Cluster", "Freeze", { reason: "other" });
    assert.deepEqual([again["alreadyFrozen"], again["frozenReason"]], [true, "drill"]);
    const status = await ok("alice", "Cluster", "Status", {});
    assert.deepEqual(
      [status["frozen"], status["frozenReason"], status["frozenBy"], status["frozenSinceMs"]],
      [true, "drill", "ops", String(frozen["frozenSinceMs"])],
    );
    const refused = await fails(
      "alice",
      "Lease",
      "Grant",
      { clientId: "a", seq: 2, ttlMs: 10_000 },
      grpc.status.FAILED_PRECONDITION,
      "FROZEN",
    );
    assert.match(
      refused,
      /^cluster frozen by admin "ops" at leader time \d+ ms \(about \d+ s ago\): "drill"; no new grants; renewals, releases and reads are served; tenurectl thaw resumes$/,
    );
    const lockRefused = await fails(
      "alice",
      "Lock",
      "Acquire",
      { clientId: "a", seq: 3, name: "x", leaseId: String(lease["leaseId"]), wait: false },
      grpc.status.FAILED_PRECONDITION,
      "FROZEN",
    );
    assert.match(lockRefused, /"drill"/);
    const read = await ok("alice", "Lease", "TimeToLive", { leaseId: String(lease["leaseId"]) });
    assert.ok(read["ttlMs"] !== undefined);

    const thawed = await ok("ops", "Cluster", "Thaw", {});
    assert.deepEqual([thawed["alreadyThawed"], thawed["granted"]], [false, 0]);
    assert.deepEqual(audit.at(-1)?.rpc, "Cluster.Thaw");
    const twice = await ok("ops", "Cluster", "Thaw", {});
    assert.equal(twice["alreadyThawed"], true);
    assert.equal((await ok("alice", "Cluster", "Status", {}))["frozen"], false);
    await ok("alice", "Lease", "Grant", { clientId: "a", seq: 4, ttlMs: 10_000 });
  });
});
