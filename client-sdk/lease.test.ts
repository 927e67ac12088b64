// The lease's own deadline timer, driven without a server and on simulated time (node:test mock
// timers and a fake monotonic clock): abort exactly at expiresAt, jeopardy, recovery with a fresh
// signal, loss exactly when the grace period ends, loss on a server failure.

import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { TenureError } from "./errors.ts";
import { Lease, type LeaseHost } from "./lease.ts";
import type { Rpc } from "./rpc.ts";
import { SYSTEM_TIMERS } from "./timers.ts";

/** A host whose monotonic clock and timers are both simulated (node:test mock timers): time
 *  moves only through advance(), one millisecond at a time so every timer sees the clock of the
 *  moment it is due. Exact to the millisecond and independent of the machine's load. */
function fakeTime(t: TestContext, graceMs: number): LeaseHost & { forgotten: Lease[]; now: () => number; advance: (ms: number) => void } {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let nowMs = 1000;
  const forgotten: Lease[] = [];
  return {
    rpc: { clock: () => nowMs, timers: SYSTEM_TIMERS } as unknown as Rpc,
    rho: 0.01,
    marginMs: 10,
    graceMs,
    forget: (l) => forgotten.push(l),
    forgotten,
    now: () => nowMs,
    advance: (ms) => {
      for (let i = 0; i < ms; i++) {
        nowMs += 1;
        t.mock.timers.tick(1);
      }
    },
  };
}

describe("Lease deadline", () => {
  it("expiresAt = t0 + ttl * (1 - max(rho, server rho)) - margin, and the signal aborts there", (t) => {
    const h = fakeTime(t, 1000);
    const t0 = h.now();
    const lease = new Lease(h, { id: 1, ttlMs: 200, t0Ms: t0, serverRho: 0.05 });
    assert.equal(lease.expiresAt, t0 + 200 * 0.95 - 10);
    let at = -1;
    lease.signal.addEventListener("abort", () => (at = h.now()));
    h.advance(lease.expiresAt - h.now() - 1);
    assert.equal(lease.signal.aborted, false, "aborted before expiresAt");
    h.advance(1);
    assert.equal(at, lease.expiresAt, "aborted exactly at expiresAt");
    assert.equal(lease.state, "jeopardy");
    assert.equal((lease.signal.reason as TenureError).code, "LEASE_LOST");
    lease.abandon(new TenureError("CLOSED", "done"));
  });

  it("a renewal before the deadline moves it without aborting", (t) => {
    const h = fakeTime(t, 1000);
    const lease = new Lease(h, { id: 2, ttlMs: 150, t0Ms: h.now(), serverRho: 0 });
    const first = lease.expiresAt;
    h.advance(50);
    lease.renewed(h.now(), 150, 0);
    assert.ok(lease.expiresAt > first);
    h.advance(first - h.now() + 20);
    assert.equal(lease.signal.aborted, false);
    h.advance(lease.expiresAt - h.now());
    assert.equal(lease.signal.aborted, true, "the moved deadline is armed");
    lease.abandon(new TenureError("CLOSED", "done"));
  });

  it("jeopardy, then a renewal within grace: state active again with a FRESH signal; the old one stays aborted", (t) => {
    const h = fakeTime(t, 1000);
    const lease = new Lease(h, { id: 3, ttlMs: 100, t0Ms: h.now(), serverRho: 0 });
    const old = lease.signal;
    let renewedEvents = 0;
    lease.on("renewed", () => renewedEvents++);
    h.advance(lease.expiresAt - h.now());
    assert.equal(old.aborted, true);
    assert.equal(lease.state, "jeopardy");
    lease.renewed(h.now(), 100, 0);
    assert.equal(lease.state, "active");
    assert.equal(old.aborted, true);
    assert.notEqual(lease.signal, old);
    assert.equal(lease.signal.aborted, false);
    assert.equal(renewedEvents, 1);
    lease.abandon(new TenureError("CLOSED", "done"));
  });

  it("no renewal within grace: lost, forgotten by its host, `lost` resolves and the event fires", async (t) => {
    const h = fakeTime(t, 50);
    const lease = new Lease(h, { id: 4, ttlMs: 60, t0Ms: h.now(), serverRho: 0 });
    let lostEvent: TenureError | undefined;
    lease.on("lost", (e) => (lostEvent = e));
    h.advance(lease.expiresAt - h.now());
    assert.equal(lease.state, "jeopardy");
    h.advance(49);
    assert.equal(lease.state, "jeopardy", "lost before the grace ran out");
    h.advance(1);
    const e = await lease.lost;
    assert.equal(e.code, "LEASE_LOST");
    assert.equal(lease.state, "lost");
    assert.equal(lostEvent, e);
    assert.deepEqual(h.forgotten, [lease]);
    lease.renewed(h.now(), 60, 0); // too late: nothing comes back
    assert.equal(lease.state, "lost");
  });

  it("a server failure (LEASE_EXPIRED) loses the lease at once", async (t) => {
    const h = fakeTime(t, 1000);
    const lease = new Lease(h, { id: 5, ttlMs: 10_000, t0Ms: h.now(), serverRho: 0 });
    lease.failed(new TenureError("LEASE_EXPIRED", "x"));
    assert.equal(lease.signal.aborted, true);
    assert.equal((await lease.lost).code, "LEASE_EXPIRED");
  });
});
