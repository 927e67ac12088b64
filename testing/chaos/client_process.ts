// A lock holder in its own process, so the nemesis can SIGSTOP it while it holds a lock (a GC
// pause, a stalled VM). It runs the same workload loop as the harness's clients but writes
// WITHOUT looking at lock.signal first (a pause between that check and the write has the same
// effect): after a long pause only the guard stands between its stale token and the store.
//
// It reads its options as JSON from argv[2] and writes one JSON line per event to stdout:
//   {"op": Op}                 a history operation, times as epoch ms (timeOrigin + now)
//   {"acquired": name, "token": t}   right after a grant (the nemesis pauses it then)
// SIGTERM stops it after the current cycle.

import { performance } from "node:perf_hooks";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { HttpGuardTarget } from "./http_guard.ts";
import { GuardStores, runWorkload, type GuardTarget, type Op } from "./workload.ts";

export interface ClientProcessOptions {
  readonly endpoints: readonly string[];
  /** TLS as file paths (the process reads the harness's client certificate), or insecure. */
  readonly security: TransportSecurity;
  readonly names: readonly string[];
  readonly outDir: string;
  readonly seed: number;
  readonly clientPrefix: string;
  readonly firstClient: number;
  readonly clients: number;
  readonly ttlMs: number;
  readonly guardUrl?: string;
}

const epoch = (t: number): number => performance.timeOrigin + t;

const o = JSON.parse(process.argv[2] ?? "{}") as ClientProcessOptions;
const stop = new AbortController();
process.on("SIGTERM", () => stop.abort());
const stores: GuardTarget = o.guardUrl ? new HttpGuardTarget(o.guardUrl, o.clientPrefix) : new GuardStores(o.outDir, o.names);
const emit = (line: object): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};
const toEpoch = (op: Op): Op => ({
  ...op,
  inv: epoch(op.inv),
  cmp: epoch(op.cmp),
  ...(op.heldFrom !== undefined ? { heldFrom: epoch(op.heldFrom) } : {}),
  ...(op.heldUntil !== undefined ? { heldUntil: epoch(op.heldUntil) } : {}),
  process: "client-process",
});
await runWorkload(
  {
    endpoints: o.endpoints,
    security: o.security,
    clients: o.clients,
    names: o.names,
    seed: o.seed,
    ttlMs: o.ttlMs,
    stop: stop.signal,
    clientPrefix: o.clientPrefix,
    firstClient: o.firstClient,
    checkSignalBeforeWrite: false,
    onAcquired: (name, token) => emit({ acquired: name, token }),
  },
  { add: (op) => emit({ op: toEpoch(op) }) },
  stores,
);
stores.close();
emit({ done: true });
