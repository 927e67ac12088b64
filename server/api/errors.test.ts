import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { ServiceName } from "./protos.ts";
import { TestApi, assertError, type Reply } from "../../testing/kits/api_test_kit.ts";

describe("status mapping and request validation over gRPC", () => {
  let api: TestApi;
  before(async () => {
    api = await TestApi.start();
  });
  after(async () => {
    await api.close();
  });

  const grant = (clientId: string, seq: number | string, ttlMs: number | string = 1_000) =>
    api.unary("Lease", "Grant", { clientId, seq, ttlMs });

  it("a follower answers UNAVAILABLE with the leader hint; no leader gives NO_LEADER", async () => {
    api.node.mode = { kind: "notLeader", hint: { leaderId: "b", leaderAddress: null } };
    try {
      const hinted = assertError(await grant("f", 1), grpc.status.UNAVAILABLE, "NOT_LEADER");
      assert.equal(hinted.detail?.leaderId, "b");
      assert.equal(hinted.detail?.leaderAddress, "127.0.0.1:7002");
      const read = assertError(await api.unary("Lock", "Status", { name: "x" }), grpc.status.UNAVAILABLE, "NOT_LEADER");
      assert.equal(read.detail?.leaderAddress, "127.0.0.1:7002");
      api.node.mode = { kind: "notLeader", hint: null };
      assertError(await grant("f", 1), grpc.status.UNAVAILABLE, "NO_LEADER");
      api.node.mode = { kind: "unavailable", reason: "too many pending proposals" };
      const busy = assertError(await grant("f", 1), grpc.status.UNAVAILABLE, "NO_LEADER");
      assert.match(busy.details, /too many pending proposals/);
    } finally {
      api.node.mode = { kind: "leader" };
    }
  });

  it("a full request queue is RESOURCE_EXHAUSTED/OVERLOADED with retry_after_ms, not NO_LEADER; the same seq is served once it drains", async () => {
    api.node.mode = { kind: "overloaded", reason: "10000 requests are waiting for their commit or read on this member", retryAfterMs: 100 };
    try {
      const busy = assertError(await grant("o", 1), grpc.status.RESOURCE_EXHAUSTED, "OVERLOADED");
      assert.equal(busy.detail?.retryAfterMs, 100);
      assert.match(busy.details, /10000 requests are waiting.*nothing was proposed, retry here after 100 ms with the same seq/);
      const read = assertError(await api.unary("Lock", "Status", { name: "x" }), grpc.status.RESOURCE_EXHAUSTED, "OVERLOADED");
      assert.equal(read.detail?.retryAfterMs, 100);
    } finally {
      api.node.mode = { kind: "leader" };
    }
    const served = await grant("o", 1);
    assert.ok(served.ok, JSON.stringify(served));
  });

  it("outcomeUnknown maps to UNAVAILABLE/OUTCOME_UNKNOWN and a same-seq retry gets the same lease", async () => {
    api.node.mode = { kind: "outcomeUnknown", applies: true };
    const lost = assertError(await grant("u", 1), grpc.status.UNAVAILABLE, "OUTCOME_UNKNOWN");
    assert.match(lost.details, /retry with the same seq/);
    api.node.mode = { kind: "leader" };
    const retried = await api.ok("Lease", "Grant", { clientId: "u", seq: 1, ttlMs: 1_000 });
    assert.equal(retried["replayed"], true);
    const granted = api.node.submitted.filter((c) => c.clientId === "u");
    assert.equal(granted.length, 2, "the command was proposed twice but applied once");
    assert.equal(api.node.machine.leaseList().filter((l) => l.clientId === "u").length, 1);
  });

  it("state machine errors map to their codes", async () => {
    assertError(await api.unary("Lease", "Revoke", { clientId: "m", seq: 1, leaseId: 424242 }), grpc.status.NOT_FOUND, "LEASE_NOT_FOUND");
    await api.ok("Lease", "Grant", { clientId: "m", seq: 2, ttlMs: 1_000 });
    assertError(await grant("m", 1), grpc.status.FAILED_PRECONDITION, "STALE_SEQUENCE");
    assertError(await grant("never-seen", 7), grpc.status.FAILED_PRECONDITION, "SESSION_EXPIRED");
    // The same seq reused for another command is refused, not answered with the wrong result.
    const reused = assertError(
      await api.unary("Lease", "Revoke", { clientId: "m", seq: 2, leaseId: 1 }),
      grpc.status.FAILED_PRECONDITION,
      "STALE_SEQUENCE",
    );
    assert.match(reused.details, /^seq 2 was first applied to a request with other arguments; this one differs and is refused/);
  });

  it("a reused seq with other arguments is STALE_SEQUENCE for every mutating RPC; the same arguments replay", async () => {
    const lease = await api.ok("Lease", "Grant", { clientId: "r", seq: 1, ttlMs: 5_000 });
    const leaseId = lease["leaseId"] as string;
    const lock = await api.ok("Lock", "Acquire", { clientId: "r", seq: 2, name: "X", leaseId, wait: false });
    const token = lock["token"] as string;
    // Each first request at seq n, then the same seq with one argument changed.
    const steps: [ServiceName, string, object, object][] = [
      ["Lock", "Acquire", { name: "X2", leaseId, wait: false }, { name: "Y" }],
      ["Lock", "Release", { name: "never-held", token }, { name: "X" }],
      ["Lease", "Revoke", { leaseId: "4242" }, { leaseId }],
      ["Lease", "Grant", { ttlMs: 5_000 }, { ttlMs: 6_000 }],
      ["Election", "Campaign", { name: "E", leaseId, value: "a" }, { value: "b" }],
      ["Election", "Proclaim", { name: "E", token: "1", value: "a" }, { token: "2" }],
      ["Election", "Resign", { name: "E", token: "1" }, { name: "F" }],
    ];
    let seq = 10;
    for (const [service, method, fields, change] of steps) {
      seq += 2; // Campaign reserves seq + 1
      const first = await api.unary(service, method, { clientId: "r", seq, ...fields });
      const again = await api.unary(service, method, { clientId: "r", seq, ...fields });
      const answer = (r: Reply) => (r.ok ? { ...r.response, replayed: undefined } : { code: r.code, details: r.details });
      assert.deepEqual(answer(again), answer(first), `${method}: the same request gets the same answer`);
      const other = assertError(
        await api.unary(service, method, { clientId: "r", seq, ...fields, ...change }),
        grpc.status.FAILED_PRECONDITION,
        "STALE_SEQUENCE",
      );
      assert.match(other.details, new RegExp(`^seq ${seq} was first applied to a request with other arguments`), method);
    }
    assert.equal(api.node.machine.lockStatus("Y").state, "FREE");
    assert.equal(api.node.machine.lockStatus("X").holder?.token, Number(token), "X is still held, not released");
  });

  it("a seq without a successor is INVALID_ARGUMENT: 2^53 - 1, or 2^53 - 2 for a blocking call", async () => {
    const top = Number.MAX_SAFE_INTEGER;
    const refused = assertError(await grant("top", String(top)), grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
    assert.equal(refused.details, `seq must be 1..${top - 1}, got ${top} (a seq must leave a successor; start a new client_id)`);
    const lease = await api.ok("Lease", "Grant", { clientId: "top", seq: 1, ttlMs: 5_000 });
    const blocking = { clientId: "top", name: "T", leaseId: lease["leaseId"], wait: true };
    const reserved = assertError(
      await api.unary("Lock", "Acquire", { ...blocking, seq: String(top - 1) }),
      grpc.status.INVALID_ARGUMENT,
      "INVALID_ARGUMENT",
    );
    assert.match(reserved.details, new RegExp(`^seq must be 1\\.\\.${top - 2}, got ${top - 1} \\(a blocking call reserves seq \\+ 1`));
    const campaign = { clientId: "top", name: "T2", leaseId: lease["leaseId"], value: "" };
    assertError(
      await api.unary("Election", "Campaign", { ...campaign, seq: String(top - 1) }),
      grpc.status.INVALID_ARGUMENT,
      "INVALID_ARGUMENT",
    );
    // The largest seqs that leave a successor are accepted.
    await api.ok("Lock", "Acquire", { ...blocking, seq: String(top - 2) });
    await api.ok("Lock", "Release", { clientId: "top", seq: String(top - 1), name: "T", token: "1" });
  });

  it("malformed requests get INVALID_ARGUMENT with a precise message, and the server keeps serving", async () => {
    const cases: [string, string, object, RegExp][] = [
      ["Lease", "Grant", {}, /^client_id must be 1\.\.128 bytes, got 0$/],
      ["Lease", "Grant", { clientId: "ok", ttlMs: 1_000 }, /^seq must be 1\.\.9007199254740990, got 0$/],
      ["Lease", "Grant", { clientId: "ok", seq: "18446744073709551615", ttlMs: 1_000 }, /^seq must be 1\.\.\d+, got 18446744073709551615$/],
      ["Lease", "Grant", { clientId: "ok", seq: 1, ttlMs: 10 }, /^ttl_ms must be 500\.\.3600000, got 10$/],
      ["Lease", "Grant", { clientId: "has space", seq: 1, ttlMs: 1_000 }, /^client_id must be visible ASCII/],
      ["Lock", "Acquire", { clientId: "ok", seq: 1, name: "n".repeat(300), leaseId: 1 }, /^name must be 1\.\.256 bytes, got 300$/],
      [
        "Lock",
        "Acquire",
        { clientId: "ok", seq: 1, name: "a\nb", leaseId: 1 },
        /^name must not contain control characters, found U\+000A at 1$/,
      ],
      ["Lock", "Acquire", { clientId: "ok", seq: 1, name: "n", leaseId: 0 }, /^lease_id must be 1\.\.\d+, got 0$/],
      [
        "Lock",
        "Acquire",
        { clientId: "ok", seq: 1, name: "n", leaseId: 1, wait: true, timeoutMs: 3_600_001 },
        /^timeout_ms must be 0\.\.3600000/,
      ],
      [
        "Election",
        "Campaign",
        { clientId: "ok", seq: 1, name: "e", leaseId: 1, value: "v".repeat(4_097) },
        /^value must be at most 4096 bytes, got 4097$/,
      ],
      ["Lease", "TimeToLive", { leaseId: "-1" }, /^lease_id must be 1\.\.\d+, got 18446744073709551615$/], // -1 wraps on the wire
      ["Cluster", "ReplaceMember", { oldNodeId: "a", newNodeId: "a" }, /both "a"/],
      ["Cluster", "TransferLeader", { toNodeId: "bad id!" }, /^to_node_id must be 1\.\.64 characters/],
    ];
    for (const [service, method, request, message] of cases) {
      const reply = await api.unary(service as "Lease", method, request);
      const error = assertError(reply, grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
      assert.match(error.details, message, `${service}.${method} ${JSON.stringify(request).slice(0, 80)}`);
    }
    // Bytes that are not protobuf at all (field 2, a varint cut off in the middle).
    const garbage = assertError(
      await api.unaryRaw("Lease", "Grant", Buffer.from([0x10, 0xff])),
      grpc.status.INVALID_ARGUMENT,
      "INVALID_ARGUMENT",
    );
    assert.match(garbage.details, /^request is not a valid LeaseGrantRequest/);
    assert.equal(api.node.submitted.filter((c) => c.clientId === "ok").length, 0, "nothing reached the node");
    await api.ok("Lease", "Grant", { clientId: "after", seq: 1, ttlMs: 1_000 });
  });

  it("an oversized message is refused by the transport, and the server keeps serving", async () => {
    const reply = await api.unary("Lease", "Grant", { clientId: "big", seq: 1, ttlMs: 1_000, extra: "x" }, {});
    assert.equal(reply.ok, true);
    const huge = await api.unary("Lock", "Status", { name: "x".repeat(300 * 1024) });
    assert.ok(!huge.ok && huge.code === grpc.status.RESOURCE_EXHAUSTED);
    await api.ok("Lock", "Status", { name: "x" });
  });

  it("an exception inside a handler gives INTERNAL and the server survives", async () => {
    const stderrWrite = process.stderr.write;
    const lines: string[] = [];
    process.stderr.write = ((chunk: string | Uint8Array): boolean => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      api.node.throwNext = new Error("boom");
      const reply = assertError(await grant("i", 1), grpc.status.INTERNAL, "INTERNAL");
      assert.match(reply.details, /internal error in Lease\.Grant/);
    } finally {
      process.stderr.write = stderrWrite;
    }
    const logged = JSON.parse(lines.join("").trim()) as Record<string, unknown>;
    assert.equal(logged["rpc"], "Lease.Grant");
    assert.equal(logged["error"], "boom");
    await api.ok("Lease", "Grant", { clientId: "i", seq: 1, ttlMs: 1_000 });
  });

  it("Cluster: status, members, membership steps, transfer", async () => {
    const status = await api.ok("Cluster", "Status", {});
    assert.equal(status["role"], "leader");
    assert.deepEqual((status["confState"] as Record<string, unknown>)["voters"], ["a", "b", "c"]);
    assert.equal(status["recovering"], false);
    api.node.recovering = true;
    assert.equal((await api.ok("Cluster", "Status", {}))["recovering"], true, "a recovering member says so");
    api.node.recovering = false;
    const members = (await api.ok("Cluster", "Members", {}))["members"] as Record<string, unknown>[];
    assert.deepEqual(
      members.map((m) => [m["id"], m["role"], m["isLeader"]]),
      [
        ["a", "MEMBER_ROLE_VOTER", true],
        ["b", "MEMBER_ROLE_VOTER", false],
        ["c", "MEMBER_ROLE_VOTER", false],
      ],
    );
    const unknown = assertError(
      await api.unary("Cluster", "ReplaceMember", { oldNodeId: "c", newNodeId: "w", witness: true }),
      grpc.status.FAILED_PRECONDITION,
      "REFUSED",
    );
    assert.match(unknown.details, /no address is known for member w/);
    api.node.addresses.set("w", "127.0.0.1:7009");
    const replaced = await api.ok("Cluster", "ReplaceMember", { oldNodeId: "c", newNodeId: "w", witness: true });
    assert.equal(replaced["alreadyDone"], false);
    const cs = replaced["confState"] as Record<string, unknown>;
    assert.deepEqual(cs["voters"], ["a", "b", "w"]);
    assert.deepEqual(cs["witnesses"], ["w"]);
    await api.ok("Cluster", "TransferLeader", { toNodeId: "b" });
    assert.deepEqual(api.node.transfers, ["b"]);
    assertError(await api.unary("Cluster", "TransferLeader", { toNodeId: "q" }), grpc.status.FAILED_PRECONDITION, "REFUSED");
  });

  it("Cluster: a membership call naming a node in the wrong place is FAILED_PRECONDITION and proposes nothing", async () => {
    for (const id of ["d", "e", "f", "w"]) api.node.addresses.set(id, "127.0.0.1:7010");
    const voters = () => api.node.status().confState.voters;
    const refused = async (method: string, request: object, message: RegExp) => {
      const before = api.node.status().confState;
      const reply = assertError(await api.unary("Cluster", method, request), grpc.status.FAILED_PRECONDITION, "REFUSED");
      assert.match(reply.details, message, `${method} ${JSON.stringify(request)}`);
      assert.match(reply.details, /in the configuration voters=\(.*\); nothing was proposed$/);
      assert.deepEqual(api.node.status().confState, before, "nothing changed");
    };
    const start = voters();
    assert.equal(start.length, 3);
    const [v1 = "", v2 = ""] = start;
    // The case: the old id is no member; this used to add the new voter and remove nothing.
    await refused("ReplaceMember", { oldNodeId: "zz", newNodeId: "d" }, /^old_node_id zz is not a member/);
    await refused("ReplaceMember", { oldNodeId: v1, newNodeId: v2 }, new RegExp(`^new_node_id ${v2} is already a voter`));
    await refused("RemoveMember", { nodeId: "zz" }, /^zz is not a member/);
    await refused("AddMember", { nodeId: v1 }, new RegExp(`^${v1} is already a voter`));
    await refused("AddMember", { nodeId: v1, learner: true }, new RegExp(`^${v1} is already a voter`));
    // A learner: not again as a learner, but promoted by AddMember as a voter.
    await api.ok("Cluster", "AddMember", { nodeId: "e", learner: true });
    await refused("AddMember", { nodeId: "e", learner: true }, /^e is already a learner/);
    await refused("ReplaceMember", { oldNodeId: "e", newNodeId: "f" }, /^old_node_id e is a learner, not a voter/);
    const promoted = await api.ok("Cluster", "AddMember", { nodeId: "e" });
    assert.equal(promoted["alreadyDone"], false);
    assert.ok(voters().includes("e"));
    await api.ok("Cluster", "RemoveMember", { nodeId: "e" });
    // A retry after a lost reply is refused too; its message shows the change took effect.
    await api.ok("Cluster", "ReplaceMember", { oldNodeId: v1, newNodeId: "d" });
    await refused("ReplaceMember", { oldNodeId: v1, newNodeId: "d" }, new RegExp(`^old_node_id ${v1} is not a member .*\\bd\\b`));
    assert.equal(voters().length, 3);
  });
});
