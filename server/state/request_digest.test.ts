import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { ClientCommand } from "./commands.ts";
import { sha256Hex } from "./hash.ts";
import { canonicalRequest, REQUEST_DIGEST_PATTERN, requestDigest } from "./request_digest.ts";

const session = { clientId: "c", seq: 7, identity: "alice", admin: false };

describe("request digest", () => {
  it("sha256Hex is SHA-256 (checked against node:crypto across the padding boundaries)", () => {
    for (const length of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 24_600]) {
      const bytes = new Uint8Array(length).map((_, i) => (i * 131 + length) & 0xff);
      assert.equal(sha256Hex(bytes), createHash("sha256").update(bytes).digest("hex"), `length ${length}`);
    }
    assert.equal(sha256Hex(new TextEncoder().encode("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("covers the kind and every argument; not the session, the caller or the drawn lease id", () => {
    const acquire: ClientCommand = { kind: "LockAcquire", ...session, name: "X", leaseId: 5, wait: true };
    const digest = requestDigest(acquire);
    assert.match(digest, REQUEST_DIGEST_PATTERN);
    assert.equal(canonicalRequest(acquire), '["LockAcquire",[["leaseId",5],["name","X"],["wait",true]]]');
    for (const same of [{ seq: 8 }, { clientId: "d" }, { identity: "bob" }, { admin: true }]) {
      assert.equal(requestDigest({ ...acquire, ...same }), digest, JSON.stringify(same));
    }
    for (const other of [{ name: "Y" }, { leaseId: 6 }, { wait: false }, { kind: "ElectionCampaign", value: "" }]) {
      assert.notEqual(requestDigest({ ...acquire, ...other } as ClientCommand), digest, JSON.stringify(other));
    }
    const grant: ClientCommand = { kind: "LeaseGrant", ...session, ttlMs: 5_000, leaseId: 11 };
    assert.equal(requestDigest({ ...grant, leaseId: 12 }), requestDigest(grant), "the leader draws the lease id per attempt");
    assert.notEqual(requestDigest({ ...grant, ttlMs: 5_001 }), requestDigest(grant));
    const keepAlive: ClientCommand = { kind: "LeaseKeepAlive", ...session, leaseIds: [1, 2] };
    assert.notEqual(requestDigest({ ...keepAlive, leaseIds: [2, 1] }), requestDigest(keepAlive), "the answer lists ids in order");
    assert.notEqual(requestDigest({ ...keepAlive, leaseIds: [1, 2, 2] }), requestDigest(keepAlive));
  });

  it("a field added to a command is part of the request unless listed as the server's", () => {
    const release = { kind: "LockRelease", ...session, name: "X", token: 3 } as const;
    const extended = { ...release, fence: 1 } as unknown as ClientCommand;
    assert.notEqual(requestDigest(extended), requestDigest(release));
  });

  it("strings are compared exactly: no two texts share an encoding", () => {
    const proclaim = (value: string): ClientCommand => ({ kind: "ElectionProclaim", ...session, name: "E", token: 1, value });
    const values = ["", "a", "a ", '"', '\\"', "\u0000", "\ud800", "\udc00", "é", "e\u0301", '","'];
    const digests = new Set(values.map((v) => requestDigest(proclaim(v))));
    assert.equal(digests.size, values.length);
  });
});
