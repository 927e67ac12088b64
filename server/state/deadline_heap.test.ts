// The leases' expiry index: the heap against a sorted reference, and LeaseTable.due() against
// the scan of every lease it replaced, over random grants, renewals, removals and re-grants of
// the same id; the index stays bounded on a member that never asks for due leases.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SeededRandom } from "../core/random.ts";
import { DeadlineHeap, type DeadlineEntry } from "./deadline_heap.ts";
import { LeaseTable, type DueLease } from "./lease_table.ts";

const order = (a: DeadlineEntry, b: DeadlineEntry): number => a.deadlineMs - b.deadlineMs || a.id - b.id || a.version - b.version;

describe("DeadlineHeap", () => {
  it("pops in (deadline, id, version) order under random pushes, pops and rebuilds", () => {
    const random = new SeededRandom(7);
    const heap = new DeadlineHeap();
    let reference: DeadlineEntry[] = [];
    for (let step = 0; step < 20_000; step++) {
      const r = random.nextInt(100);
      if (r < 55) {
        const e = { deadlineMs: random.nextInt(500), id: random.nextInt(50), version: random.nextInt(3) };
        heap.push(e.deadlineMs, e.id, e.version);
        reference.push(e);
      } else if (r < 99) {
        reference.sort(order);
        assert.deepEqual(heap.pop(), reference.shift() ?? null);
      } else {
        reference = reference.filter(() => random.nextInt(2) === 0);
        heap.rebuild(reference);
      }
      assert.equal(heap.size, reference.length);
    }
    heap.assertValid();
  });
});

/** The behaviour due() had before the index: every lease scanned, due ones in grant order. */
function scanDue(table: LeaseTable, nowMs: number): DueLease[] {
  return table
    .records()
    .filter((l) => !table.isLive(l, nowMs))
    .map((l) => ({ leaseId: l.leaseId, renewSeq: l.renewSeq }));
}

const byId = (a: DueLease, b: DueLease): number => a.leaseId - b.leaseId;

describe("LeaseTable.due with the expiry index", () => {
  it("finds exactly the leases past their deadline, earliest first, as the full scan did", () => {
    const random = new SeededRandom(11);
    const table = new LeaseTable(0.01);
    let nowMs = 0;
    for (let step = 0; step < 6_000; step++) {
      nowMs += random.nextInt(40);
      const r = random.nextInt(100);
      const id = 1 + random.nextInt(300); // few ids: removed ones are granted again
      const lease = table.get(id);
      if (r < 35 && lease === undefined) {
        table.grant({ leaseId: id, clientId: `c${id % 7}`, owner: "", ttlMs: 200 + random.nextInt(2_000), nowMs });
      } else if (r < 70 && lease !== undefined && table.isLive(lease, nowMs)) {
        table.renew(id, nowMs);
      } else if (r < 85 && lease !== undefined) {
        table.remove(id);
      } else if (r < 86) {
        table.restartAll(nowMs);
      }
      const max = 1 + random.nextInt(40);
      const expected = scanDue(table, nowMs);
      const got = table.due(nowMs, max);
      assert.equal(got.length, Math.min(max, expected.length), `step ${step}: how many are due`);
      // Earliest deadline first: the ones returned are the `max` earliest.
      const deadlines = got.map((d) => table.get(d.leaseId)?.deadlineMs ?? -1);
      assert.deepEqual(
        deadlines,
        [...deadlines].sort((a, b) => a - b),
        `step ${step}: earliest first`,
      );
      const earliest = expected
        .map((d) => ({ ...d, deadlineMs: table.get(d.leaseId)?.deadlineMs ?? -1 }))
        .sort((a, b) => a.deadlineMs - b.deadlineMs || a.leaseId - b.leaseId)
        .slice(0, max)
        .map(({ leaseId, renewSeq }) => ({ leaseId, renewSeq }));
      assert.deepEqual([...got].sort(byId), [...earliest].sort(byId), `step ${step}: which are due`);
      // Asking again finds them again: they stay until a LeaseExpire removes them.
      assert.deepEqual(table.due(nowMs, max), got, `step ${step}: due leases stay indexed`);
      if (got.length > 0 && random.nextInt(3) === 0) table.remove(got[0]!.leaseId);
    }
  });

  it("a removed id granted again is not due at its old deadline", () => {
    const table = new LeaseTable(0);
    table.grant({ leaseId: 5, clientId: "c", owner: "", ttlMs: 1_000, nowMs: 0 });
    table.remove(5);
    table.grant({ leaseId: 5, clientId: "c", owner: "", ttlMs: 5_000, nowMs: 100 });
    assert.deepEqual(table.due(2_000, 10), [], "the old entry (deadline 1000, renewSeq 0) is stale");
    assert.deepEqual(table.due(5_100, 10), [{ leaseId: 5, renewSeq: 0 }]);
  });

  it("stays within a constant factor of the live leases on a member that never asks (a follower)", () => {
    const table = new LeaseTable(0);
    const leases = 2_000;
    for (let id = 1; id <= leases; id++) table.grant({ leaseId: id, clientId: "c", owner: "", ttlMs: 10_000, nowMs: 0 });
    for (let round = 1; round <= 50; round++) {
      for (let id = 1; id <= leases; id++) table.renew(id, round * 100);
      assert.ok(table.expiryIndexSize() <= 4 * leases + 1024, `round ${round}: ${table.expiryIndexSize()} entries`);
    }
    for (let id = 1; id <= leases / 2; id++) table.remove(id);
    table.grant({ leaseId: 1, clientId: "c", owner: "", ttlMs: 10, nowMs: 6_000 });
    assert.ok(table.expiryIndexSize() <= 4 * (leases / 2 + 1) + 1024);
    assert.deepEqual(table.due(6_010, 10), [{ leaseId: 1, renewSeq: 0 }], "the re-granted id, not its old entries");
  });
});
