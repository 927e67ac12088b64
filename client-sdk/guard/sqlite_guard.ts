// The durable guard: the highest accepted token per resource lives in a table of the SAME SQLite
// database as the protected data, and every protected write runs in one `BEGIN IMMEDIATE`
// transaction with the check and the raise. IMMEDIATE takes the write lock before the read, so
// two processes cannot both read the old mark and both pass (no TOCTOU, even across processes on
// one file); and since the mark commits with the data, a crash can never keep one without the
// other. WAL + synchronous=FULL makes a committed write (and its mark) survive power loss.

import Database from "better-sqlite3";
import type { Database as Db, Statement } from "better-sqlite3";
import { StaleFencingTokenError } from "./errors.ts";
import type { GuardMetricsOptions } from "./metrics.ts";
import { rejectionRecorder } from "./metrics.ts";
import { assertSynchronous, parseFencingToken } from "./token_store.ts";
import type { FencingGuard, FencingToken, RunResult } from "./token_store.ts";

export interface SqliteGuardOptions extends GuardMetricsOptions {
  /** Table that keeps the marks (default tenure_fencing). Must be a plain SQL identifier. */
  readonly table?: string;
  /** Set journal_mode=WAL, synchronous=FULL and busy_timeout on the connection (default true). */
  readonly configure?: boolean;
  /** How long a writer waits for another process's transaction, in ms (default 5000). */
  readonly busyTimeoutMs?: number;
  readonly onReject?: (e: StaleFencingTokenError) => void;
}

type Outcome<T> = { readonly stale: StaleFencingTokenError } | { readonly value: T };

export class SqliteGuard implements FencingGuard<Db> {
  private readonly table: string;
  private readonly record: (e: StaleFencingTokenError) => void;
  private readonly select: Statement<[string]>;
  private readonly upsert: Statement<[string, string, number]>;

  /** Opens (or creates) `path` and guards it; the protected data belongs in the same file. */
  static open(path: string, options: SqliteGuardOptions = {}): SqliteGuard {
    return new SqliteGuard(new Database(path), options);
  }

  constructor(
    readonly db: Db,
    private readonly options: SqliteGuardOptions = {},
  ) {
    this.table = options.table ?? "tenure_fencing";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(this.table)) throw new Error(`invalid table name ${JSON.stringify(this.table)}`);
    if (options.configure !== false) {
      // Durability of the mark is the durability of the data: both commit in one fsync'd WAL frame.
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
    }
    // Tokens are uint64 and SQLite integers are int64, so marks are decimal TEXT compared as
    // BigInt in the transaction (comparing TEXT in SQL would order "9" above "10").
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${this.table} (` +
        "resource TEXT PRIMARY KEY NOT NULL, highest TEXT NOT NULL, updated_at_ms INTEGER NOT NULL) WITHOUT ROWID",
    );
    this.select = db.prepare<[string]>(`SELECT highest FROM ${this.table} WHERE resource = ?`).pluck();
    this.upsert = db.prepare<[string, string, number]>(
      `INSERT INTO ${this.table} (resource, highest, updated_at_ms) VALUES (?, ?, ?) ` +
        "ON CONFLICT(resource) DO UPDATE SET highest = excluded.highest, updated_at_ms = excluded.updated_at_ms",
    );
    this.record = rejectionRecorder(options);
  }

  highest(resource: string): bigint | null {
    return this.readMark(resource);
  }

  run<T>(resource: string, token: FencingToken, write: (db: Db) => T): T {
    const r = this.tryRun(resource, token, write);
    if (!r.ok) throw r.error;
    return r.value;
  }

  tryRun<T>(resource: string, token: FencingToken, write: (db: Db) => T): RunResult<T> {
    const t = parseFencingToken(token);
    const tx = this.db.transaction((): Outcome<T> => {
      const highest = this.readMark(resource);
      // A stale token commits an empty transaction rather than throwing through better-sqlite3:
      // nothing was written, and the caller gets the error as a value.
      if (highest !== null && t < highest) return { stale: new StaleFencingTokenError(resource, t, highest) };
      if (highest === null || t > highest) this.upsert.run(resource, t.toString(), Date.now());
      const value = write(this.db);
      // Throwing here rolls back the write and the raise: an async write would escape the lock.
      assertSynchronous(value);
      return { value };
    });
    // Inside a caller's transaction better-sqlite3 turns this into a SAVEPOINT, which is still
    // atomic with the caller's writes; on its own it is BEGIN IMMEDIATE.
    const outcome = tx.immediate();
    if ("stale" in outcome) {
      this.record(outcome.stale);
      this.options.onReject?.(outcome.stale);
      return { ok: false, error: outcome.stale };
    }
    return { ok: true, value: outcome.value };
  }

  close(): void {
    this.db.close();
  }

  private readMark(resource: string): bigint | null {
    const raw: unknown = this.select.get(resource);
    if (raw === undefined) return null;
    if (typeof raw !== "string" || !/^[0-9]{1,20}$/.test(raw)) {
      throw new Error(`corrupt fencing mark ${JSON.stringify(raw)} for ${JSON.stringify(resource)} in ${this.table}`);
    }
    return BigInt(raw);
  }
}
