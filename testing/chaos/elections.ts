// The elections-with-observers workload: campaigners campaign / proclaim / resign / abandon on
// one election while observers follow observe() and record every leader it yields. Every event
// goes to one array in the order it happened, with performance.now() times (one clock for all
// clients), for check_elections.ts.

import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { TenureClient, type Leadership } from "../../client-sdk/index.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { errorOf } from "./workload.ts";

export type Outcome = "ok" | "fail" | "info";

interface Timed {
  readonly client: number;
  readonly inv: number;
  readonly cmp: number;
  /** ok: it happened; fail: it definitely did not; info: ambiguous, it may have. */
  readonly outcome: Outcome;
  readonly error?: string;
}

/** The belief interval of one leadership: campaign completion to the earliest of resign
 *  invocation, abandon, and the moment its signal aborted (capped by the lease deadline). */
interface Held {
  readonly heldFrom: number;
  readonly heldUntil: number;
}

export type ElectionEvent =
  | (Timed & { readonly type: "campaign"; readonly value: string; readonly token?: number })
  | (Timed & { readonly type: "proclaim"; readonly token: number; readonly value: string })
  | (Timed & Held & { readonly type: "resign"; readonly token: number })
  /** The client closed without resigning; the server expires the lease. */
  | (Held & { readonly type: "abandon"; readonly client: number; readonly at: number; readonly token: number })
  /** One item the observer's iterator yielded (token and value null: nobody leads). */
  | {
      readonly type: "observe";
      readonly observer: number;
      readonly at: number;
      readonly name: string;
      readonly token: number | null;
      readonly value: string | null;
    };

export interface ElectionOptions {
  readonly endpoints: readonly string[];
  readonly security: TransportSecurity;
  readonly name: string;
  readonly campaigners: number;
  readonly observers: number;
  readonly seed: number;
  readonly ttlMs: number;
  readonly stop: AbortSignal;
  /** Root of every seeded draw (default: new SeededRandom(seed)). */
  readonly random?: SeededRandom;
  /** Session ids are `<clientPrefix>-c<i>-<generation>` / `-o<i>`: unique per run, so a reused
   *  seed against a long-lived deployment never replays an old session's answers. */
  readonly clientPrefix?: string;
  readonly log?: (line: string) => void;
  /** Called with each event as it is recorded (e.g. to stream it to history.jsonl). */
  readonly onEvent?: (e: ElectionEvent) => void;
}

/** After stop, workers get this long to finish their cycle; then every client is closed. */
const STOP_GRACE_MS = 2_000;

/** The workload's classification (workload.ts errorOf), as an election outcome. */
function electionErrorOf(e: unknown): { error: string; outcome: Outcome } {
  const { error, ambiguous } = errorOf(e);
  return { error, outcome: ambiguous ? "info" : "fail" };
}

/** Sleeps, but returns early (without throwing) when `signal` aborts. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal }).catch(() => {});
}

interface Run {
  readonly o: ElectionOptions;
  readonly prefix: string;
  readonly clients: Set<TenureClient>;
  add(e: ElectionEvent): void;
}

function newClient(run: Run, id: string, rng: SeededRandom): TenureClient {
  const c = new TenureClient({
    endpoints: run.o.endpoints,
    ...run.o.security,
    clientId: `${run.prefix}-${id}`,
    random: () => rng.nextFloat(),
    attemptTimeoutMs: 1000,
  });
  run.clients.add(c);
  return c;
}

function closeClient(run: Run, c: TenureClient): void {
  c.close();
  run.clients.delete(c);
}

/** When the holder stops believing it leads: the first abort of its signal, no later than the
 *  lease deadline the SDK computed (resign() and close() abort the signal synchronously). */
function beliefEnd(l: Leadership): () => number {
  let end = l.signal.aborted ? performance.now() : Infinity;
  l.signal.addEventListener("abort", () => (end = Math.min(performance.now(), l.lease.expiresAt)), { once: true });
  return () => end;
}

/** Holds 0..300 ms, proclaiming 0..2 new values while the signal is live. */
async function hold(run: Run, i: number, l: Leadership, base: string, rng: SeededRandom): Promise<void> {
  const proclaims = rng.nextInt(3);
  for (let k = 1; k <= proclaims; k++) {
    await pause(rng.nextInt(100), run.o.stop);
    if (l.signal.aborted || run.o.stop.aborted) return;
    const value = `${base}.p${k}`;
    const inv = performance.now();
    try {
      await l.proclaim(value, { timeoutMs: 2000, signal: l.signal });
      run.add({ type: "proclaim", client: i, inv, cmp: performance.now(), outcome: "ok", token: l.token, value });
    } catch (e) {
      run.add({ type: "proclaim", client: i, inv, cmp: performance.now(), token: l.token, value, ...electionErrorOf(e) });
      // An ambiguous proclaim may still apply later, after a next one sent on another session;
      // stopping here keeps each leader's values in one known order for the observer check.
      return;
    }
  }
  await pause(rng.nextInt(100 * (3 - proclaims) + 1), run.o.stop);
}

async function campaigner(run: Run, i: number, rng: SeededRandom): Promise<void> {
  const { o } = run;
  let generation = 0;
  let client = newClient(run, `c${i}-${generation}`, rng);
  try {
    for (let n = 0; !o.stop.aborted; n++) {
      const value = `c${i}-${n}`;
      const inv = performance.now();
      let l: Leadership;
      try {
        l = await client.election(o.name).campaign(value, { ttlMs: o.ttlMs, timeoutMs: 3000 }, { timeoutMs: 6000, signal: o.stop });
      } catch (e) {
        run.add({ type: "campaign", client: i, inv, cmp: performance.now(), value, ...electionErrorOf(e) });
        await pause(20 + rng.nextInt(80), o.stop);
        continue;
      }
      const heldFrom = performance.now();
      const until = beliefEnd(l);
      run.add({ type: "campaign", client: i, inv, cmp: heldFrom, outcome: "ok", value, token: l.token });
      await hold(run, i, l, value, rng);
      if (rng.nextInt(8) === 0) {
        // Lease churn: drop the client without resigning; the server expires the lease.
        const at = performance.now();
        closeClient(run, client);
        run.add({ type: "abandon", client: i, at, token: l.token, heldFrom, heldUntil: Math.min(at, until()) });
        client = newClient(run, `c${i}-${++generation}`, rng);
        continue;
      }
      const rInv = performance.now();
      const resigned = l.resign({ timeoutMs: 2000 });
      const held = { heldFrom, heldUntil: Math.min(rInv, until()) };
      try {
        const ok = await resigned;
        run.add({ type: "resign", client: i, inv: rInv, cmp: performance.now(), outcome: ok ? "ok" : "fail", token: l.token, ...held });
      } catch (e) {
        run.add({ type: "resign", client: i, inv: rInv, cmp: performance.now(), token: l.token, ...electionErrorOf(e), ...held });
      }
    }
  } finally {
    closeClient(run, client);
  }
}

async function observer(run: Run, i: number, rng: SeededRandom): Promise<void> {
  const { o } = run;
  const client = newClient(run, `o${i}`, rng);
  try {
    while (!o.stop.aborted) {
      try {
        for await (const l of client.election(o.name).observe({ signal: o.stop })) {
          run.add({
            type: "observe",
            observer: i,
            at: performance.now(),
            name: l?.name ?? o.name,
            token: l?.token ?? null,
            value: l?.value ?? null,
          });
        }
      } catch (e) {
        // Nothing is recorded for the failure itself: an observer only reports what it saw.
        o.log?.(`elections: observer ${i}: ${electionErrorOf(e).error}`);
      }
      await pause(50 + rng.nextInt(100), o.stop);
    }
  } finally {
    closeClient(run, client);
  }
}

/** Runs the campaigners and observers until `stop` aborts; returns every event in order. */
export async function runElections(o: ElectionOptions): Promise<ElectionEvent[]> {
  const events: ElectionEvent[] = [];
  const run: Run = {
    o,
    prefix: o.clientPrefix ?? `${o.name}-${Date.now().toString(36)}`,
    clients: new Set(),
    add: (e) => {
      events.push(e);
      o.onEvent?.(e);
    },
  };
  // Bound the shutdown: a worker stuck in a call past the grace is cut off by closing its client.
  let cutoff: NodeJS.Timeout | undefined;
  const onStop = (): void => {
    cutoff = setTimeout(() => [...run.clients].forEach((c) => closeClient(run, c)), STOP_GRACE_MS);
  };
  if (o.stop.aborted) onStop();
  else o.stop.addEventListener("abort", onStop, { once: true });
  const root = o.random ?? new SeededRandom(o.seed);
  const rngs = Array.from({ length: o.campaigners + o.observers }, () => root.fork());
  await Promise.all([
    ...Array.from({ length: o.campaigners }, (_, i) => campaigner(run, i, rngs[i] ?? root)),
    ...Array.from({ length: o.observers }, (_, i) => observer(run, i, rngs[o.campaigners + i] ?? root)),
  ]);
  o.stop.removeEventListener("abort", onStop);
  clearTimeout(cutoff);
  const acked = events.filter((e) => e.type === "campaign" && e.outcome === "ok").length;
  o.log?.(`elections: ${events.length} events, ${acked} campaigns acknowledged`);
  return events;
}

/** What a fresh campaign on the healed cluster got (check_elections.ts checkElectionFinal). */
export interface ElectionFinal {
  /** Token of the fresh campaign, or null with the error. */
  readonly probeToken: number | null;
  readonly probeError?: string;
  /** Election.Leader (linearizable) while the probe leads: its token, or null (nobody). */
  readonly leaderToken: number | null;
}

/** After the workload stopped and the cluster healed: campaign once more, read the leader, resign.
 *  The campaign may wait for an abandoned lease to lapse, hence the long server-side timeout. */
export async function probeElection(o: {
  endpoints: readonly string[];
  security: TransportSecurity;
  name: string;
  ttlMs: number;
  clientId: string;
  random: SeededRandom;
}): Promise<ElectionFinal> {
  const client = new TenureClient({
    endpoints: o.endpoints,
    ...o.security,
    clientId: o.clientId,
    random: () => o.random.nextFloat(),
    attemptTimeoutMs: 1000,
  });
  try {
    const l = await client.election(o.name).campaign("final", { ttlMs: o.ttlMs, timeoutMs: 3 * o.ttlMs + 5_000 });
    const leader = await client
      .election(o.name)
      .leader({ timeoutMs: 5_000 })
      .catch(() => null);
    await l.resign({ timeoutMs: 5_000 }).catch(() => false);
    return { probeToken: l.token, leaderToken: leader?.token ?? null };
  } catch (e) {
    return { probeToken: null, probeError: electionErrorOf(e).error, leaderToken: null };
  } finally {
    client.close();
  }
}
