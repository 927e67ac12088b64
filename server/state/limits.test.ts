// The byte bounds of limits.ts against the real encoders (pair checks): a worst-case record or
// command, in the alphabets the client API admits, never encodes larger than its bound, and the
// bound is not loose where it matters (leases). A machine driven to its maxima stays under the
// table sums, and every message the machine stores fits ERROR_MESSAGE_BYTES_MAX.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Driver } from "../../testing/kits/state_test_kit.ts";
import { IDENTITY_BYTES_MAX } from "./caller.ts";
import { encodeCommand, type ClientCommand } from "./commands.ts";
import {
  FREEZE_REASON_BYTES_MAX,
  COMMAND_BYTES_MAX,
  DEFAULT_STATE_LIMITS,
  ERROR_MESSAGE_BYTES_MAX,
  commandBytesAtMaxima,
  jsonStringBytesMax,
  resultBytesMax,
  stateConfig,
  stateImageBytesAtMaxima,
  stateSizes,
  utf8ByteLength,
  valueStoredBytes,
  type StateLimits,
} from "./limits.ts";
import { encodeImage, type MachineImage } from "./machine_snapshot.ts";
import { REQUEST_DIGEST_HEX_DIGITS } from "./request_digest.ts";
import type { ApplyResult } from "./results.ts";

const WIDEST = Number.MAX_SAFE_INTEGER;
const L = DEFAULT_STATE_LIMITS;
/** Worst cases per alphabet: every character escaped by JSON. */
const clientId = '"'.repeat(L.clientIdBytesMax); // visible ASCII, written as \"
const identity = "i".repeat(IDENTITY_BYTES_MAX); // an identity's alphabet has no JSON escape
const sessionId = `${identity} ${clientId}`; // sessionKey(identity, clientId)
const name = "\ud800".repeat(Math.floor(L.nameBytesMax / 3)); // lone surrogates: 3 bytes, written as \ud800
const value = "\u0001".repeat(L.valueBytesMax); // a control character: 1 byte, written as \u0001

const empty: MachineImage = {
  appliedIndex: WIDEST,
  nowMs: WIDEST,
  timersTerm: WIDEST,
  ids: { lastToken: WIDEST, lastLeaseId: WIDEST },
  leases: [],
  locks: [],
  elections: [],
  sessions: [],
  idle: [],
};
/** Encoded bytes that `n` copies of a record add to the empty image, per record. */
function perRecord(patch: (n: number) => Partial<MachineImage>, n = 3): number {
  return (encodeImage({ ...empty, ...patch(n) }).length - encodeImage(empty).length) / n;
}
const copies = <T>(n: number, record: T): T[] => Array.from({ length: n }, () => record);
const validUntil = { ttlMs: L.ttlMsMax, rho: 0.49999999999999994, appliedAtMs: WIDEST, serverDeadlineMs: WIDEST };

describe("state limits: bytes at the maxima", () => {
  it("the worst-case strings are at their limits", () => {
    assert.equal(utf8ByteLength(clientId), L.clientIdBytesMax);
    assert.ok(utf8ByteLength(name) <= L.nameBytesMax && utf8ByteLength(name) > L.nameBytesMax - 3);
    assert.equal(utf8ByteLength(value), L.valueBytesMax);
  });

  it("every record bound holds against encodeImage, and the lease bound is tight", () => {
    const b = stateImageBytesAtMaxima(L);
    // The widest freeze: a reason of control characters (6 JSON bytes each) and a full identity.
    const frozen = { reason: "\u0001".repeat(FREEZE_REASON_BYTES_MAX), by: identity, sinceMs: WIDEST };
    assert.equal(b.fixedBytes, encodeImage({ ...empty, frozen }).length);
    const lease = {
      leaseId: WIDEST,
      clientId,
      owner: identity,
      ttlMs: L.ttlMsMax,
      grantedAtMs: WIDEST,
      renewedAtMs: WIDEST,
      deadlineMs: WIDEST,
      renewSeq: WIDEST,
    };
    const leaseBytes = perRecord((n) => ({ leases: copies(n, lease) }));
    assert.ok(leaseBytes <= b.leaseRecordBytesMax && b.leaseRecordBytesMax - leaseBytes < 1, `${leaseBytes} vs ${b.leaseRecordBytesMax}`);
    const holder = { leaseId: WIDEST, token: WIDEST, value: "", grantedAtMs: WIDEST };
    const held = { name, holder, waiters: [], delay: null };
    const delayed = { name, holder: null, waiters: [], delay: { delayId: WIDEST, untilMs: WIDEST } };
    for (const mutex of [held, delayed]) assert.ok(perRecord((n) => ({ elections: copies(n, mutex) })) <= b.nameRecordBytesMax);
    const waiter = { leaseId: WIDEST, value: "" };
    const withWaiters =
      perRecord(() => ({ elections: [{ ...held, waiters: copies(3, waiter) }] }), 1) - perRecord(() => ({ elections: [held] }), 1);
    assert.ok(withWaiters / 3 <= b.waiterBytesMax);
    const session = {
      clientId: sessionId,
      lastSeq: WIDEST,
      lastActiveMs: WIDEST,
      digest: "f".repeat(REQUEST_DIGEST_HEX_DIGITS),
      result: { ok: false as const, code: "PERMISSION_DENIED" as const, message: "m".repeat(ERROR_MESSAGE_BYTES_MAX) },
    };
    assert.ok(perRecord((n) => ({ sessions: copies(n, session) }), 2) <= b.sessionRecordBytesMax);
    assert.ok(perRecord((n) => ({ idle: copies(n, { clientId: sessionId, dropAtMs: WIDEST }) })) <= b.idleEntryBytesMax);
  });

  it("a value adds exactly its stored bytes to the image, whatever its alphabet", () => {
    const holder = (v: string) => ({ leaseId: WIDEST, token: WIDEST, value: v, grantedAtMs: WIDEST });
    const image = (v: string) =>
      encodeImage({ ...empty, elections: [{ name, holder: holder(v), waiters: [{ leaseId: 1, value: v }], delay: null }] });
    for (const v of [value, "x".repeat(4096), '"\\'.repeat(2048), "\ud800".repeat(1365), "é€😀", "a\u2028b", "\u007f"]) {
      assert.equal(image(v).length - image("").length, 2 * valueStoredBytes(v), JSON.stringify(v.slice(0, 8)));
      assert.ok(valueStoredBytes(v) <= jsonStringBytesMax(utf8ByteLength(v), "any"));
    }
    assert.equal(valueStoredBytes(""), 0);
    assert.equal(valueStoredBytes("10.0.0.1:8080"), 13);
    assert.equal(valueStoredBytes("\u0001"), 6);
  });

  it("a stored KeepAlive answer grows by at most keepAliveIdBytesMax per lease id", () => {
    const b = stateImageBytesAtMaxima(L);
    const answer = (renewed: number, failed: number) => ({
      clientId,
      lastSeq: WIDEST,
      lastActiveMs: WIDEST,
      digest: "f".repeat(REQUEST_DIGEST_HEX_DIGITS),
      result: {
        ok: true as const,
        kind: "LeaseKeepAlive" as const,
        renewed: copies(renewed, { leaseId: WIDEST, validUntil }),
        failed: copies(failed, { leaseId: WIDEST, code: "LEASE_NOT_FOUND" as const }),
      },
    });
    const base = perRecord(() => ({ sessions: [answer(0, 0)] }), 1);
    assert.ok(base <= b.sessionRecordBytesMax);
    for (const [renewed, failed] of [
      [L.keepAliveLeaseIdsMax, 0],
      [0, L.keepAliveLeaseIdsMax],
      [7, 9],
    ] as const) {
      const grown = perRecord(() => ({ sessions: [answer(renewed, failed)] }), 1) - base;
      assert.ok(grown <= (renewed + failed) * b.keepAliveIdBytesMax, `${renewed}+${failed}: ${grown}`);
    }
  });

  it("every limit is a LIMIT_EXCEEDED naming it and its value; every stored result fits resultBytesMax", () => {
    const limits: Partial<StateLimits> = {
      leasesPerClientMax: 2,
      leasesMax: 3,
      namesMax: 2,
      waitersPerLockMax: 1,
      waitersMax: 1,
      keepAliveLeaseIdsMax: 2,
      keepAliveLeaseIdsStoredMax: 2,
      valueBytesMax: 4,
      valueBytesTotalMax: 24,
    };
    const d = new Driver(stateConfig({ limits }));
    const results: ApplyResult[] = [];
    const send = (clientId: string, body: Parameters<Driver["client"]>[1]) => results.push(d.client(clientId, body));
    const [la1, la2] = [d.grant("a"), d.grant("a")];
    send("a", { kind: "LeaseGrant", ttlMs: 10_000 }); // leasesPerClientMax
    const lb = d.grant("b");
    send("c", { kind: "LeaseGrant", ttlMs: 10_000 }); // leasesMax
    send("a", { kind: "LockAcquire", name: "L", leaseId: la1, wait: true });
    send("b", { kind: "LockAcquire", name: "L", leaseId: lb, wait: true }); // queued: 1 waiter in all
    send("d", { kind: "LockAcquire", name: "L", leaseId: la2, wait: true }); // waitersPerLockMax
    send("a", { kind: "ElectionCampaign", name: "E", leaseId: la1, value: "\u0001".repeat(4) }); // 24 stored bytes
    send("a", { kind: "LockAcquire", name: "M", leaseId: la1, wait: true }); // namesMax
    send("d", { kind: "ElectionCampaign", name: "E", leaseId: la2, value: "" }); // waitersMax
    send("b", { kind: "WaitCancel", table: "lock", name: "L", leaseId: lb });
    send("b", { kind: "ElectionCampaign", name: "E", leaseId: lb, value: "x" }); // valueBytesTotalMax
    send("e", { kind: "LeaseKeepAlive", leaseIds: [1, 2, 3] }); // keepAliveLeaseIdsMax
    // The other errors a client can get, with the widest arguments.
    send("f", { kind: "LeaseGrant", ttlMs: WIDEST });
    send("f", { kind: "LeaseRevoke", leaseId: WIDEST });
    send("f", { kind: "LockAcquire", name: "L", leaseId: la2, wait: false });
    send("f", { kind: "LockAcquire", name: "n".repeat(L.nameBytesMax + 1), leaseId: la2, wait: false });
    send("f", { kind: "ElectionCampaign", name: "F", leaseId: WIDEST, value: "" });
    send("f", { kind: "ElectionProclaim", name: "E", token: WIDEST, value: "" });
    send("f", { kind: "ElectionProclaim", name: "E", token: WIDEST, value: "xxxxx" });
    send("f", { kind: "LeaseKeepAlive", leaseIds: [] });
    const exceeded = results.flatMap((r) => (!r.ok && r.code === "LIMIT_EXCEEDED" ? [r.message] : []));
    const named = exceeded.map((m) => /: (\w+) = (\d+)$/.exec(m)?.slice(1) ?? assert.fail(m));
    assert.deepEqual(
      named.map(([limit, v]) => [limit, Number(v)]),
      [
        ["leasesPerClientMax", 2],
        ["leasesMax", 3],
        ["waitersPerLockMax", 1],
        ["namesMax", 2],
        ["waitersMax", 1],
        ["valueBytesTotalMax", 24],
        ["keepAliveLeaseIdsMax", 2],
      ],
    );
    const codes = new Set(results.flatMap((r) => (r.ok ? [] : [r.code])));
    assert.deepEqual([...codes].sort(), ["INVALID_ARGUMENT", "LEASE_NOT_FOUND", "LIMIT_EXCEEDED", "LOCK_HELD", "NOT_HOLDER"]);
    // Every number at 16 digits: the message still fits, and so does the stored result.
    const bound = resultBytesMax(L);
    for (const r of results) {
      const { index: _index, replayed: _replayed, events: _events, ...stored } = r;
      const widest = stored.ok ? stored : { ...stored, message: stored.message.replace(/\d+/g, String(WIDEST)) };
      assert.ok(JSON.stringify(widest).length <= bound, JSON.stringify(widest));
      if (!widest.ok) assert.ok(widest.message.length <= ERROR_MESSAGE_BYTES_MAX && /^[\x20-\x7e]+$/.test(widest.message), widest.message);
    }
  });

  it("the table sums are aggregate limits times record bounds", () => {
    const b = stateImageBytesAtMaxima(L);
    assert.equal(b.leasesBytes, L.leasesMax * b.leaseRecordBytesMax);
    assert.equal(b.waitersBytes, L.waitersMax * b.waiterBytesMax);
    assert.equal(b.valuesBytes, L.valueBytesTotalMax);
    assert.equal(b.keepAliveIdsBytes, L.keepAliveLeaseIdsStoredMax * b.keepAliveIdBytesMax);
    const tables = b.leasesBytes + b.namesBytes + b.waitersBytes + b.valuesBytes + b.sessionsBytes + b.keepAliveIdsBytes + b.idleBytes;
    assert.equal(b.totalBytes, b.fixedBytes + tables);
  });

  it("a machine driven to its maxima with worst-case strings stays under stateImageBytesAtMaxima", () => {
    const limits: Partial<StateLimits> = {
      leasesMax: 8,
      leasesPerClientMax: 4,
      namesMax: 6,
      waitersPerLockMax: 4,
      waitersMax: 6,
      sessionsMax: 8,
      keepAliveLeaseIdsMax: 4,
      keepAliveLeaseIdsStoredMax: 6,
      valueBytesTotalMax: 6 * 6 * L.valueBytesMax,
    };
    const full = { ...L, ...limits };
    const d = new Driver(stateConfig({ limits }));
    const id = (i: number) => `${'"'.repeat(L.clientIdBytesMax - 1)}${i}`;
    const nameOf = (i: number) => `${"\ud800".repeat(Math.floor(L.nameBytesMax / 3))}${i}`;
    const leases = [0, 1, 2, 3].flatMap((i) => [d.grant(id(i)), d.grant(id(i))]);
    // 6 names: 3 elections held with full control-character values, 3 locks; a waiter on each,
    // with a full value on the elections.
    const last = leases[7] ?? 0;
    for (let n = 0; n < 6; n++) {
      const owner = leases[n] ?? 0;
      const holder = id(Math.floor(n / 2));
      if (n < 3) {
        d.client(holder, { kind: "ElectionCampaign", name: nameOf(n), leaseId: owner, value });
        d.client(id(3), { kind: "ElectionCampaign", name: nameOf(n), leaseId: last, value });
      } else {
        d.acquire(holder, nameOf(n), owner);
        d.acquire(id(3), nameOf(n), last);
      }
    }
    // Every table is full: leases, names, waiters, values.
    for (const r of [d.client(id(4), { kind: "LeaseGrant", ttlMs: 10_000 }), d.acquire(id(0), nameOf(9), leases[0] ?? 0)]) {
      assert.ok(!r.ok && r.code === "LIMIT_EXCEEDED", JSON.stringify(r));
    }
    // Lease-less sessions: two with KeepAlive answers (6 ids in all), two with errors.
    d.client(id(5), { kind: "LeaseKeepAlive", leaseIds: leases.slice(0, 2) });
    d.client(id(6), { kind: "LeaseKeepAlive", leaseIds: leases.slice(2, 6) });
    for (const k of [7, 8]) d.client(id(k), { kind: "LeaseRevoke", leaseId: WIDEST });
    const b = stateImageBytesAtMaxima(full);
    const image = d.machine.snapshot().length;
    assert.ok(image <= b.totalBytes, `${image} > ${b.totalBytes}`);
    assert.ok(image > 0.9 * b.totalBytes, `the bound is not loose: ${image} of ${b.totalBytes}`);
  });

  it("a real machine's image is below the bound of its own table sizes", () => {
    const d = new Driver(stateConfig({}));
    const ids = ['"a"'.padEnd(L.clientIdBytesMax, "\\"), "b".repeat(L.clientIdBytesMax)];
    for (let i = 0; i < 200; i++) d.grant(ids[i % 2] ?? "", 60_000);
    const b = stateImageBytesAtMaxima(L);
    const image = d.machine.snapshot().length;
    assert.ok(image <= b.fixedBytes + 200 * b.leaseRecordBytesMax + 2 * (b.sessionRecordBytesMax + b.idleEntryBytesMax), String(image));
    assert.ok(image > b.fixedBytes + 200 * (b.leaseRecordBytesMax / 2), "the lease bound is not loose");
  });

  it("commandBytesAtMaxima bounds every client command at the field limits, and fits COMMAND_BYTES_MAX", () => {
    const s = { clientId, seq: WIDEST, identity, admin: false };
    const commands: ClientCommand[] = [
      { kind: "LeaseGrant", ...s, ttlMs: WIDEST, leaseId: WIDEST },
      { kind: "LeaseKeepAlive", ...s, leaseIds: copies(L.keepAliveLeaseIdsMax, WIDEST) },
      { kind: "LeaseRevoke", ...s, leaseId: WIDEST },
      { kind: "LockAcquire", ...s, name, leaseId: WIDEST, wait: true },
      { kind: "LockRelease", ...s, name, token: WIDEST },
      { kind: "ElectionCampaign", ...s, name, leaseId: WIDEST, value },
      { kind: "ElectionProclaim", ...s, name, token: WIDEST, value },
      { kind: "ElectionResign", ...s, name, token: WIDEST },
      { kind: "WaitCancel", ...s, table: "election", name, leaseId: WIDEST },
    ];
    const bound = commandBytesAtMaxima(L);
    const sizes = commands.map((command) => encodeCommand({ leaderTimeMs: WIDEST, term: WIDEST, command }).length);
    for (const [i, bytes] of sizes.entries()) assert.ok(bytes <= bound, `${commands[i]?.kind}: ${bytes} > ${bound}`);
    assert.ok(bound - Math.max(...sizes) < 64, "the bound is tight");
    assert.ok(bound <= COMMAND_BYTES_MAX);
  });

  it("stateSizes carries what server/limits.ts relates", () => {
    const s = stateSizes(L);
    assert.equal(s.requestFields.keepAliveLeaseIdsMax, L.keepAliveLeaseIdsMax);
    assert.equal(s.commandBytesMax, commandBytesAtMaxima(L));
    assert.deepEqual(s.image, stateImageBytesAtMaxima(L));
  });

  it("a configuration whose aggregate limits cannot hold one request fails validation", () => {
    assert.throws(() => stateConfig({ limits: { waitersPerLockMax: 10, waitersMax: 9 } }), /waitersPerLockMax <= waitersMax/);
    assert.throws(() => stateConfig({ limits: { valueBytesMax: 100, valueBytesTotalMax: 599 } }), /valueBytesTotalMax/);
    assert.throws(() => stateConfig({ limits: { keepAliveLeaseIdsMax: 8, keepAliveLeaseIdsStoredMax: 7 } }), /keepAliveLeaseIdsStoredMax/);
    assert.throws(() => stateConfig({ limits: { waitersMax: 0 } }), /waitersMax must be a positive/);
  });
});
