import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ApplyContext } from "./apply_context.ts";
import { stateConfig, valueStoredBytes } from "./limits.ts";
import { LockTable, type MutexRecord } from "./lock_table.ts";
import { decodeImage } from "./machine_snapshot.ts";
import { Driver } from "../../testing/kits/state_test_kit.ts";

const token = Driver.token;

/** The replicated tables without what every applied entry changes (index, time, sessions). */
function tables(d: Driver): unknown {
  const { leases, locks, elections, ids } = decodeImage(d.machine.snapshot());
  return { leases, locks, elections, ids };
}

/** What usage() must say, recounted from the records. */
function recount(records: readonly MutexRecord[]): { waiters: number; valueBytes: number } {
  let waiters = 0;
  let valueBytes = 0;
  for (const r of records) {
    waiters += r.waiters.length;
    valueBytes += r.waiters.reduce((sum, w) => sum + valueStoredBytes(w.value), valueStoredBytes(r.holder?.value ?? ""));
  }
  return { waiters, valueBytes };
}

describe("locks", () => {
  it("grants FIFO with strictly increasing tokens", () => {
    const d = new Driver();
    const leases = ["a", "b", "c", "d"].map((c) => d.grant(c));
    const first = token(d.acquire("a", "L", leases[0]!));
    for (const [i, c] of ["b", "c", "d"].entries()) {
      const r = d.acquire(c, "L", leases[i + 1]!);
      assert.ok(r.ok && r.kind === "LockAcquire" && r.status === "queued" && r.position === i + 1);
    }
    const holders: [number, number][] = [[leases[0]!, first]];
    for (let i = 0; i < 3; i++) {
      const [, current] = holders[holders.length - 1]!;
      const r = d.client("x", { kind: "LockRelease", name: "L", token: current });
      assert.ok(r.ok && r.kind === "LockRelease" && r.released);
      const granted = r.events.find((e) => e.kind === "granted");
      assert.ok(granted?.kind === "granted");
      holders.push([granted.leaseId, granted.token]);
    }
    assert.deepEqual(
      holders.map(([l]) => l),
      leases,
      "FIFO order",
    );
    const tokens = holders.map(([, t]) => t);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, "tokens increase");
    assert.equal(d.machine.lockStatus("L").state, "HELD");
  });

  it("a release passes over a waiter whose lease is past its deadline but not yet expired", () => {
    const d = new Driver();
    const holder = d.grant("a", 60_000);
    const stale = d.grant("b", 1_000);
    const fresh = d.grant("c", 60_000);
    const t = token(d.acquire("a", "L", holder));
    d.acquire("b", "L", stale);
    d.acquire("c", "L", fresh);
    d.at(5_000); // b's deadline (1000 * 1.01) has passed; its LeaseExpire has not been applied
    const r = d.client("a", { kind: "LockRelease", name: "L", token: t });
    const granted = r.events.find((e) => e.kind === "granted");
    assert.ok(granted?.kind === "granted");
    assert.equal(granted.leaseId, fresh, "the lock went to a lease that had already run out");
    assert.equal(d.machine.lockStatus("L").holder?.leaseId, fresh);
  });

  it("a non-waiting acquire of a held lock is LOCK_HELD; the holder's own acquire keeps its token", () => {
    const d = new Driver();
    const la = d.grant("a");
    const lb = d.grant("b");
    const t = token(d.acquire("a", "L", la));
    const busy = d.acquire("b", "L", lb, false);
    assert.ok(!busy.ok && busy.code === "LOCK_HELD");
    assert.equal(busy.currentToken, t, "the refusal names the holder's token");
    assert.equal(token(d.acquire("a", "L", la)), t);
    assert.equal(d.machine.tokens().lastToken, t);
  });

  it("a try-lock refused during lock-delay names no holder (current token 0)", () => {
    const d = new Driver(stateConfig({ lockDelayMs: 3_000 }));
    const la = d.grant("a", 1_000);
    const lb = d.grant("b", 60_000);
    token(d.acquire("a", "L", la));
    d.at(2_010);
    d.fireTimers();
    assert.equal(d.machine.lockStatus("L").state, "DELAYED");
    const busy = d.acquire("b", "L", lb, false);
    assert.ok(!busy.ok && busy.code === "LOCK_HELD");
    assert.equal(busy.currentToken, 0);
  });

  it("an expired holder's lock is DELAYED, then goes to the next waiter", () => {
    const d = new Driver(stateConfig({ lockDelayMs: 3_000 }));
    const la = d.grant("a", 1_000);
    const lb = d.grant("b", 60_000);
    const t1 = token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    d.at(2_010);
    const [expired] = d.fireTimers();
    assert.ok(expired?.ok && expired.kind === "LeaseExpire" && expired.applied);
    assert.deepEqual(d.machine.lockStatus("L").state, "DELAYED");
    assert.equal(d.machine.lockStatus("L").delay?.untilMs, 5_010);
    const delayId = d.machine.lockStatus("L").delay?.delayId ?? -1;
    d.at(5_009);
    const early = d.system({ kind: "LockDelayEnd", table: "lock", name: "L", delayId });
    assert.ok(early.ok && early.kind === "LockDelayEnd" && !early.applied);
    d.at(5_010);
    assert.deepEqual(d.machine.timers(d.timeMs), [{ kind: "LockDelayEnd", table: "lock", name: "L", delayId }]);
    const [ended] = d.fireTimers();
    assert.ok(ended?.ok && ended.kind === "LockDelayEnd" && ended.applied);
    const holder = d.machine.lockStatus("L").holder;
    assert.equal(holder?.leaseId, lb);
    assert.ok((holder?.token ?? 0) > t1);
  });

  it("no lock-delay after an explicit release or a revoke", () => {
    const d = new Driver(stateConfig({ lockDelayMs: 3_000 }));
    const [la, lb, lc] = [d.grant("a"), d.grant("b"), d.grant("c")];
    const t1 = token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    d.acquire("c", "L", lc);
    d.client("a", { kind: "LockRelease", name: "L", token: t1 });
    assert.equal(d.machine.lockStatus("L").holder?.leaseId, lb);
    d.client("b", { kind: "LeaseRevoke", leaseId: lb });
    assert.equal(d.machine.lockStatus("L").holder?.leaseId, lc);
    d.client("c", { kind: "LeaseRevoke", leaseId: lc });
    assert.equal(d.machine.lockStatus("L").state, "FREE");
  });

  it("lockDelayMs = 0 hands an expired holder's lock on at once", () => {
    const d = new Driver(stateConfig({ lockDelayMs: 0 }));
    const la = d.grant("a", 1_000);
    const lb = d.grant("b", 60_000);
    d.acquire("a", "L", la);
    d.acquire("b", "L", lb);
    d.at(3_000);
    d.fireTimers();
    assert.equal(d.machine.lockStatus("L").holder?.leaseId, lb);
  });

  it("a release with an old token is a no-op success and never frees a newer holder", () => {
    const d = new Driver();
    const [la, lb] = [d.grant("a"), d.grant("b")];
    const old = token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    d.client("a", { kind: "LockRelease", name: "L", token: old });
    const newer = d.machine.lockStatus("L").holder?.token ?? 0;
    const late = d.client("a", { kind: "LockRelease", name: "L", token: old });
    assert.ok(late.ok && late.kind === "LockRelease" && !late.released);
    assert.equal(d.machine.lockStatus("L").holder?.token, newer);
    assert.deepEqual(d.machine.validateToken("L", newer), { current: true, table: "lock", currentToken: newer });
    assert.deepEqual(d.machine.validateToken("L", old), { current: false, table: "lock", currentToken: newer });
  });

  it("a cancelled wait leaves the queue", () => {
    const d = new Driver();
    const [la, lb] = [d.grant("a"), d.grant("b")];
    const t = token(d.acquire("a", "L", la));
    d.acquire("b", "L", lb);
    const r = d.client("b", { kind: "WaitCancel", table: "lock", name: "L", leaseId: lb });
    assert.ok(r.ok && r.kind === "WaitCancel" && r.cancelled);
    d.client("a", { kind: "LockRelease", name: "L", token: t });
    assert.equal(d.machine.lockStatus("L").state, "FREE");
  });

  it("names, waiters and name-table limits are results, not throws", () => {
    const d = new Driver(stateConfig({ limits: { nameBytesMax: 8, waitersPerLockMax: 1, namesMax: 2 } }));
    const [la, lb, lc] = [d.grant("a"), d.grant("b"), d.grant("c")];
    for (const name of ["", "123456789", "ééééé"]) {
      const r = d.acquire("a", name, la);
      assert.ok(!r.ok && r.code === "INVALID_ARGUMENT", JSON.stringify(name));
    }
    d.acquire("a", "L", la);
    d.acquire("b", "L", lb);
    const full = d.acquire("c", "L", lc);
    assert.ok(!full.ok && full.code === "LIMIT_EXCEEDED");
    d.acquire("a", "M", la);
    const names = d.acquire("a", "N", la);
    assert.ok(!names.ok && names.code === "LIMIT_EXCEEDED");
    const unknown = d.acquire("a", "Z", 12345);
    assert.ok(!unknown.ok && unknown.code === "LEASE_NOT_FOUND");
  });

  it("waitersMax bounds the waiters of all locks and elections together; a refused wait changes nothing", () => {
    const d = new Driver(stateConfig({ limits: { waitersPerLockMax: 2, waitersMax: 3 } }));
    const [la, lb, lc, ld] = ["a", "b", "c", "d"].map((c) => d.grant(c)) as [number, number, number, number];
    d.acquire("a", "L1", la);
    d.acquire("a", "L2", la);
    d.client("a", { kind: "ElectionCampaign", name: "E", leaseId: la, value: "a" });
    d.acquire("b", "L1", lb);
    d.acquire("c", "L2", lc);
    d.client("d", { kind: "ElectionCampaign", name: "E", leaseId: ld, value: "d" }); // 3 waiters in all
    const before = tables(d);
    const refused = d.acquire("b", "L2", lb); // b's seq 3
    const retried = d.send("b", 3, { kind: "LockAcquire", name: "L2", leaseId: lb, wait: true });
    assert.equal(retried.replayed, true);
    for (const r of [refused, retried, d.client("b", { kind: "ElectionCampaign", name: "E", leaseId: lb, value: "b" })]) {
      assert.ok(!r.ok && r.code === "LIMIT_EXCEEDED", JSON.stringify(r));
      assert.equal(r.message, "all locks and elections have as many waiters as allowed: waitersMax = 3");
      assert.deepEqual(r.events, []);
    }
    assert.deepEqual(tables(d), before, "state unchanged");
    // Grants, try-locks and waiters already queued are not new waits: they still pass.
    assert.ok(d.acquire("b", "L3", lb).ok);
    const busy = d.acquire("c", "L1", lc, false);
    assert.ok(!busy.ok && busy.code === "LOCK_HELD");
    const still = d.acquire("b", "L1", lb);
    assert.ok(still.ok && still.kind === "LockAcquire" && still.status === "queued" && still.position === 1);
    // A wait that ends (cancel) frees its place.
    d.client("c", { kind: "WaitCancel", table: "lock", name: "L2", leaseId: lc });
    const queued = d.acquire("b", "L2", lb);
    assert.ok(queued.ok && queued.kind === "LockAcquire" && queued.status === "queued");
  });

  it("heldCount and delayedCount: an expired holder's name is delayed, not held, until its delay ends", () => {
    let index = 0;
    let token = 0;
    let nowMs = 0;
    const ctx = (): ApplyContext => ({
      index: ++index,
      nowMs,
      events: [],
      nextToken: () => ++token,
      leaseLive: () => true,
      leaseOwner: () => "",
    });
    const table = new LockTable("lock");
    const room = { canCreate: true, waitersMax: 3, canQueue: true, valueBytesRoom: Number.MAX_SAFE_INTEGER, value: "", wait: true };
    table.acquire(ctx(), { name: "A", leaseId: 1, ...room });
    table.acquire(ctx(), { name: "B", leaseId: 1, ...room });
    table.acquire(ctx(), { name: "A", leaseId: 2, ...room });
    assert.deepEqual([table.heldCount(), table.delayedCount()], [2, 0]);
    table.removeLease(ctx(), { leaseId: 1, expired: true, lockDelayMs: 1_000 });
    assert.deepEqual([table.heldCount(), table.delayedCount()], [0, 2]);
    nowMs = 1_000;
    for (const r of table.snapshotRecords()) if (r.delay !== null) table.endDelay(ctx(), r.name, r.delay.delayId);
    // A went to its waiter (lease 2); B had none and is gone.
    assert.deepEqual([table.heldCount(), table.delayedCount()], [1, 0]);
  });

  it("usage() follows every change of holders and waiters, and restore recounts it", () => {
    let index = 0;
    let token = 0;
    const live = new Set<number>([1, 2, 3, 4, 5, 6, 7, 8]);
    const ctx = (): ApplyContext => ({
      index: ++index,
      nowMs: index,
      events: [],
      nextToken: () => ++token,
      leaseLive: (l) => live.has(l),
      leaseOwner: () => "",
    });
    let seed = 42; // xorshift32: the same walk on every run
    const next = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const table = new LockTable("election");
    const values = ["", "v", '"q"', "\u0001\u0002", "é€😀"];
    const room = { canCreate: true, waitersMax: 3, canQueue: true, valueBytesRoom: Number.MAX_SAFE_INTEGER };
    const seen = { waiters: 0, valueBytes: 0 };
    for (let step = 0; step < 2_000; step++) {
      const name = `N${next(4)}`;
      const leaseId = 1 + next(8);
      const value = values[next(values.length)] ?? "";
      const holder = table.holder(name);
      switch (next(10)) {
        case 0:
        case 1:
        case 7:
        case 8:
        case 9:
          table.acquire(ctx(), { name, leaseId, value, wait: true, ...room });
          break;
        case 2:
          if (holder !== null) table.release(ctx(), name, holder.token);
          break;
        case 3:
          table.cancelWait(name, leaseId);
          break;
        case 4:
          if (holder !== null) table.setValue(name, holder.token, value);
          break;
        case 5: {
          // Leases die and come back: waiters behind a dead lease are passed over at hand-off.
          if (live.has(leaseId)) live.delete(leaseId);
          else live.add(leaseId);
          break;
        }
        case 6: {
          table.removeLease(ctx(), { leaseId, expired: next(2) === 0, lockDelayMs: next(2) });
          for (const r of table.snapshotRecords()) if (r.delay !== null) table.endDelay(ctx(), r.name, r.delay.delayId);
          break;
        }
      }
      const records = table.snapshotRecords();
      assert.deepEqual(table.usage(), recount(records), `step ${step}`);
      assert.equal(table.heldCount(), records.filter((r) => r.holder !== null).length, `held at step ${step}`);
      assert.equal(table.delayedCount(), records.filter((r) => r.delay !== null).length, `delayed at step ${step}`);
      seen.waiters = Math.max(seen.waiters, table.usage().waiters);
      seen.valueBytes = Math.max(seen.valueBytes, table.usage().valueBytes);
      assert.deepEqual(LockTable.restore("election", records).usage(), table.usage());
    }
    assert.ok(seen.waiters >= 8 && seen.valueBytes > 50, `the walk reaches busy tables: ${JSON.stringify(seen)}`);
  });
});
