// A three-member etcd cluster on 127.0.0.1 as the baseline ran it (shared/research/etcd-baseline.md):
// client ports 23791-23793, peer ports 23801-23803, plaintext, etcd's defaults otherwise (fsync
// on, heartbeat 100 ms, election 1000 ms), a fresh data directory per cluster, removed by stop().

import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { registerCleanup } from "./cleanup.ts";
import { type BenchCluster, type BenchMember, OutputTail } from "./cluster.ts";
import { EtcdConnection } from "./etcd_client.ts";
import { assertPortsFree, HOST, waitFor } from "./ports.ts";
import { spawnTracked, stopProcess } from "./processes.ts";

const CLIENT_PORT_BASE = 23790;
const PEER_PORT_BASE = 23800;
const IDS = ["n1", "n2", "n3"] as const;
const START_TIMEOUT_MS = 30_000;

export class EtcdCluster implements BenchCluster {
  readonly system = "etcd" as const;
  readonly members: readonly BenchMember[] = IDS.map((id, i) => ({
    id,
    role: "voter",
    clientAddress: `${HOST}:${CLIENT_PORT_BASE + 1 + i}`,
  }));
  private readonly children = new Map<string, ChildProcess>();
  private readonly tails = new Map<string, OutputTail>();
  private readonly probes = new Map<string, EtcdConnection>();
  private readonly root = mkdtempSync(join(tmpdir(), "etcd-bench-"));
  private readonly removeRoot = registerCleanup(() => rmSync(this.root, { recursive: true, force: true }));

  private constructor(private readonly binary: string) {}

  static async start(binary: string): Promise<EtcdCluster> {
    await assertPortsFree(IDS.flatMap((_, i) => [CLIENT_PORT_BASE + 1 + i, PEER_PORT_BASE + 1 + i]));
    const cluster = new EtcdCluster(binary);
    try {
      for (const m of cluster.members) cluster.spawnMember(m.id, "new");
      await cluster.leaderId(START_TIMEOUT_MS);
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  pid(id: string): number | undefined {
    return this.children.get(id)?.pid;
  }

  private probe(id: string): EtcdConnection {
    let p = this.probes.get(id);
    if (!p) {
      p = new EtcdConnection(this.address(id));
      this.probes.set(id, p);
    }
    return p;
  }

  address(id: string): string {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no etcd member ${id}`);
    return m.clientAddress;
  }

  /** The leader as the running members report it (Maintenance.Status: member ids to names). */
  async leaderId(timeoutMs: number): Promise<string> {
    let leader = "";
    await waitFor("an etcd leader", timeoutMs, async () => {
      const up = this.members.filter((m) => this.children.has(m.id));
      const statuses = await Promise.all(
        up.map(async (m) => ({
          id: m.id,
          s: await this.probe(m.id)
            .status()
            .catch(() => null),
        })),
      );
      const byMemberId = new Map(statuses.flatMap((x) => (x.s ? [[x.s.memberId, x.id] as const] : [])));
      const named = statuses.map((x) => (x.s ? byMemberId.get(x.s.leader) : undefined)).find((x) => x !== undefined);
      leader = named ?? "";
      return leader !== "";
    });
    return leader;
  }

  async kill9(id: string): Promise<void> {
    const child = this.children.get(id);
    if (child) await stopProcess(child, "SIGKILL");
    this.children.delete(id);
  }

  async restart(id: string): Promise<void> {
    this.spawnMember(id, "existing");
    await waitFor(`etcd ${id} to answer`, START_TIMEOUT_MS, async () => (await this.probe(id).status()).leader !== "0");
  }

  async stop(): Promise<void> {
    for (const p of this.probes.values()) p.close();
    this.probes.clear();
    await Promise.all([...this.children.values()].map((c) => stopProcess(c)));
    this.children.clear();
    this.removeRoot();
  }

  private spawnMember(id: string, state: "new" | "existing"): void {
    const i = IDS.indexOf(id as (typeof IDS)[number]);
    const client = `http://${HOST}:${CLIENT_PORT_BASE + 1 + i}`;
    const peer = `http://${HOST}:${PEER_PORT_BASE + 1 + i}`;
    const args = [
      ...["--name", id, "--data-dir", join(this.root, id)],
      ...["--listen-client-urls", client, "--advertise-client-urls", client],
      ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
      ...["--initial-cluster", IDS.map((x, j) => `${x}=http://${HOST}:${PEER_PORT_BASE + 1 + j}`).join(",")],
      ...["--initial-cluster-state", state, "--initial-cluster-token", "tenure-bench"],
      ...["--log-level", "warn", "--logger", "zap"],
    ];
    const child = spawnTracked(this.binary, args);
    this.children.set(id, child);
    const tail = this.tails.get(id) ?? new OutputTail();
    this.tails.set(id, tail);
    for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on("line", (l) => tail.push(l));
    child.once("exit", () => {
      if (this.children.get(id) === child) this.children.delete(id);
    });
  }
}
