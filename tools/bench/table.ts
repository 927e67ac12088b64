// The one table: a row per figure, a column per system (etcd, Tenure with TLS, and Tenure in
// plaintext with --tenure-insecure), each cell the median across repetitions (of the value, of
// p50, of p99), and the ratio Tenure/etcd of the medians' main value.

import { median } from "./latency.ts";
import type { BenchResult, Column } from "./results.ts";

export interface FigureSpec {
  readonly figure: string;
  readonly label: string;
}

const COLUMN_LABEL: Readonly<Record<Column, string>> = {
  etcd: "etcd (plaintext)",
  tenure: "Tenure (mutual TLS 1.3)",
  "tenure-plaintext": "Tenure (--insecure)",
  "tenure-metrics": "Tenure (mutual TLS, metrics scraped 1/s)",
  floor: "floor: no-op server (mutual TLS 1.3)",
  "floor-plaintext": "floor: no-op server (plaintext)",
  "quorum-floor": "quorum floor: fsync + one follower (mutual TLS 1.3)",
  "quorum-floor-plaintext": "quorum floor: fsync + one follower (plaintext)",
};

/** The ratio column's name: the column's short name and what sets it apart. */
const RATIO_LABEL: Readonly<Record<Column, string>> = {
  etcd: "etcd",
  tenure: "Tenure",
  "tenure-plaintext": "Tenure --insecure",
  "tenure-metrics": "Tenure +metrics",
  floor: "floor",
  "floor-plaintext": "floor plaintext",
  "quorum-floor": "quorum floor",
  "quorum-floor-plaintext": "quorum floor plaintext",
};

function num(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return "–";
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toFixed(d);
}

function extraNumbers(rs: readonly BenchResult[], key: string): number[] {
  return rs.map((r) => r.extra[key]).filter((v): v is number => typeof v === "number");
}

/** The cell of one figure on one system (rs: its results, every repetition or trial). */
export function cell(figure: string, rs: readonly BenchResult[]): string {
  if (rs.length === 0) return "not run";
  const value = median(rs.map((r) => r.value));
  const errors = rs.reduce((s, r) => s + r.errors, 0);
  const errs = errors > 0 ? ` · ${errors} errors` : "";
  const p50 = median(rs.map((r) => r.p50Ms ?? Number.NaN));
  const p99 = median(rs.map((r) => r.p99Ms ?? Number.NaN));
  if (figure === "failover") {
    const all = rs.map((r) => r.value).sort((a, b) => a - b);
    const s = (ms: number | undefined): string => num((ms ?? Number.NaN) / 1000, 2);
    return `${s(value)} s median (${s(all[0])}–${s(all[all.length - 1])} s, ${all.length} trials)${errs}`;
  }
  if (figure.startsWith("memory")) {
    const keys = Object.keys(rs[0]?.extra ?? {}).filter((k) => k.startsWith("rssMiB_"));
    const parts = keys.map((k) => `${k.replace("rssMiB_", "").replace("witness_", "witness ")} ${num(median(extraNumbers(rs, k)), 0)}`);
    const leases = median(extraNumbers(rs, "leases"));
    return `${parts.join(" · ")} MiB${Number.isFinite(leases) ? ` (${num(leases, 0)} leases)` : ""}${errs}`;
  }
  if (figure.startsWith("keepalive")) {
    const cpu = median(extraNumbers(rs, "leaderCpuPct"));
    const alive = median(extraNumbers(rs, "aliveAtEnd"));
    const held = median(extraNumbers(rs, "leases"));
    const lat = Number.isFinite(p50) ? ` · ${num(p50)}/${num(p99)} ms` : "";
    return `${num(value)} renewals/s${lat} · leader CPU ${num(cpu, 0)} % · alive ${num(alive, 0)}/${num(held, 0)}${errs}`;
  }
  const unit = rs[0]?.unit ?? "";
  return `${num(value)} ${unit} · p50 ${num(p50)} / p99 ${num(p99)} ms${errs}`;
}

export function renderTable(figures: readonly FigureSpec[], columns: readonly Column[], results: readonly BenchResult[]): string[] {
  // Without etcd there is nothing to divide by: no ratio columns.
  const tenureColumns = columns.includes("etcd") ? columns.filter((c) => c !== "etcd") : [];
  const header = ["figure", ...columns.map((c) => COLUMN_LABEL[c]), ...tenureColumns.map((c) => `${RATIO_LABEL[c]}/etcd`)];
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`];
  for (const f of figures) {
    const of = (c: Column): BenchResult[] => results.filter((r) => r.figure === f.figure && r.column === c);
    if (columns.every((c) => of(c).length === 0)) continue;
    const etcdValue = median(of("etcd").map((r) => r.value));
    const ratios = tenureColumns.map((c) => {
      const v = median(of(c).map((r) => r.value));
      return Number.isFinite(etcdValue) && etcdValue > 0 && Number.isFinite(v) ? `${num(v / etcdValue, 2)}×` : "–";
    });
    lines.push(`| ${[f.label, ...columns.map((c) => cell(f.figure, of(c))), ...ratios].join(" | ")} |`);
  }
  return lines;
}
