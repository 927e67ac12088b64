// Real tenured processes on 127.0.0.1 for integration tests: free ports, one data directory per
// member under a temp root, kill -9, graceful stop, restart from disk. Every process started is
// stopped by pid in stopAll(). Witness members run tenure-witness (witness/main.ts), and each
// directed peer link can be routed through its own address (a TcpProxy) to partition it.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const mainScript = new URL("../../server/main.ts", import.meta.url).pathname;
const witnessScript = new URL("../../witness/main.ts", import.meta.url).pathname;

export interface Member {
  readonly id: string;
  readonly clientAddress: string;
  readonly peerAddress: string;
}

export interface ClusterOptions {
  readonly ids?: readonly string[];
  readonly tickMs?: number;
  readonly electionTimeoutTicks?: number;
  readonly lockDelayMs?: number;
  readonly extraFlags?: readonly string[];
  /** Members that run tenure-witness; every member gets --witnesses with them. */
  readonly witnesses?: readonly string[];
  /** Addresses chosen beforehand (ProcessCluster.allocate), e.g. to put proxies in front. */
  readonly members?: readonly Member[];
  /** The peer address `from` dials to reach `to` (default to.peerAddress): a per-link proxy. */
  readonly peerRoute?: (from: string, to: Member) => string;
  /** Flags for one member only (e.g. its own test clock file); `root` is the cluster's temp root. */
  readonly perMemberFlags?: (id: string, root: string) => readonly string[];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      const port = typeof address === "object" && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export class ProcessCluster {
  readonly root = mkdtempSync(join(tmpdir(), "tenure-itest-"));
  readonly processes = new Map<string, ChildProcess>();
  readonly logs = new Map<string, string[]>();
  private constructor(readonly members: readonly Member[], private readonly options: ClusterOptions) {}

  /** Free client and peer ports on 127.0.0.1 for each id. */
  static async allocate(ids: readonly string[]): Promise<Member[]> {
    const members: Member[] = [];
    for (const id of ids) {
      members.push({ id, clientAddress: `127.0.0.1:${await freePort()}`, peerAddress: `127.0.0.1:${await freePort()}` });
    }
    return members;
  }

  static async start(options: ClusterOptions = {}): Promise<ProcessCluster> {
    const members = options.members ?? (await ProcessCluster.allocate(options.ids ?? ["a", "b", "c"]));
    const cluster = new ProcessCluster(members, options);
    await Promise.all(members.map((m) => cluster.startMember(m.id, { bootstrap: true })));
    return cluster;
  }

  endpoints(): string[] {
    return this.members.map((m) => m.clientAddress);
  }

  member(id: string): Member {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  dataDir(id: string): string {
    return join(this.root, id);
  }

  /** Starts a member and resolves once it logs "started" (rejects if it exits first). */
  startMember(id: string, opts: { bootstrap: boolean }): Promise<void> {
    const m = this.member(id);
    const o = this.options;
    const witnesses = o.witnesses ?? [];
    const route = (x: Member): string => (x.id === id || !o.peerRoute ? x.peerAddress : o.peerRoute(id, x));
    const args = [
      "--import", "tsx", witnesses.includes(id) ? witnessScript : mainScript,
      "--id", id, "--cluster-id", "itest", "--data-dir", this.dataDir(id),
      "--peer-listen", m.peerAddress, "--client-listen", m.clientAddress,
      "--members", this.members.map((x) => `${x.id}=${route(x)}/${x.clientAddress}`).join(","),
      ...(witnesses.length > 0 ? ["--witnesses", witnesses.join(",")] : []),
      "--tick-ms", String(o.tickMs ?? 20),
      "--election-timeout-ticks", String(o.electionTimeoutTicks ?? 10),
      "--lock-delay-ms", String(o.lockDelayMs ?? 500),
      ...(opts.bootstrap ? ["--bootstrap"] : []),
      ...(o.extraFlags ?? []),
      ...(o.perMemberFlags?.(id, this.root) ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.processes.set(id, child);
    const lines: string[] = [];
    this.logs.set(id, lines);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id} did not start: ${lines.slice(-5).join(" | ")}`)), 30_000);
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on("line", (line) => {
          if (lines.length < 5000) lines.push(line);
          if (line.includes('"event":"started"')) {
            clearTimeout(timer);
            resolve();
          }
        });
      }
      child.once("exit", (code) => {
        clearTimeout(timer);
        if (this.processes.get(id) === child) this.processes.delete(id);
        reject(new Error(`${id} exited with ${code}: ${lines.slice(-5).join(" | ")}`));
      });
    });
  }

  /** kill -9: no shutdown, no flush beyond what SQLite already made durable. */
  async kill9(id: string): Promise<void> {
    await this.signal(id, "SIGKILL");
  }

  async stop(id: string): Promise<void> {
    await this.signal(id, "SIGTERM");
  }

  private async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.processes.get(id);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await exited;
    this.processes.delete(id);
  }

  async stopAll(options: { removeData: boolean } = { removeData: true }): Promise<void> {
    await Promise.all([...this.processes.keys()].map((id) => this.stop(id)));
    if (options.removeData) rmSync(this.root, { recursive: true, force: true });
  }
}
