// Tenure leases held by the SDK, as an application holds them: TenureClients, each keeping its
// leases alive on its one KeepAlive stream (one request renews up to 1024 of them at about ttl/3).
// A client holds at most LEASES_PER_CLIENT (the server allows 1000 per client id), so N leases
// take N/500 clients. Renewals are counted where the SDK applies them: a lease's expiresAt moves
// only when a renewal committed on the server was answered. The latency is a probe's
// (renewal_probe.ts): the SDK does not expose its round trips.

import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { type Lease, TenureClient } from "../../client-sdk/index.ts";
import { TestClient } from "../../testing/itest/test_client.ts";
import { grantAll, type HoldOptions, type HoldWindow, type LeaseHold } from "./lease_hold.ts";
import { RenewalProbe } from "./renewal_probe.ts";

const LEASES_PER_CLIENT = 500;
const POLL_MS = 250;
const LIST_PAGE = 10_000;

export async function holdTenureLeases(
  o: HoldOptions & { readonly voters: readonly string[]; readonly leader: string; readonly security: TransportSecurity },
): Promise<LeaseHold> {
  const clientCount = Math.ceil(o.count / LEASES_PER_CLIENT);
  const clients = Array.from({ length: clientCount }, () => new TenureClient({ endpoints: [...o.voters], ...o.security }));
  const leases: Lease[] = [];
  const g = await grantAll(o, async (i) => {
    const client = clients[Math.floor(i / LEASES_PER_CLIENT)];
    if (!client) throw new Error(`no client for lease ${i}`);
    leases.push(await client.grantLease({ ttlMs: o.ttlMs }, { timeoutMs: 30_000 }));
  });
  if (g.errors > 0) o.log(`  tenure: ${g.errors} grants failed, first: ${g.firstError}`);
  const lister = new TestClient([o.leader, ...o.voters], o.security);

  const serverCount = async (): Promise<number> => {
    let after = "0";
    let n = 0;
    for (let page = 0; page < 1000; page++) {
      const r = await lister.call<Record<string, unknown>>("Lease", "List", { afterLeaseId: after, limit: LIST_PAGE }, 30_000);
      if (!r.ok) throw new Error(`Lease.List: ${r.code} ${r.details}`);
      const got = (r.value["leases"] ?? []) as Record<string, unknown>[];
      n += got.length;
      const last = got[got.length - 1];
      if (r.value["more"] !== true || last === undefined) break;
      after = String(last["leaseId"]);
    }
    return n;
  };

  return {
    granted: leases.length,
    grantMs: g.grantMs,
    grantErrors: g.errors,
    async measure(windowMs: number): Promise<HoldWindow> {
      const seen = leases.map((l) => l.expiresAt);
      let renewals = 0;
      const t0 = performance.now();
      const renewalProbe = new RenewalProbe(o.leader, o.security);
      const first = leases[0];
      const probed = first === undefined ? Promise.resolve(null) : renewalProbe.run(String(first.id), windowMs).catch(() => null);
      while (performance.now() - t0 < windowMs) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        for (let i = 0; i < leases.length; i++) {
          const e = leases[i]?.expiresAt ?? 0;
          if (e !== seen[i]) {
            renewals++;
            seen[i] = e;
          }
        }
      }
      const elapsedMs = performance.now() - t0;
      const probeResult = await probed;
      renewalProbe.close();
      const lost = leases.filter((l) => l.state === "lost").length;
      const aliveAtEnd = leases.filter((l) => l.state === "active").length;
      return {
        streamErrors: 0,
        renewals,
        ratePerS: renewals / (elapsedMs / 1000),
        latency: probeResult?.latency ?? null,
        aliveAtEnd,
        serverCount: await serverCount(),
        lost,
      };
    },
    async close(): Promise<void> {
      lister.close();
      for (const c of clients) c.close();
    },
  };
}
