// Two more clients of the chaos workload, beside the lock holders (workload.ts):
//
// Readers ask ONE member directly, with no redirect, for Lock.Status or Lock.ValidateToken of a
// token some holder got: a correct member either answers linearizably (it leads, and confirmed it
// with ReadIndex) or refuses (NOT_LEADER). A member answering from a stale local state is what
// the linearizability checker must catch (the server's `stale-local-reads` test bug).
//
// The lease prober churns leases: grant one, revoke it, then send Lock.Acquire with the revoked
// lease straight over gRPC (the SDK refuses a dead lease locally). A correct server answers
// LEASE_NOT_FOUND; a grant is a violation (the `grant-without-lease-check` test bug), checked by
// checkRevokedLeaseGrants in check.ts.

import { performance } from "node:perf_hooks";
import { TenureClient } from "../../client-sdk/index.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { TestClient, type CallResult } from "../itest/test_client.ts";
import { sleep } from "./faults.ts";
import type { Op, OpSink } from "./workload.ts";

type Obj = Record<string, unknown>;

export interface ProbeOptions {
  readonly endpoints: readonly string[];
  readonly security: TransportSecurity;
  readonly names: readonly string[];
  readonly readers: number;
  readonly seed: number;
  readonly clientPrefix: string;
  /** The probers' client numbers start here (after the holders'). */
  readonly firstClient: number;
  /** Tokens acknowledged so far per lock (the validate probes ask about them). */
  readonly tokensOf: (name: string) => readonly number[];
  readonly stop: AbortSignal;
}

const READ_TIMEOUT_MS = 1000;

/** A definite refusal is "fail" (no effect, dropped by the checker); anything else "info". */
function failed(
  r: Extract<CallResult<unknown>, { ok: false }>,
  client: number,
  name: string,
  inv: number,
  type: Op["type"],
  endpoint: string,
): Op {
  const definite = r.reason === "NOT_LEADER" || r.reason === "IS_WITNESS" || r.reason === "NO_LEADER";
  return {
    type,
    client,
    name,
    inv,
    cmp: performance.now(),
    outcome: definite ? "fail" : "info",
    error: `${r.reason || r.code} ${r.details}`,
    ambiguous: !definite,
    endpoint,
  };
}

async function reader(i: number, o: ProbeOptions, sink: OpSink, rng: SeededRandom): Promise<void> {
  const client = new TestClient(o.endpoints, o.security);
  try {
    while (!o.stop.aborted) {
      const name = o.names[rng.nextInt(o.names.length)] ?? "l0";
      const endpoint = o.endpoints[rng.nextInt(o.endpoints.length)] ?? "";
      const tokens = o.tokensOf(name);
      const inv = performance.now();
      if (tokens.length > 0 && rng.nextInt(2) === 0) {
        // Mostly the newest token (is it still current?), sometimes an older one (must not be).
        const token = rng.nextInt(4) === 0 ? (tokens[rng.nextInt(tokens.length)] ?? 0) : (tokens[tokens.length - 1] ?? 0);
        const r = await client.callAt<Obj>(endpoint, "Lock", "ValidateToken", { name, token: String(token) }, READ_TIMEOUT_MS);
        sink(
          r.ok
            ? {
                type: "validate",
                client: i,
                name,
                inv,
                cmp: performance.now(),
                outcome: "ok",
                token,
                current: r.value["current"] === true,
                endpoint,
              }
            : { ...failed(r, i, name, inv, "validate", endpoint), token },
        );
      } else {
        const r = await client.callAt<Obj>(endpoint, "Lock", "Status", { name }, READ_TIMEOUT_MS);
        if (r.ok) {
          const holder = r.value["state"] === "MUTEX_STATE_HELD" ? Number((r.value["holder"] as Obj | undefined)?.["token"] ?? 0) : null;
          sink({ type: "read", client: i, name, inv, cmp: performance.now(), outcome: "ok", holder, endpoint });
        } else {
          sink(failed(r, i, name, inv, "read", endpoint));
        }
      }
      await sleep(30 + rng.nextInt(120));
    }
  } finally {
    client.close();
  }
}

async function leaseProber(i: number, o: ProbeOptions, sink: OpSink, rng: SeededRandom): Promise<void> {
  const name = `${o.names[0] ?? "l"}-revoked-lease`;
  const clientId = `${o.clientPrefix}-${i}`;
  const sdk = new TenureClient({
    endpoints: o.endpoints,
    ...o.security,
    clientId: `${clientId}-sdk`,
    random: () => rng.nextFloat(),
    attemptTimeoutMs: 1000,
  });
  const raw = new TestClient(o.endpoints, o.security);
  let seq = 0;
  try {
    while (!o.stop.aborted) {
      await sleep(200 + rng.nextInt(600));
      let leaseId: number;
      try {
        const lease = await sdk.grantLease({ ttlMs: 1000 + rng.nextInt(2000) }, { timeoutMs: 3000 });
        leaseId = lease.id;
        await lease.revoke({ timeoutMs: 3000 });
      } catch {
        continue; // lease churn under faults: a failed grant or revoke proves nothing
      }
      const inv = performance.now();
      const r = await raw.call<Obj>("Lock", "Acquire", { clientId, seq: String(++seq), name, leaseId: String(leaseId), wait: false }, 3000);
      if (r.ok) {
        const token = Number(r.value["token"] ?? 0);
        sink({
          type: "lease-acquire",
          client: i,
          name,
          inv,
          cmp: performance.now(),
          outcome: "ok",
          token,
          error: `granted on lease ${leaseId}, revoked before`,
        });
        // Hand the lock back so the prober keeps probing (a grant on a dead lease never expires).
        await raw.call<Obj>("Lock", "Release", { clientId, seq: String(++seq), name, token: String(token) }, 3000);
      } else {
        sink({
          type: "lease-acquire",
          client: i,
          name,
          inv,
          cmp: performance.now(),
          outcome: r.reason === "LEASE_NOT_FOUND" || r.reason === "LEASE_EXPIRED" ? "fail" : "info",
          error: `${r.reason || r.code} ${r.details}`,
        });
      }
    }
  } finally {
    sdk.close();
    raw.close();
  }
}

/** Runs the readers and one lease prober until `stop` aborts. */
export async function runProbes(o: ProbeOptions, sink: OpSink): Promise<void> {
  const root = new SeededRandom(o.seed);
  await Promise.all([
    ...Array.from({ length: o.readers }, (_, k) => reader(o.firstClient + k, o, sink, root.fork())),
    leaseProber(o.firstClient + o.readers, o, sink, root.fork()),
  ]);
}
