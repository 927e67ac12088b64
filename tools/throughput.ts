// A rough figure, not the benchmark issue: acquire+release cycles per second with C concurrent
// clients (distinct lock names, one lease each) against three local tenured processes.
//
//   node --import tsx tools/throughput.ts [--clients 16] [--seconds 10]

import { ProcessCluster } from "../testing/itest/process_cluster.ts";
import { TestClient } from "../testing/itest/test_client.ts";

type Obj = Record<string, unknown>;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

async function main(): Promise<void> {
  const clients = arg("clients", 16);
  const seconds = Math.min(arg("seconds", 10), 120);
  const cluster = await ProcessCluster.start({ tickMs: 50, electionTimeoutTicks: 10 });
  try {
    const probe = new TestClient(cluster.endpoints());
    let leaderId = "";
    for (let t = 0; t < 200 && !leaderId; t++) {
      const r = await probe.call<Obj>("Cluster", "Status", {}, 1000);
      if (r.ok && r.value["leaderId"]) leaderId = String(r.value["leaderId"]);
      else await new Promise((res) => setTimeout(res, 50));
    }
    probe.close();
    // Straight to the leader's own port: the cluster's stable addresses are proxies in this
    // process (ProcessCluster), which would take CPU from the clients being measured.
    const endpoints = [cluster.bound(leaderId)?.clientAddress ?? cluster.endpoints()[0] ?? ""];
    const latenciesMs: number[] = [];
    let failures = 0;
    const endAtMs = Date.now() + seconds * 1000;
    const worker = async (w: number): Promise<void> => {
      const c = new TestClient(endpoints);
      let seq = 1;
      const clientId = `bench-${w}`;
      const g = await c.call<Obj>("Lease", "Grant", { clientId, seq: seq++, ttlMs: 60_000 });
      if (!g.ok) throw new Error(`grant failed: ${g.details}`);
      while (Date.now() < endAtMs) {
        const startMs = performance.now();
        const a = await c.call<Obj>("Lock", "Acquire", {
          clientId,
          seq: seq++,
          name: `bench-${w}`,
          leaseId: g.value["leaseId"],
          wait: false,
        });
        if (!a.ok) {
          failures++;
          continue;
        }
        const r = await c.call<Obj>("Lock", "Release", { clientId, seq: seq++, name: `bench-${w}`, token: a.value["token"] });
        if (!r.ok) failures++;
        latenciesMs.push(performance.now() - startMs);
      }
      c.close();
    };
    const startedMs = performance.now();
    await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
    const elapsedS = (performance.now() - startedMs) / 1000;
    latenciesMs.sort((a, b) => a - b);
    const q = (p: number): string => (latenciesMs[Math.floor(p * (latenciesMs.length - 1))] ?? 0).toFixed(1);
    console.log("| clients | seconds | cycles | cycles/s | cycle p50 ms | cycle p99 ms | failures |");
    console.log("| --- | --- | --- | --- | --- | --- | --- |");
    console.log(
      `| ${clients} | ${elapsedS.toFixed(1)} | ${latenciesMs.length} | ${(latenciesMs.length / elapsedS).toFixed(0)} | ${q(0.5)} | ${q(0.99)} | ${failures} |`,
    );
  } finally {
    await cluster.stopAll();
  }
}

void main();
