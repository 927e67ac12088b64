// The SDK's runtime seams (client.ts ClientRuntime): a TenureClient on an injected clock, timers
// and wire runs its lease code on that time alone. The deterministic lock simulation relies on
// this (testing/sim/sdk_client.ts); here it pins t0 (before the send), the deadline timer on the
// injected timers, and the test-only bug that takes t0 when the answer arrives.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { TenureClient, type ClientRuntime } from "./client.ts";
import type { TenureError } from "./errors.ts";
import type { TimerHandle, Timers } from "./timers.ts";
import type { DuplexStream, Message, Wire } from "./transport.ts";

const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A clock and timers that move only through advance(). */
class FakeTime implements Timers {
  now = 1000;
  private readonly timers: { at: number; fn: () => void; live: boolean }[] = [];

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { at: this.now + Math.max(0, ms), fn, live: true };
    this.timers.push(t);
    return t;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) (handle as { live: boolean }).live = false;
  }

  /** Fires every timer due within ms, in time order, running the promise continuations of each. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.now = due.at;
      due.live = false;
      due.fn();
      await drain();
    }
    this.now = end;
    await drain();
  }
}

/** Answers Lease.Grant after rttMs of fake time; the KeepAlive stream never answers. */
function fakeWire(time: FakeTime, rttMs: number): Wire & { grantSentAt: number[] } {
  const grantSentAt: number[] = [];
  return {
    grantSentAt,
    unary: (_endpoint, service, method) =>
      new Promise<Message>((resolve) => {
        if (service === "Lease" && method === "Grant") grantSentAt.push(time.now);
        const answer = method === "Grant" ? { leaseId: "7", validUntil: { ttlMs: "1000", rho: 0 } } : {};
        time.setTimeout(() => resolve(answer), rttMs);
      }),
    duplex: () => Object.assign(new EventEmitter(), { write: () => true, cancel: () => {} }) as unknown as DuplexStream,
    serverStream: () => {
      throw new Error("not used");
    },
    close: () => {},
  };
}

function client(time: FakeTime, runtime: ClientRuntime): TenureClient {
  return new TenureClient({ endpoints: ["sim:a"], clientId: "t", marginMs: 100, clock: () => time.now, random: () => 0.5 }, runtime);
}

describe("TenureClient on an injected clock, timers and wire", () => {
  it("t0 is the clock before the grant is sent: expiresAt = t0 + ttl(1 - rho) - margin, aborted there on the injected timers", async () => {
    const time = new FakeTime();
    const wire = fakeWire(time, 40);
    const c = client(time, { timers: time, wire });
    const granted = c.grantLease({ ttlMs: 1000 });
    await time.advance(40);
    const lease = await granted;
    assert.deepEqual(wire.grantSentAt, [1000]);
    assert.equal(lease.expiresAt, 1000 + 1000 * 0.99 - 100);
    await time.advance(lease.expiresAt - time.now - 1);
    assert.equal(lease.signal.aborted, false, "aborted before expiresAt");
    await time.advance(1);
    assert.equal(lease.signal.aborted, true, "not aborted at expiresAt: the deadline timer is not on the injected timers");
    assert.equal((lease.signal.reason as TenureError).code, "LEASE_LOST");
    c.close();
  });

  it("the test-only bug dates the lease from the answer's arrival (late by the round trip)", async () => {
    const time = new FakeTime();
    const c = client(time, { timers: time, wire: fakeWire(time, 40), testOnlyBugLeaseStartAfterReply: true });
    const granted = c.grantLease({ ttlMs: 1000 });
    await time.advance(40);
    const lease = await granted;
    assert.equal(lease.expiresAt, 1040 + 1000 * 0.99 - 100);
    c.close();
  });
});
