// One measurement of one figure on one system in one repetition: what the table is made of, and
// what the JSON-lines file holds (one line per result, plus a header line per run).

import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { SystemName } from "./cluster.ts";

/**
 * A system as measured: Tenure runs with TLS (as users run it); for --tenure-insecure also in
 * plaintext; for --tenure-metrics also with TLS and --metrics-listen on every member, each
 * scraped once a second (the cost of recording and serving the metrics); for --floor, the floor
 * server (floor_server.ts: the same protos and gRPC stack, answering at once) and the quorum floor
 * (quorum_floor_server.ts: a leader and two followers that only fsync and acknowledge) with TLS,
 * and in plaintext too with --tenure-insecure.
 */
export type Column =
  | "etcd"
  | "tenure"
  | "tenure-plaintext"
  | "tenure-metrics"
  | "floor"
  | "floor-plaintext"
  | "quorum-floor"
  | "quorum-floor-plaintext";

export const COLUMN_SYSTEM: Readonly<Record<Column, SystemName>> = {
  etcd: "etcd",
  tenure: "tenure",
  "tenure-plaintext": "tenure",
  "tenure-metrics": "tenure",
  floor: "floor",
  "floor-plaintext": "floor",
  "quorum-floor": "floor",
  "quorum-floor-plaintext": "floor",
};

export interface BenchResult {
  readonly kind: "result";
  readonly figure: string;
  readonly column: Column;
  readonly rep: number;
  readonly atIso: string;
  /** The figure's main value (throughput, or a duration for failover, or MiB for memory). */
  readonly value: number;
  readonly unit: string;
  /** Whether more is better (throughput) or less (failover time, memory). */
  readonly higherIsBetter: boolean;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly ops: number | null;
  readonly errors: number;
  /** Figure-specific numbers and facts (CPU %, leases alive, per-member RSS, per-trial times). */
  readonly extra: Readonly<Record<string, number | string | boolean | readonly number[]>>;
  readonly errorKinds?: Readonly<Record<string, number>>;
}

export interface RunHeader {
  readonly kind: "run";
  readonly atIso: string;
  readonly argv: readonly string[];
  readonly machine: Readonly<Record<string, string | number>>;
  readonly etcd: string;
}

/** Appends JSON lines to a file (created with its directory), and keeps them for the table. */
export class JsonLines {
  readonly results: BenchResult[] = [];
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, "");
  }

  header(h: RunHeader): void {
    appendFileSync(this.path, `${JSON.stringify(h)}\n`);
  }

  add(r: BenchResult): void {
    this.results.push(r);
    appendFileSync(this.path, `${JSON.stringify(r)}\n`);
  }
}
