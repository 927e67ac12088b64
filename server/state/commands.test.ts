import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeCommand, encodeCommand, type Command } from "./commands.ts";
import { COMMAND_BYTES_MAX } from "./limits.ts";
import { LockStateMachine } from "./machine.ts";

const s = { clientId: "c1", seq: 3 };
const ALL: Command[] = [
  { kind: "LeaseGrant", ...s, ttlMs: 5000 },
  { kind: "LeaseGrant", ...s, ttlMs: 5000, leaseId: 2 ** 53 - 1, identity: "alice", admin: false },
  { kind: "LeaseKeepAlive", ...s, leaseIds: [1, 2, 3] },
  { kind: "LeaseRevoke", ...s, leaseId: 7, identity: "ops@example", admin: true },
  { kind: "LeaseRevoke", ...s, leaseId: 7 },
  { kind: "LockAcquire", ...s, name: "db/primary", leaseId: 7, wait: true },
  { kind: "LockRelease", ...s, name: "db/primary", token: 42 },
  { kind: "ElectionCampaign", ...s, name: "e", leaseId: 7, value: "host-a:9000" },
  { kind: "ElectionProclaim", ...s, name: "e", token: 43, value: "host-b" },
  { kind: "ElectionResign", ...s, name: "e", token: 43 },
  { kind: "WaitCancel", ...s, table: "election", name: "e", leaseId: 7 },
  { kind: "LeaseExpire", leaseId: 7, renewSeq: 2 },
  { kind: "LockDelayEnd", table: "lock", name: "db/primary", delayId: 99 },
  { kind: "LeaderTimersRestart" },
  { kind: "RestoreEpochBump", epochMin: 3 },
  { kind: "Noop" },
  {
    kind: "LeaseKeepAliveBatch",
    renewals: [
      { kind: "LeaseKeepAlive", ...s, leaseIds: [1] },
      { kind: "LeaseKeepAlive", clientId: "c2", seq: 1, leaseIds: [4, 5], identity: "bob", admin: false },
    ],
  },
];

const text = (t: string): Uint8Array => new TextEncoder().encode(t);
const wire = (command: unknown, extra: Record<string, unknown> = {}): Uint8Array =>
  text(JSON.stringify({ v: 1, leaderTimeMs: 10, term: 2, command, ...extra }));

describe("command codec", () => {
  it("round-trips every command kind", () => {
    for (const command of ALL) {
      const decoded = decodeCommand(encodeCommand({ leaderTimeMs: 123, term: 4, command }));
      assert.deepEqual(decoded, { ok: true, value: { leaderTimeMs: 123, term: 4, command } }, command.kind);
    }
  });

  it("answers garbage with a reason, never a throw", () => {
    const garbage: Uint8Array[] = [
      new Uint8Array([0xff, 0xfe, 0x00, 0x81]),
      text("not json"),
      text("null"),
      text("[1,2]"),
      text('{"v":3,"leaderTimeMs":1,"term":1,"command":{"kind":"Noop"}}'),
      wire({ kind: "Noop" }, { leaderTimeMs: -1 }),
      wire({ kind: "Noop" }, { term: 1.5 }),
      wire({ kind: "Explode" }),
      wire({ kind: "toString" }),
      wire({ kind: "LeaseGrant", clientId: "c", seq: 1 }),
      wire({ kind: "LeaseGrant", clientId: "c", seq: 0, ttlMs: 1000 }),
      wire({ kind: "LeaseGrant", clientId: 5, seq: 1, ttlMs: 1000 }),
      wire({ kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: "1000" }),
      wire({ kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: 2 ** 60 }),
      wire({ kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: 1000, extra: true }),
      wire({ kind: "LeaseKeepAlive", clientId: "c", seq: 1, leaseIds: [1, -2] }),
      wire({ kind: "LockAcquire", clientId: "c", seq: 1, name: "x", leaseId: 1, wait: "yes" }),
      wire({ kind: "LockDelayEnd", table: "table", name: "x", delayId: 1 }),
      // v2 fields in a v1 entry, and malformed v2 fields.
      wire({ kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: 1000, leaseId: 5 }),
      wire({ kind: "LeaseRevoke", clientId: "c", seq: 1, leaseId: 5, identity: "a" }),
      wire({ kind: "LeaseRevoke", clientId: "c", seq: 1, leaseId: 5, identity: 7 }, { v: 2 }),
      wire({ kind: "LeaseRevoke", clientId: "c", seq: 1, leaseId: 5, admin: "yes" }, { v: 2 }),
      wire({ kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: 1000, leaseId: 0 }, { v: 2 }),
      wire({ kind: "LeaseExpire", leaseId: 1, renewSeq: 1, identity: "a" }, { v: 2 }),
      wire("Noop"),
      new Uint8Array(COMMAND_BYTES_MAX + 1),
      new Uint8Array(0),
    ];
    for (const bytes of garbage) {
      const decoded = decodeCommand(bytes);
      assert.equal(decoded.ok, false);
      if (!decoded.ok) assert.ok(decoded.reason.length > 0);
    }
  });

  it("decodes version 1 entries (logs written before identities) as the anonymous caller", () => {
    const decoded = decodeCommand(wire({ kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: 1000 }));
    assert.deepEqual(decoded, {
      ok: true,
      value: { leaderTimeMs: 10, term: 2, command: { kind: "LeaseGrant", clientId: "c", seq: 1, ttlMs: 1000 } },
    });
  });

  it("the machine turns undecodable entries into INVALID_ARGUMENT and changes nothing else", () => {
    const machine = new LockStateMachine();
    const before = machine.snapshot();
    const r = machine.apply(1, text('{"v":1,"leaderTimeMs":5,"term":1,"command":{"kind":"LeaseGrant"}}'));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, "INVALID_ARGUMENT");
    const after = JSON.parse(new TextDecoder().decode(machine.snapshot())) as Record<string, unknown>;
    const was = JSON.parse(new TextDecoder().decode(before)) as Record<string, unknown>;
    assert.deepEqual({ ...after, appliedIndex: 0 }, was);
  });
});
