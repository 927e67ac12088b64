// The lease's own deadline timer, driven without a server: abort at expiresAt, jeopardy, recovery
// with a fresh signal, loss after the grace period, loss on a server failure.

import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { describe, it } from "node:test";
import { TenureError } from "./errors.ts";
import { Lease, type LeaseHost } from "./lease.ts";
import type { Rpc } from "./rpc.ts";

function host(graceMs: number): LeaseHost & { forgotten: Lease[] } {
  const forgotten: Lease[] = [];
  return {
    rpc: { clock: () => performance.now() } as unknown as Rpc,
    rho: 0.01,
    marginMs: 10,
    graceMs,
    forget: (l) => forgotten.push(l),
    forgotten,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("Lease deadline", () => {
  it("expiresAt = t0 + ttl * (1 - max(rho, server rho)) - margin, and the signal aborts there", async () => {
    const h = host(1000);
    const t0 = performance.now();
    const lease = new Lease(h, { id: 1, ttlMs: 200, t0Ms: t0, serverRho: 0.05 });
    assert.equal(lease.expiresAt, t0 + 200 * 0.95 - 10);
    const aborted = new Promise<number>((r) => lease.signal.addEventListener("abort", () => r(performance.now())));
    const at = await aborted;
    assert.ok(at >= lease.expiresAt - 1 && at <= lease.expiresAt + 50, `aborted at ${at - lease.expiresAt} ms from expiresAt`);
    assert.equal(lease.state, "jeopardy");
    assert.equal((lease.signal.reason as TenureError).code, "LEASE_LOST");
    lease.abandon(new TenureError("CLOSED", "done"));
  });

  it("a renewal before the deadline moves it without aborting", async () => {
    const h = host(1000);
    const lease = new Lease(h, { id: 2, ttlMs: 150, t0Ms: performance.now(), serverRho: 0 });
    const first = lease.expiresAt;
    await sleep(50);
    lease.renewed(performance.now(), 150, 0);
    assert.ok(lease.expiresAt > first);
    await sleep(first - performance.now() + 20);
    assert.equal(lease.signal.aborted, false);
    lease.abandon(new TenureError("CLOSED", "done"));
  });

  it("jeopardy, then a renewal within grace: state active again with a FRESH signal; the old one stays aborted", async () => {
    const h = host(1000);
    const lease = new Lease(h, { id: 3, ttlMs: 100, t0Ms: performance.now(), serverRho: 0 });
    const old = lease.signal;
    let renewedEvents = 0;
    lease.on("renewed", () => renewedEvents++);
    await new Promise((r) => old.addEventListener("abort", r));
    assert.equal(lease.state, "jeopardy");
    lease.renewed(performance.now(), 100, 0);
    assert.equal(lease.state, "active");
    assert.equal(old.aborted, true);
    assert.notEqual(lease.signal, old);
    assert.equal(lease.signal.aborted, false);
    assert.equal(renewedEvents, 1);
    lease.abandon(new TenureError("CLOSED", "done"));
  });

  it("no renewal within grace: lost, forgotten by its host, `lost` resolves and the event fires", async () => {
    const h = host(50);
    const lease = new Lease(h, { id: 4, ttlMs: 60, t0Ms: performance.now(), serverRho: 0 });
    let lostEvent: TenureError | undefined;
    lease.on("lost", (e) => (lostEvent = e));
    const e = await lease.lost;
    assert.equal(e.code, "LEASE_LOST");
    assert.equal(lease.state, "lost");
    assert.equal(lostEvent, e);
    assert.deepEqual(h.forgotten, [lease]);
    lease.renewed(performance.now(), 60, 0); // too late: nothing comes back
    assert.equal(lease.state, "lost");
  });

  it("a server failure (LEASE_EXPIRED) loses the lease at once", async () => {
    const h = host(1000);
    const lease = new Lease(h, { id: 5, ttlMs: 10_000, t0Ms: performance.now(), serverRho: 0 });
    lease.failed(new TenureError("LEASE_EXPIRED", "x"));
    assert.equal(lease.signal.aborted, true);
    assert.equal((await lease.lost).code, "LEASE_EXPIRED");
  });
});
