// A Tenure cluster of compiled processes on fixed 127.0.0.1 ports: three voters (a, b, c), or
// the two-site layout (voters a and b and the witness w), with the server's defaults (tick 50 ms,
// election 10 ticks, fsync on: SQLite WAL, every write fsynced before it counts) and mutual TLS on both ports
// unless `insecure`. Data under a temp root, removed by stop().

import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { TestClient } from "../../testing/itest/test_client.ts";
import { WITNESS_NODE_FLAGS } from "../../witness/node_flags.ts";
import type { DevCertificates } from "../dev_certs.ts";
import { registerCleanup } from "./cleanup.ts";
import { type BenchCluster, type BenchMember, OutputTail } from "./cluster.ts";
import { assertPortsFree, HOST, waitFor } from "./ports.ts";
import { spawnTracked, stopProcess } from "./processes.ts";
import type { TenureBuild } from "./tenure_build.ts";

export type TenureLayout = "three" | "witness";

export interface TenureClusterOptions {
  readonly build: TenureBuild;
  readonly layout: TenureLayout;
  /** Dev certificates for mutual TLS, or null for --insecure on every member. */
  readonly certs: DevCertificates | null;
  readonly basePort: number;
  /** --metrics-listen on every member (port basePort + 201 + i), each scraped once a second. */
  readonly metrics?: boolean;
}

const SCRAPE_INTERVAL_MS = 1_000;

/**
 * Extra node flags for every member from BENCH_NODE_ARGS (space-separated), for profiling a run:
 * BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (node refuses --cpu-prof in NODE_OPTIONS).
 */
function nodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a.length > 0);
}

/** The client identity the bench's certificate names (the owner of its leases and locks). */
export const BENCH_CLIENT_IDENTITY = "bench";
export const TENURE_MEMBER_IDS: Readonly<Record<TenureLayout, readonly string[]>> = { three: ["a", "b", "c"], witness: ["a", "b", "w"] };
const START_TIMEOUT_MS = 30_000;

interface Spec extends BenchMember {
  readonly peerAddress: string;
}

/** The bench client's side of a Tenure port (or the floor server's): its certificate, or plaintext. */
export function benchClientSecurity(certs: DevCertificates | null): TransportSecurity {
  if (certs === null) return { insecure: true };
  const own = certs.clients[BENCH_CLIENT_IDENTITY];
  if (!own) throw new Error(`no client certificate for ${BENCH_CLIENT_IDENTITY}`);
  return { tls: { caFile: certs.caFile, certFile: own.certFile, keyFile: own.keyFile } };
}

export class TenureCluster implements BenchCluster {
  readonly system = "tenure" as const;
  private readonly children = new Map<string, ChildProcess>();
  private readonly tails = new Map<string, OutputTail>();
  private readonly root = mkdtempSync(join(tmpdir(), "tenure-bench-"));
  private readonly removeRoot = registerCleanup(() => rmSync(this.root, { recursive: true, force: true }));
  private probe: TestClient | null = null;
  private scraper: NodeJS.Timeout | null = null;
  /** Scrapes that answered 200 (a run with metrics reports it, so a silent failure shows). */
  scrapesOk = 0;

  private constructor(
    private readonly o: TenureClusterOptions,
    private readonly specs: readonly Spec[],
  ) {}

  get members(): readonly BenchMember[] {
    return this.specs;
  }

  static async start(o: TenureClusterOptions): Promise<TenureCluster> {
    const ids = TENURE_MEMBER_IDS[o.layout];
    const specs = ids.map((id, i) => ({
      id,
      role: id === "w" ? ("witness" as const) : ("voter" as const),
      clientAddress: `${HOST}:${o.basePort + 1 + i}`,
      peerAddress: `${HOST}:${o.basePort + 101 + i}`,
    }));
    await assertPortsFree(specs.flatMap((s) => [Number(s.clientAddress.split(":")[1]), Number(s.peerAddress.split(":")[1])]));
    const cluster = new TenureCluster(o, specs);
    try {
      await Promise.all(specs.map((s) => cluster.startMember(s, true)));
      await cluster.leaderId(START_TIMEOUT_MS);
      if (o.metrics === true) cluster.startScraping();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  /** How a client connects: the bench's client certificate, or plaintext. */
  security(): TransportSecurity {
    return benchClientSecurity(this.o.certs);
  }

  get tls(): boolean {
    return this.o.certs !== null;
  }

  voterAddresses(): string[] {
    return this.specs.filter((s) => s.role === "voter").map((s) => s.clientAddress);
  }

  pid(id: string): number | undefined {
    return this.children.get(id)?.pid;
  }

  async leaderId(timeoutMs: number): Promise<string> {
    this.probe ??= new TestClient(this.voterAddresses(), this.security());
    const probe = this.probe;
    let leader = "";
    await waitFor("a Tenure leader", timeoutMs, async () => {
      const r = await probe.call<Record<string, unknown>>("Cluster", "Status", {}, 1000);
      leader = r.ok ? String(r.value["leaderId"] ?? "") : "";
      return leader !== "" && this.children.has(leader);
    });
    return leader;
  }

  leaderAddress(id: string): string {
    const s = this.specs.find((x) => x.id === id);
    if (!s) throw new Error(`no member ${id}`);
    return s.clientAddress;
  }

  async kill9(id: string): Promise<void> {
    const child = this.children.get(id);
    if (child) await stopProcess(child, "SIGKILL");
    this.children.delete(id);
  }

  async restart(id: string): Promise<void> {
    const s = this.specs.find((x) => x.id === id);
    if (!s) throw new Error(`no member ${id}`);
    await this.startMember(s, false);
  }

  /** As Prometheus would: GET /metrics of every member once a second, the body read and dropped. */
  private startScraping(): void {
    const urls = this.specs.map((_, i) => `http://${HOST}:${this.o.basePort + 201 + i}/metrics`);
    this.scraper = setInterval(() => {
      for (const url of urls) {
        fetch(url, { signal: AbortSignal.timeout(SCRAPE_INTERVAL_MS) })
          .then(async (r) => {
            await r.text();
            if (r.ok) this.scrapesOk += 1;
          })
          .catch(() => {});
      }
    }, SCRAPE_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    if (this.scraper !== null) {
      clearInterval(this.scraper);
      // A metrics column whose scrapes all failed would measure nothing: say how many answered.
      process.stderr.write(`bench: metrics column: ${this.scrapesOk} scrapes answered 200\n`);
    }
    this.scraper = null;
    this.probe?.close();
    this.probe = null;
    await Promise.all([...this.children.values()].map((c) => stopProcess(c)));
    this.children.clear();
    this.removeRoot();
  }

  private args(s: Spec, bootstrap: boolean): string[] {
    const certs = this.o.certs;
    const own = certs?.members[s.id];
    const security =
      certs === null ? ["--insecure"] : ["--tls-ca", certs.caFile, "--tls-cert", own?.certFile ?? "", "--tls-key", own?.keyFile ?? ""];
    const witnesses = this.specs.filter((x) => x.role === "witness").map((x) => x.id);
    return [
      ...nodeArgs(),
      // The witness as deploy/ runs it, with its heap flags.
      ...(s.role === "witness" ? [...WITNESS_NODE_FLAGS, this.o.build.witness] : [this.o.build.tenured]),
      ...["--id", s.id, "--cluster-id", "bench", "--data-dir", join(this.root, s.id)],
      ...["--peer-listen", s.peerAddress, "--client-listen", s.clientAddress],
      ...["--members", this.specs.map((x) => `${x.id}=${x.peerAddress}/${x.clientAddress}`).join(",")],
      ...(witnesses.length > 0 ? ["--witnesses", witnesses.join(",")] : []),
      ...(bootstrap ? ["--bootstrap"] : []),
      ...(this.o.metrics === true ? ["--metrics-listen", `${HOST}:${this.o.basePort + 201 + this.specs.indexOf(s)}`] : []),
      ...security,
    ];
  }

  /** Starts one member; resolves when it logs "started", rejects if it exits or stalls first. */
  private startMember(s: Spec, bootstrap: boolean): Promise<void> {
    const child = spawnTracked(process.execPath, this.args(s, bootstrap));
    this.children.set(s.id, child);
    const tail = this.tails.get(s.id) ?? new OutputTail();
    this.tails.set(s.id, tail);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`tenure ${s.id} did not start in ${START_TIMEOUT_MS} ms: ${tail.text()}`)),
        START_TIMEOUT_MS,
      );
      for (const stream of [child.stdout, child.stderr]) {
        if (stream === null) continue;
        createInterface({ input: stream }).on("line", (line) => {
          tail.push(line);
          if (!line.includes('"event":"started"')) return;
          clearTimeout(timer);
          resolve();
        });
      }
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        if (this.children.get(s.id) === child) this.children.delete(s.id);
        reject(new Error(`tenure ${s.id} exited (code ${code}, signal ${signal}): ${tail.text()}`));
      });
    });
  }
}
