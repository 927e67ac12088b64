// The cluster under test and its faults: three tenured voters (or two voters + a tenure-witness)
// started by ProcessCluster, every directed peer link through its own TcpProxy. Faults: kill -9
// and restart, SIGSTOP/SIGCONT, partition (cut every proxy into and out of one member). Every
// fault is undone in `finally`, and healAll() resumes, heals and restarts whatever is left.

import { performance } from "node:perf_hooks";
import { ProcessCluster, type Member } from "../itest/process_cluster.ts";
import { TcpProxy } from "../itest/tcp_proxy.ts";
import { TestClient } from "../itest/test_client.ts";

export type Topology = "three" | "witness";
export type FaultKind = "kill" | "pause" | "partition";

type Obj = Record<string, unknown>;
export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

export class ChaosCluster {
  private readonly paused = new Set<string>();
  private readonly down = new Set<string>();
  private readonly status: TestClient;

  private constructor(
    readonly cluster: ProcessCluster,
    readonly ids: readonly string[],
    private readonly proxies: Map<string, TcpProxy>,
  ) {
    this.status = new TestClient(cluster.endpoints());
  }

  static async start(topology: Topology, tickMs = 20): Promise<ChaosCluster> {
    const ids = topology === "witness" ? ["a", "b", "w"] : ["a", "b", "c"];
    const members: Member[] = await ProcessCluster.allocate(ids);
    const proxies = new Map<string, TcpProxy>();
    try {
      for (const from of ids) {
        for (const to of members) if (to.id !== from) proxies.set(`${from}->${to.id}`, await TcpProxy.start(to.peerAddress));
      }
      const cluster = await ProcessCluster.start({
        members,
        ...(topology === "witness" ? { witnesses: ["w"] } : {}),
        peerRoute: (from, to) => proxies.get(`${from}->${to.id}`)?.address ?? to.peerAddress,
        tickMs,
        electionTimeoutTicks: 10,
      });
      return new ChaosCluster(cluster, ids, proxies);
    } catch (e) {
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw e;
    }
  }

  /** Client endpoints of the voters (a witness serves no clients). */
  clientEndpoints(): string[] {
    return this.cluster.members.filter((m) => m.id !== "w").map((m) => m.clientAddress);
  }

  /** The member every reachable member agrees leads, or null. */
  async leader(): Promise<string | null> {
    for (const m of this.cluster.members) {
      if (this.paused.has(m.id) || this.down.has(m.id)) continue;
      const r = await this.status.callAt<Obj>(m.clientAddress, "Cluster", "Status", {}, 500);
      if (r.ok && r.value["role"] === "leader") return m.id;
    }
    return null;
  }

  async waitLeader(budgetMs: number): Promise<string | null> {
    const deadline = performance.now() + budgetMs;
    while (performance.now() < deadline) {
      const l = await this.leader();
      if (l !== null) return l;
      await sleep(50);
    }
    return null;
  }

  private link(from: string, to: string): TcpProxy {
    const p = this.proxies.get(`${from}->${to}`);
    if (!p) throw new Error(`no proxy ${from}->${to}`);
    return p;
  }

  /** Injects one fault on `id` for `holdMs`, then undoes it (always, in finally). */
  async inject(kind: FaultKind, id: string, holdMs: number): Promise<void> {
    if (kind === "kill") {
      this.down.add(id);
      try {
        await this.cluster.kill9(id);
        await sleep(holdMs);
      } finally {
        await this.restart(id);
      }
    } else if (kind === "pause") {
      const pid = this.cluster.processes.get(id)?.pid;
      if (pid === undefined) return;
      this.paused.add(id);
      try {
        process.kill(pid, "SIGSTOP");
        await sleep(holdMs);
      } finally {
        this.resume(id, pid);
      }
    } else {
      try {
        this.setCut(id, true);
        await sleep(holdMs);
      } finally {
        this.setCut(id, false);
      }
    }
  }

  private setCut(id: string, cut: boolean): void {
    for (const other of this.ids) {
      if (other === id) continue;
      for (const p of [this.link(id, other), this.link(other, id)]) cut ? p.cut() : p.heal();
    }
  }

  private resume(id: string, pid: number): void {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // already gone
    }
    this.paused.delete(id);
  }

  private async restart(id: string): Promise<void> {
    if (!this.cluster.processes.has(id)) await this.cluster.startMember(id, { bootstrap: false });
    this.down.delete(id);
  }

  /** Resumes every paused member, heals every link and restarts every member that is down. */
  async healAll(): Promise<void> {
    for (const id of [...this.paused]) {
      const pid = this.cluster.processes.get(id)?.pid;
      if (pid !== undefined) this.resume(id, pid);
      this.paused.delete(id);
    }
    for (const p of this.proxies.values()) p.heal();
    for (const id of this.ids) if (!this.cluster.processes.has(id)) await this.restart(id);
  }

  async stop(keepData: boolean): Promise<void> {
    await this.healAll().catch(() => undefined);
    this.status.close();
    await this.cluster.stopAll({ removeData: !keepData });
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }
}
