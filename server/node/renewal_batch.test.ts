import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeCommand, encodeCommand, type LeaseKeepAlive, RENEWALS_PER_BATCH_MAX } from "../state/commands.ts";
import { COMMAND_BYTES_MAX, DEFAULT_STATE_CONFIG, utf8ByteLength } from "../state/limits.ts";
import { LockStateMachine } from "../state/machine.ts";
import { Driver } from "../../testing/kits/state_test_kit.ts";
import { type QueuedRenewal, RENEWAL_BATCH_OVERHEAD_BYTES, RenewalQueue, renewalBytes } from "./renewal_batch.ts";

const renewal = (clientId: string, leaseIds: readonly number[], seq = 1): LeaseKeepAlive => ({
  kind: "LeaseKeepAlive",
  clientId,
  seq,
  leaseIds,
});
const queued = (command: LeaseKeepAlive): QueuedRenewal<string> => ({
  command,
  callback: command.clientId,
  bytes: renewalBytes(command),
  cancelled: false,
});

describe("renewal queue", () => {
  it("a batch leaves once its oldest renewal has waited coalesceTicks ticks", () => {
    const q = new RenewalQueue<string>(2);
    assert.equal(q.tick(), null, "an empty queue has no batch");
    assert.equal(q.add(queued(renewal("a", [1]))), null);
    assert.equal(q.tick(), null);
    assert.equal(q.add(queued(renewal("b", [2]))), null);
    const batch = q.tick();
    assert.deepEqual(
      batch?.map((r) => r.callback),
      ["a", "b"],
    );
    assert.equal(q.size, 0);
    // The next renewal starts a new interval.
    q.add(queued(renewal("c", [3])));
    assert.equal(q.tick(), null);
    assert.equal(q.tick()?.length, 1);
  });

  it("a renewal that would not fit the entry beside the others sends them first; every batch entry fits COMMAND_BYTES_MAX", () => {
    const q = new RenewalQueue<string>(1_000);
    const ids = Array.from({ length: DEFAULT_STATE_CONFIG.limits.keepAliveLeaseIdsMax }, (_, i) => Number.MAX_SAFE_INTEGER - i);
    const batches: QueuedRenewal<string>[][] = [];
    for (let i = 0; i < 20; i++) {
      const out = q.add(queued(renewal(`client-${i}`, ids)));
      if (out !== null) batches.push(out);
    }
    batches.push(q.take());
    assert.ok(batches.length > 1, "twenty full renewals fit one entry");
    assert.equal(batches.flat().length, 20, "a renewal was lost");
    for (const batch of batches) {
      const bytes = encodeCommand({
        leaderTimeMs: Number.MAX_SAFE_INTEGER,
        term: Number.MAX_SAFE_INTEGER,
        command: { kind: "LeaseKeepAliveBatch", renewals: batch.map((r) => r.command) },
      }).length;
      assert.ok(bytes <= COMMAND_BYTES_MAX, `a batch entry of ${bytes} bytes`);
    }
    // The first batch was as full as the bytes allow: one more renewal would not have fitted.
    const first = batches[0] ?? [];
    const used = RENEWAL_BATCH_OVERHEAD_BYTES + first.reduce((n, r) => n + r.bytes, 0);
    assert.ok(used + renewalBytes(renewal("client-x", ids)) > COMMAND_BYTES_MAX);
  });

  it("holds at most RENEWALS_PER_BATCH_MAX renewals in one batch", () => {
    const q = new RenewalQueue<string>(1_000);
    let out: QueuedRenewal<string>[] | null = null;
    for (let i = 0; i <= RENEWALS_PER_BATCH_MAX && out === null; i++) out = q.add(queued(renewal("a", [1], i + 1)));
    assert.equal(out?.length, RENEWALS_PER_BATCH_MAX);
    assert.equal(q.size, 1);
  });

  it("the widest renewal the state limits allow fits a batch of its own", () => {
    const limits = DEFAULT_STATE_CONFIG.limits;
    const widest = renewal(
      "x".repeat(limits.clientIdBytesMax),
      Array.from({ length: limits.keepAliveLeaseIdsMax }, () => Number.MAX_SAFE_INTEGER),
      Number.MAX_SAFE_INTEGER,
    );
    const withCaller = { ...widest, identity: "i".repeat(256), admin: false };
    assert.ok(new RenewalQueue<string>(1).fits(renewalBytes(withCaller)), `${utf8ByteLength(JSON.stringify(withCaller))} bytes`);
  });
});

describe("LeaseKeepAliveBatch", () => {
  it("applies each renewal as its own LeaseKeepAlive entry would: the same answers and the same sessions", () => {
    // Two machines with the same leases; one applies three renewals one entry each, the other in a batch.
    const single = new Driver();
    const batched = new Driver();
    const leases = ["a", "b", "c"].map((c) => [single.grant(c, 5_000), batched.grant(c, 5_000)] as const);
    for (const [x, y] of leases) assert.equal(x, y);
    single.at(3_000);
    batched.at(3_000);
    const renewals = [renewal("a", [leases[0]![0], 424_242], 2), renewal("b", [leases[1]![0]], 2), renewal("a", [leases[0]![0]], 3)];
    const one = renewals.map((r) => single.raw(encodeCommand({ leaderTimeMs: single.timeMs, term: single.term, command: r })));
    const all = batched.raw(
      encodeCommand({ leaderTimeMs: batched.timeMs, term: batched.term, command: { kind: "LeaseKeepAliveBatch", renewals } }),
    );
    assert.ok(all.ok && all.kind === "LeaseKeepAliveBatch", JSON.stringify(all));
    assert.deepEqual(
      all.results.map((r) => r.result),
      one.map(({ index: _i, replayed: _r, events: _e, ...result }) => result),
    );
    for (const client of ["a", "b", "c"]) assert.deepEqual(batched.machine.sessionLast("", client), single.machine.sessionLast("", client));
    assert.deepEqual(batched.machine.leaseTimeToLive(leases[0]![1]), single.machine.leaseTimeToLive(leases[0]![0]));
    // The same (client, seq) again, inside a later batch: replayed from its session, not re-applied.
    const again = batched.raw(
      encodeCommand({ leaderTimeMs: 4_000, term: 1, command: { kind: "LeaseKeepAliveBatch", renewals: [renewals[1]!] } }),
    );
    assert.ok(again.ok && again.kind === "LeaseKeepAliveBatch");
    assert.equal(again.results[0]?.replayed, true);
    assert.deepEqual(again.results[0]?.result, all.results[1]?.result);
  });

  it("refuses a malformed batch with a reason: empty, too long, a renewal of another kind or with a bad field", () => {
    const stamp = (command: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify({ v: 2, leaderTimeMs: 1, term: 1, command }));
    const cases: [unknown, RegExp][] = [
      [{ kind: "LeaseKeepAliveBatch", renewals: [] }, /1\.\.512/],
      [
        { kind: "LeaseKeepAliveBatch", renewals: Array.from({ length: RENEWALS_PER_BATCH_MAX + 1 }, (_, i) => renewal("a", [1], i + 1)) },
        /1\.\.512/,
      ],
      [
        { kind: "LeaseKeepAliveBatch", renewals: [{ kind: "LeaseRevoke", clientId: "a", seq: 1, leaseId: 1 }] },
        /every renewal must be a LeaseKeepAlive/,
      ],
      [{ kind: "LeaseKeepAliveBatch", renewals: [{ ...renewal("a", [1]), seq: 0 }] }, /seq/],
      [{ kind: "LeaseKeepAliveBatch", renewals: [{ ...renewal("a", [1]), extra: 1 }] }, /unknown fields/],
      [{ kind: "LeaseKeepAliveBatch", renewals: "x" }, /list/],
      [{ kind: "LeaseKeepAliveBatch", renewals: [renewal("a", [1])], more: 1 }, /unknown fields/],
    ];
    for (const [command, reason] of cases) {
      const r = decodeCommand(stamp(command));
      assert.ok(!r.ok, JSON.stringify(command).slice(0, 80));
      if (!r.ok) assert.match(r.reason, reason);
      // The machine answers it INVALID_ARGUMENT and changes nothing.
      const m = new LockStateMachine();
      const applied = m.apply(1, stamp(command));
      assert.ok(!applied.ok && applied.code === "INVALID_ARGUMENT");
    }
  });
});
