// The workload: concurrent SDK clients that acquire one of a few locks, write through ONE
// SqliteGuard store per lock name carrying their token, and release (or let the lease lapse:
// lease churn). Every operation goes to the history with invocation and completion times
// (performance.now), its outcome or error, and whether an error is ambiguous.

import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { TenureClient, TenureError, type Lock } from "../../client-sdk/index.ts";
import { SqliteGuard } from "../../client-sdk/guard/sqlite_guard.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { SeededRandom } from "../../server/core/random.ts";
import { sleep } from "./faults.ts";

export type OpType = "acquire" | "write" | "release" | "abandon" | "read" | "validate" | "lease-acquire";

export interface Op {
  readonly type: OpType;
  readonly client: number;
  readonly name: string;
  readonly inv: number;
  readonly cmp: number;
  /** ok: the call succeeded (write: the guard accepted); fail: definite failure; info: ambiguous. */
  readonly outcome: "ok" | "fail" | "info";
  readonly token?: number;
  readonly error?: string;
  readonly ambiguous?: boolean;
  /** release / abandon: when this holder believed it held the lock, from its acquire's
   *  completion to the earlier of this op's invocation and its lease deadline (lock.validUntil).
   *  Two holders of one lock must never believe at the same instant. */
  readonly heldFrom?: number;
  readonly heldUntil?: number;
  /** read: the holder token Lock.Status answered (null: free or in lock-delay). */
  readonly holder?: number | null;
  /** validate: ValidateToken's answer. */
  readonly current?: boolean;
  /** read / validate: the member asked directly (no redirect). */
  readonly endpoint?: string;
  /** Which process ran it ("harness" unless a separate client process). */
  readonly process?: string;
}

export type OpSink = (op: Op) => void;

const AMBIGUOUS = new Set(["OUTCOME_UNKNOWN", "DEADLINE_EXCEEDED", "CANCELLED", "UNAVAILABLE", "INTERNAL", "CLOSED"]);

export class History {
  readonly ops: Op[] = [];
  private readonly out: WriteStream;
  constructor(readonly path: string) {
    this.out = createWriteStream(path);
  }
  add(op: Op): void {
    this.ops.push(op);
    this.out.write(`${JSON.stringify(op)}\n`);
  }
  close(): Promise<void> {
    return new Promise((res) => this.out.end(() => res()));
  }
}

export interface WriteResult {
  readonly ok: boolean;
  readonly error?: string;
  /** The store may or may not have applied it (a timeout, an unexpected answer). */
  readonly ambiguous?: boolean;
}

/** Where the workload's guarded writes go: local SQLite guards (GuardStores) or a user's own
 *  guarded store over HTTP (http_guard.ts). */
export interface GuardTarget {
  write(name: string, token: number, client: number): WriteResult | Promise<WriteResult>;
  close(): void;
}

/** One SQLite file per lock name: the guard's marks, the data, and an audit of accepted writes.
 *  better-sqlite3 waits for a lock synchronously, which would freeze this whole process (every
 *  client and the nemesis, which is what must SIGCONT a paused writer holding that lock). So
 *  each attempt waits at most BUSY_WAIT_MS and the retries wait asynchronously. */
export class GuardStores implements GuardTarget {
  static readonly BUSY_WAIT_MS = 5;
  static readonly BUSY_RETRY_BUDGET_MS = 15_000;
  readonly guards = new Map<string, SqliteGuard>();
  constructor(dir: string, names: readonly string[]) {
    for (const name of names) {
      const g = SqliteGuard.open(join(dir, `guard-${name}.sqlite`), { busyTimeoutMs: GuardStores.BUSY_WAIT_MS });
      retryBusySync(() =>
        g.db.exec(
          "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL, client INTEGER NOT NULL, at REAL NOT NULL)",
        ),
      );
      this.guards.set(name, g);
    }
  }
  /** Writes one audited row under `token`; ok if the guard accepted it. */
  async write(name: string, token: number, client: number): Promise<WriteResult> {
    const g = this.guards.get(name);
    if (!g) throw new Error(`no guard ${name}`);
    const deadline = performance.now() + GuardStores.BUSY_RETRY_BUDGET_MS;
    for (;;) {
      try {
        const r = g.tryRun(name, token, (db) => {
          db.prepare("INSERT INTO audit (token, client, at) VALUES (?, ?, ?)").run(String(token), client, performance.now());
        });
        return r.ok ? { ok: true } : { ok: false, error: r.error.code };
      } catch (e) {
        // SQLITE_BUSY: another process (a paused client) holds the write lock; nothing committed.
        if (isBusy(e) && performance.now() < deadline) {
          await sleep(10);
          continue;
        }
        return { ok: false, error: `GUARD_ERROR ${e instanceof Error ? e.message : String(e)}` };
      }
    }
  }
  /** Accepted tokens of `name` in acceptance order (the workload's writes: client >= 0). */
  audit(name: string): bigint[] {
    const g = this.guards.get(name);
    if (!g) return [];
    return (g.db.prepare("SELECT token FROM audit WHERE client >= 0 ORDER BY seq").pluck().all() as string[]).map((t) => BigInt(t));
  }
  close(): void {
    for (const g of this.guards.values()) g.close();
  }
}

function isBusy(e: unknown): boolean {
  return typeof e === "object" && e !== null && "code" in e && (e.code === "SQLITE_BUSY" || e.code === "SQLITE_LOCKED");
}

/** Setup statements at open: a short synchronous retry is fine there (nothing else runs yet). */
function retryBusySync(run: () => void): void {
  for (let attempt = 0; ; attempt++) {
    try {
      run();
      return;
    } catch (e) {
      if (!isBusy(e) || attempt >= 500) throw e;
    }
  }
}

export interface WorkloadOptions {
  readonly endpoints: readonly string[];
  /** How the clients reach the members: mutual TLS with the harness's client certificate, or
   *  plaintext against an --insecure cluster. */
  readonly security: TransportSecurity;
  readonly clients: number;
  readonly names: readonly string[];
  readonly seed: number;
  readonly ttlMs: number;
  readonly stop: AbortSignal;
  /** Session ids are `<clientPrefix>-<client>[-<generation>]`: unique per run, so a reused seed
   *  against a long-lived deployment never replays an old session's answers. */
  readonly clientPrefix: string;
  /** Client numbers start here (a client process gets its own range). */
  readonly firstClient?: number;
  /** false: write without looking at lock.signal, as a holder whose pause fell between that check
   *  and its write would; only the guard then stands between it and the store. Default true. */
  readonly checkSignalBeforeWrite?: boolean;
  /** Called with the lock right after each successful acquire (the client-pause nemesis). */
  readonly onAcquired?: (name: string, token: number) => void;
}

/** An SDK error as the history records it; ambiguous: the operation may or may not have happened. */
export function errorOf(e: unknown): { error: string; ambiguous: boolean } {
  const t = TenureError.from(e);
  return { error: `${t.code}${t.reason ? ` ${t.reason}` : ""}`, ambiguous: AMBIGUOUS.has(t.code) };
}

async function worker(i: number, o: WorkloadOptions, h: { add: OpSink }, stores: GuardTarget, rng: SeededRandom): Promise<void> {
  let client = new TenureClient({
    endpoints: o.endpoints,
    ...o.security,
    clientId: `${o.clientPrefix}-${i}`,
    random: () => rng.nextFloat(),
    attemptTimeoutMs: 1000,
  });
  let generation = 0;
  try {
    while (!o.stop.aborted) {
      const name = o.names[rng.nextInt(o.names.length)] ?? "l0";
      const inv = performance.now();
      let lock: Lock;
      try {
        lock = await client.lock(name, { ttlMs: o.ttlMs, timeoutMs: 3000 }, { timeoutMs: 6000 });
      } catch (e) {
        const { error, ambiguous } = errorOf(e);
        h.add({ type: "acquire", client: i, name, inv, cmp: performance.now(), outcome: ambiguous ? "info" : "fail", error, ambiguous });
        await sleep(20 + rng.nextInt(80));
        continue;
      }
      const heldFrom = performance.now();
      h.add({ type: "acquire", client: i, name, inv, cmp: heldFrom, outcome: "ok", token: lock.token });
      o.onAcquired?.(name, lock.token);
      await sleep(rng.nextInt(60));
      // Safety rule 1: stop at the signal. A write after that is still fenced, and is recorded.
      if (o.checkSignalBeforeWrite === false || !lock.signal.aborted) {
        const wInv = performance.now();
        const w = await stores.write(name, lock.token, i);
        h.add({
          type: "write",
          client: i,
          name,
          inv: wInv,
          cmp: performance.now(),
          outcome: w.ok ? "ok" : w.ambiguous ? "info" : "fail",
          token: lock.token,
          ...(w.error ? { error: w.error } : {}),
        });
      }
      await sleep(rng.nextInt(60));
      if (rng.nextInt(8) === 0) {
        // Lease churn: drop the client without releasing; the server expires the lease after its TTL.
        const at = performance.now();
        h.add({
          type: "abandon",
          client: i,
          name,
          inv: at,
          cmp: at,
          outcome: "ok",
          token: lock.token,
          heldFrom,
          heldUntil: Math.min(at, lock.validUntil),
        });
        client.close();
        client = new TenureClient({
          endpoints: o.endpoints,
          ...o.security,
          clientId: `${o.clientPrefix}-${i}-${++generation}`,
          random: () => rng.nextFloat(),
          attemptTimeoutMs: 1000,
        });
        continue;
      }
      const rInv = performance.now();
      const held = { heldFrom, heldUntil: Math.min(rInv, lock.validUntil) };
      try {
        const released = await lock.release({ timeoutMs: 5000 });
        h.add({
          type: "release",
          client: i,
          name,
          inv: rInv,
          cmp: performance.now(),
          outcome: released ? "ok" : "fail",
          token: lock.token,
          ...held,
        });
      } catch (e) {
        const { error, ambiguous } = errorOf(e);
        h.add({
          type: "release",
          client: i,
          name,
          inv: rInv,
          cmp: performance.now(),
          outcome: ambiguous ? "info" : "fail",
          token: lock.token,
          error,
          ambiguous,
          ...held,
        });
      }
    }
  } finally {
    client.close();
  }
}

/** Runs `clients` workers until `stop` aborts and each finishes its current cycle. */
export async function runWorkload(o: WorkloadOptions, h: { add: OpSink }, stores: GuardTarget): Promise<void> {
  const root = new SeededRandom(o.seed);
  const first = o.firstClient ?? 0;
  await Promise.all(Array.from({ length: o.clients }, (_, i) => worker(first + i, o, h, stores, root.fork())));
}
