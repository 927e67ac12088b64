// Footprint of the witness against a full voter (issue 4): two tenured voters (a, b) and a
// tenure-witness (w) on 127.0.0.1; C clients run acquire+release cycles until OPS lock
// operations (each acquire and each release counts one) have been acknowledged. At every
// checkpoint it prints each member's resident memory (VmRSS) and data-directory size
// (database + WAL), so a long run shows the witness's log staying bounded while both full
// voters are healthy.
//
//   npm run bench:witness-footprint -- [--ops 1000000] [--clients 32] [--checkpoints 10]

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ProcessCluster } from "../testing/itest/process_cluster.ts";
import { TestClient } from "../testing/itest/test_client.ts";

type Obj = Record<string, unknown>;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

function rssMiB(pid: number | undefined): string {
  if (pid === undefined) return "-";
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? (Number(m[1]) / 1024).toFixed(1) : "-";
}

function dirMiB(dir: string): string {
  let bytes = 0;
  for (const f of readdirSync(dir)) bytes += statSync(join(dir, f)).size;
  return (bytes / 1024 / 1024).toFixed(2);
}

async function main(): Promise<void> {
  const opsTarget = arg("ops", 20_000);
  const clients = arg("clients", 32);
  const checkpoints = arg("checkpoints", 10);
  // Snapshots every 10k entries on the voters; the witness truncates to the floor they allow.
  const cluster = await ProcessCluster.start({
    ids: ["a", "b", "w"],
    witnesses: ["w"],
    tickMs: 50,
    extraFlags: ["--snapshot-every-entries", "10000"],
  });
  const startedMs = Date.now();
  let ops = 0;
  let failures = 0;
  let nextCheckpoint = Math.ceil(opsTarget / checkpoints);
  console.log("| ops | elapsed s | ops/s | a RSS MiB | b RSS MiB | w RSS MiB | a disk MiB | b disk MiB | w disk MiB |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  const report = (): void => {
    const s = (Date.now() - startedMs) / 1000;
    const rss = ["a", "b", "w"].map((id) => rssMiB(cluster.processes.get(id)?.pid));
    const disk = ["a", "b", "w"].map((id) => dirMiB(cluster.dataDir(id)));
    console.log(`| ${ops} | ${s.toFixed(0)} | ${(ops / s).toFixed(0)} | ${rss.join(" | ")} | ${disk.join(" | ")} |`);
  };
  try {
    const worker = async (w: number): Promise<void> => {
      const c = new TestClient(cluster.endpoints().filter((_, i) => cluster.members[i]?.id !== "w"));
      let seq = 1;
      const clientId = `fp-${w}`;
      const g = await c.call<Obj>("Lease", "Grant", { clientId, seq: seq++, ttlMs: 3_600_000 }, 30_000);
      if (!g.ok) throw new Error(`grant failed: ${g.details}`);
      while (ops < opsTarget) {
        const a = await c.call<Obj>("Lock", "Acquire", { clientId, seq: seq++, name: `fp-${w}`, leaseId: g.value["leaseId"], wait: false });
        if (!a.ok) {
          failures++;
          continue;
        }
        const r = await c.call<Obj>("Lock", "Release", { clientId, seq: seq++, name: `fp-${w}`, token: a.value["token"] });
        if (!r.ok) failures++;
        ops += 2;
        if (ops >= nextCheckpoint) {
          nextCheckpoint += Math.ceil(opsTarget / checkpoints);
          report();
        }
      }
      c.close();
    };
    await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
    report();
    console.log(`failures: ${failures}`);
  } finally {
    await cluster.stopAll();
  }
}

void main();
