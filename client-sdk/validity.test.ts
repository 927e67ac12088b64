import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clientDeadlineMs, renewAtMs } from "./validity.ts";

describe("client deadline", () => {
  it("is t0 + ttl * (1 - rho) - margin", () => {
    assert.equal(clientDeadlineMs({ t0Ms: 1000, ttlMs: 10_000, rho: 0.01, marginMs: 100 }), 1000 + 9900 - 100);
    assert.equal(clientDeadlineMs({ t0Ms: 0, ttlMs: 500, rho: 0, marginMs: 0 }), 500);
  });

  it("ends before the server's own earliest expiry (t0 + ttl * (1 + rho)), by 2 * rho * ttl + margin", () => {
    for (const rho of [0, 0.001, 0.01, 0.1]) {
      for (const ttl of [500, 2000, 60_000]) {
        const client = clientDeadlineMs({ t0Ms: 0, ttlMs: ttl, rho, marginMs: 50 });
        const server = ttl * (1 + rho); // the server applies at or after t0
        assert.ok(Math.abs(server - client - (2 * rho * ttl + 50)) < 1e-9, `rho ${rho} ttl ${ttl}`);
      }
    }
  });

  it("renews a third of the TTL after the last send", () => {
    assert.equal(renewAtMs(300, 3000), 1300);
  });
});
