// The byte bounds of limits.ts against the real encoders (pair checks): a worst-case record or
// command, in the alphabets the client API admits, never encodes larger than its bound, and the
// bound is not loose where it matters (leases). A real machine's image stays under the table sums.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Driver } from "../../testing/kits/state_test_kit.ts";
import { encodeCommand, type ClientCommand } from "./commands.ts";
import {
  COMMAND_BYTES_MAX,
  DEFAULT_STATE_LIMITS,
  commandBytesAtMaxima,
  resultBytesMax,
  stateConfig,
  stateImageBytesAtMaxima,
  stateSizes,
  utf8ByteLength,
} from "./limits.ts";
import { encodeImage, type MachineImage } from "./machine_snapshot.ts";

const WIDEST = Number.MAX_SAFE_INTEGER;
const L = DEFAULT_STATE_LIMITS;
/** Worst cases per alphabet: every character escaped by JSON. */
const clientId = '"'.repeat(L.clientIdBytesMax); // visible ASCII, written as \"
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

describe("state limits: bytes at the maxima", () => {
  it("the worst-case strings are at their limits", () => {
    assert.equal(utf8ByteLength(clientId), L.clientIdBytesMax);
    assert.ok(utf8ByteLength(name) <= L.nameBytesMax && utf8ByteLength(name) > L.nameBytesMax - 3);
    assert.equal(utf8ByteLength(value), L.valueBytesMax);
  });

  it("every record bound holds against encodeImage, and the lease bound is tight", () => {
    const b = stateImageBytesAtMaxima(L);
    assert.equal(b.fixedBytes, encodeImage(empty).length);
    const lease = {
      leaseId: WIDEST,
      clientId,
      ttlMs: WIDEST,
      grantedAtMs: WIDEST,
      renewedAtMs: WIDEST,
      deadlineMs: WIDEST,
      renewSeq: WIDEST,
    };
    const leaseBytes = perRecord((n) => ({ leases: copies(n, lease) }));
    assert.ok(leaseBytes <= b.leaseRecordBytesMax && b.leaseRecordBytesMax - leaseBytes < 1, `${leaseBytes} vs ${b.leaseRecordBytesMax}`);
    const holder = { leaseId: WIDEST, token: WIDEST, value, grantedAtMs: WIDEST };
    const mutex = { name, holder, waiters: [], delay: { delayId: WIDEST, untilMs: WIDEST } };
    assert.ok(perRecord((n) => ({ elections: copies(n, mutex) })) <= b.nameRecordBytesMax);
    const waiter = { leaseId: WIDEST, value };
    const withWaiters =
      perRecord(() => ({ elections: [{ ...mutex, waiters: copies(3, waiter) }] }), 1) - perRecord(() => ({ elections: [mutex] }), 1);
    assert.ok(withWaiters / 3 <= b.waiterBytesMax);
    const validUntil = { ttlMs: WIDEST, rho: 0.49999999999999994, appliedAtMs: WIDEST, serverDeadlineMs: WIDEST };
    const renewed = copies(L.keepAliveLeaseIdsMax, { leaseId: WIDEST, validUntil });
    const session = {
      clientId,
      lastSeq: WIDEST,
      lastActiveMs: WIDEST,
      result: { ok: true as const, kind: "LeaseKeepAlive" as const, renewed, failed: [] },
    };
    assert.ok(perRecord((n) => ({ sessions: copies(n, session) }), 2) <= b.sessionRecordBytesMax);
    assert.ok(perRecord((n) => ({ idle: copies(n, { clientId, dropAtMs: WIDEST }) })) <= b.idleEntryBytesMax);
  });

  it("an error result with the longest name fits resultBytesMax", () => {
    const error = { ok: false, code: "INVALID_ARGUMENT", message: `${name} has ${WIDEST} waiters and ${WIDEST} more` };
    assert.ok(JSON.stringify(error).length <= resultBytesMax(L));
  });

  it("the table sums are count maxima times record bounds", () => {
    const b = stateImageBytesAtMaxima(L);
    assert.equal(b.leasesBytes, L.leasesMax * b.leaseRecordBytesMax);
    assert.equal(b.waitersBytes, L.namesMax * L.waitersPerLockMax * b.waiterBytesMax);
    const tables = b.leasesBytes + b.namesBytes + b.waitersBytes + b.sessionsBytes + b.idleBytes;
    assert.equal(b.totalBytes, b.fixedBytes + tables);
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
    const s = { clientId, seq: WIDEST };
    const commands: ClientCommand[] = [
      { kind: "LeaseGrant", ...s, ttlMs: WIDEST },
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
});
