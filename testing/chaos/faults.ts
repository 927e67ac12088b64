// The cluster under test and its faults: three tenured voters (or two voters + a tenure-witness)
// started by ProcessCluster in test mode (each with its own test clock file), every directed peer
// link through its own TcpProxy. Faults on one member: kill -9 and restart, SIGSTOP/SIGCONT,
// partition (every link in and out cut), one-way loss (only its outgoing or only its incoming
// links cut), added delay on its links, dropped connections (reset every few hundred ms), clock
// skew (wall-clock offset) with rate error (monotonic rate within the cluster's rho), and a
// membership change (remove it and add it back) while another fault runs on another member.
// Every fault is undone in `finally`, and healAll() resumes, heals, restarts, resets clocks and
// restores the membership.
//
// Transport: mutual TLS on both ports (ProcessCluster's default: the run's dev CA, a certificate
// per member, one for the harness's clients); the fault proxies are TCP and carry TLS unchanged,
// so a reset or a cut link costs a new handshake as it would in production. `insecure` runs the
// same on plaintext, for comparison.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "../itest/process_cluster.ts";
import { TcpProxy } from "../itest/tcp_proxy.ts";
import type { TestClient } from "../itest/test_client.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import type { SeededRandom } from "../../server/core/random.ts";

export type Topology = "three" | "witness";
export const MEMBER_FAULTS = ["kill", "pause", "partition", "one-way", "delay", "reset", "clock", "membership"] as const;
export type MemberFault = (typeof MEMBER_FAULTS)[number];

type Obj = Record<string, unknown>;
export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

export interface ChaosClusterOptions {
  readonly tickMs?: number;
  /** The servers' clock-rate bound; clock faults stay within 0.8 of it (in the model). */
  readonly rho?: number;
  /** Test-only broken modes (server --test-bugs), to show the checkers catch them. */
  readonly bugs?: readonly string[];
  /** Runs every member's clock this much fast (beyond rho: out of the model) for the whole run. */
  readonly clockRateOutOfModel?: number;
  /** Plaintext (--insecure) instead of mutual TLS, to compare. */
  readonly insecure?: boolean;
}

/** What a clock fault sets on a member (server/test_mode/test_clock.ts file format). */
export interface ClockSetting {
  readonly wallOffsetMs: number;
  readonly monotonicRate: number;
}

export class ChaosCluster {
  private readonly paused = new Set<string>();
  private readonly down = new Set<string>();
  private readonly removed = new Set<string>();
  private readonly status: TestClient;

  private constructor(
    readonly cluster: ProcessCluster,
    readonly ids: readonly string[],
    readonly witnesses: readonly string[],
    private readonly proxies: Map<string, TcpProxy>,
    readonly rho: number,
    private readonly baseRate: number,
  ) {
    // Membership changes need admin; the workload's clients are a plain identity.
    this.status = cluster.testClient(cluster.endpoints(), ADMIN_CLIENT_IDENTITY);
  }

  static async start(topology: Topology, o: ChaosClusterOptions = {}): Promise<ChaosCluster> {
    const ids = topology === "witness" ? ["a", "b", "w"] : ["a", "b", "c"];
    const witnesses = topology === "witness" ? ["w"] : [];
    const rho = o.rho ?? 0.05;
    const proxies = new Map<string, TcpProxy>();
    const cluster = await ProcessCluster.create({
      ids,
      witnesses,
      insecure: o.insecure === true,
      peerRoute: (from, to) => proxies.get(`${from}->${to.id}`)?.address ?? to.peerAddress,
      tickMs: o.tickMs ?? 20,
      electionTimeoutTicks: 10,
      extraFlags: ["--test-mode", "--rho", String(rho), ...(o.bugs && o.bugs.length > 0 ? ["--test-bugs", o.bugs.join(",")] : [])],
      perMemberFlags: (id, root) => {
        const file = join(root, `${id}.clock.json`);
        if (!existsSync(file)) writeFileSync(file, JSON.stringify({ wallOffsetMs: 0, monotonicRate: o.clockRateOutOfModel ?? 1 }));
        return ["--test-clock-file", file];
      },
    });
    try {
      // Each directed link's proxy goes straight to the member's own peer port (no second hop).
      for (const from of ids) {
        for (const to of ids) if (to !== from) proxies.set(`${from}->${to}`, await TcpProxy.start(() => cluster.peerTarget(to)));
      }
      await cluster.startAll();
      return new ChaosCluster(cluster, ids, witnesses, proxies, rho, o.clockRateOutOfModel ?? 1);
    } catch (e) {
      await cluster.stopAll();
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw e;
    }
  }

  /** How the harness's clients (in this process or the client process) reach the members. */
  clientSecurity(): TransportSecurity {
    return this.cluster.clientSecurity();
  }

  /** Client endpoints of the full members (a witness serves no clients). */
  clientEndpoints(): string[] {
    return this.cluster.members.filter((m) => !this.witnesses.includes(m.id)).map((m) => m.clientAddress);
  }

  /** The member that says it leads, among those running, or null. */
  async leader(): Promise<string | null> {
    for (const m of this.cluster.members) {
      if (this.paused.has(m.id) || this.down.has(m.id)) continue;
      const r = await this.status.callAt<Obj>(m.clientAddress, "Cluster", "Status", {}, 500);
      if (r.ok && r.value["role"] === "leader" && !this.removed.has(m.id)) return m.id;
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

  private linksOf(id: string, which: "in" | "out" | "both"): TcpProxy[] {
    const out: TcpProxy[] = [];
    for (const other of this.ids) {
      if (other === id) continue;
      if (which !== "in") out.push(this.link(id, other));
      if (which !== "out") out.push(this.link(other, id));
    }
    return out;
  }

  /** Injects one fault on `id` for `holdMs`, then undoes it (always, in finally). `rng` draws
   *  the fault's own parameters; the description says what was done, for the log. */
  async inject(kind: MemberFault, id: string, holdMs: number, rng: SeededRandom, log: (l: string) => void): Promise<void> {
    switch (kind) {
      case "kill":
        this.down.add(id);
        try {
          await this.cluster.kill9(id);
          await sleep(holdMs);
        } finally {
          await this.restart(id);
        }
        return;
      case "pause": {
        const pid = this.cluster.processes.get(id)?.pid;
        if (pid === undefined) return;
        this.paused.add(id);
        try {
          process.kill(pid, "SIGSTOP");
          await sleep(holdMs);
        } finally {
          this.resume(id, pid);
        }
        return;
      }
      case "partition":
      case "one-way": {
        const which = kind === "partition" ? "both" : rng.nextInt(2) === 0 ? "out" : "in";
        if (kind === "one-way") log(`  one-way: ${id}'s ${which === "out" ? "outgoing" : "incoming"} links lose everything`);
        const links = this.linksOf(id, which);
        try {
          for (const p of links) p.cut();
          await sleep(holdMs);
        } finally {
          for (const p of links) p.heal();
        }
        return;
      }
      case "delay": {
        const delayMs = 20 + rng.nextInt(230);
        log(`  delay: ${delayMs} ms on every link of ${id}`);
        const links = this.linksOf(id, "both");
        try {
          for (const p of links) p.setDelayMs(delayMs);
          await sleep(holdMs);
        } finally {
          for (const p of links) p.setDelayMs(0);
        }
        return;
      }
      case "reset": {
        const links = this.linksOf(id, "both");
        const until = performance.now() + holdMs;
        let resets = 0;
        while (performance.now() < until) {
          for (const p of links) p.resetConnections();
          resets++;
          await sleep(100 + rng.nextInt(300));
        }
        log(`  reset: ${resets} times`);
        return;
      }
      case "clock": {
        const sign = rng.nextInt(2) === 0 ? -1 : 1;
        const setting: ClockSetting = {
          wallOffsetMs: sign * (1000 + rng.nextInt(3_600_000)),
          // Rate error inside the model: |rate - 1| <= 0.8 rho.
          monotonicRate: this.baseRate * (1 + (rng.nextFloat() * 2 - 1) * 0.8 * this.rho),
        };
        log(
          `  clock: ${id} wall ${setting.wallOffsetMs > 0 ? "+" : ""}${setting.wallOffsetMs} ms, rate ${setting.monotonicRate.toFixed(4)}`,
        );
        try {
          this.setClock(id, setting);
          await sleep(holdMs);
        } finally {
          this.setClock(id, { wallOffsetMs: 0, monotonicRate: this.baseRate });
        }
        return;
      }
      case "membership":
        await this.membershipChange(id, holdMs, rng, log);
        return;
    }
  }

  /** Removes `id` and adds it back while another fault (drawn from rng) runs on another member. */
  private async membershipChange(id: string, holdMs: number, rng: SeededRandom, log: (l: string) => void): Promise<void> {
    const others = this.ids.filter((x) => x !== id);
    const other = others[rng.nextInt(others.length)] ?? id;
    const secondaryKinds: MemberFault[] = ["pause", "partition", "delay", "reset", "kill", "clock"];
    const secondary = secondaryKinds[rng.nextInt(secondaryKinds.length)] ?? "delay";
    log(`  membership: remove ${id} and add it back, during ${secondary} of ${other}`);
    const during = this.inject(secondary, other, holdMs, rng.fork(), log);
    try {
      const removed = await this.status.call<Obj>("Cluster", "RemoveMember", { nodeId: id }, 3000);
      log(`  membership: remove ${id}: ${removed.ok ? "ok" : `${removed.reason || removed.code} ${removed.details}`}`);
      if (removed.ok) this.removed.add(id);
      await sleep(200 + rng.nextInt(800));
      const added = await this.status.call<Obj>("Cluster", "AddMember", { nodeId: id, witness: this.witnesses.includes(id) }, 3000);
      log(`  membership: add ${id}: ${added.ok ? "ok" : `${added.reason || added.code} ${added.details}`}`);
    } finally {
      await during;
    }
    await this.restoreMembership(10_000, log);
  }

  /** Every member back in the configuration as a voter, with no joint configuration left.
   *  Returns false if that did not happen within the budget (the caller decides what it means). */
  async restoreMembership(budgetMs: number, log: (l: string) => void): Promise<boolean> {
    const deadline = performance.now() + budgetMs;
    while (performance.now() < deadline) {
      const s = await this.status.call<Obj>("Cluster", "Status", {}, 2000);
      const cs = s.ok ? (s.value["confState"] as { voters?: string[]; votersOutgoing?: string[] } | undefined) : undefined;
      const voters = cs?.voters ?? [];
      const joint = (cs?.votersOutgoing ?? []).length > 0;
      const missing = this.ids.filter((x) => !voters.includes(x));
      if (s.ok && !joint && missing.length === 0) {
        this.removed.clear();
        return true;
      }
      for (const id of missing) {
        const r = await this.status.call<Obj>("Cluster", "AddMember", { nodeId: id, witness: this.witnesses.includes(id) }, 3000);
        if (!r.ok) log(`  membership: re-add ${id}: ${r.reason || r.code} ${r.details}`);
      }
      await sleep(200);
    }
    return false;
  }

  private setClock(id: string, setting: ClockSetting): void {
    writeFileSync(join(this.cluster.root, `${id}.clock.json`), JSON.stringify(setting));
    const pid = this.cluster.processes.get(id)?.pid;
    if (pid === undefined) return; // read again at its restart
    try {
      process.kill(pid, "SIGUSR2");
    } catch {
      // exited meanwhile: the restart reads the file
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

  /** Resumes every paused member, heals every link, resets clocks, restarts every member that is
   *  down and restores the membership. */
  async healAll(log: (l: string) => void = () => undefined): Promise<boolean> {
    for (const id of [...this.paused]) {
      const pid = this.cluster.processes.get(id)?.pid;
      if (pid !== undefined) this.resume(id, pid);
      this.paused.delete(id);
    }
    for (const p of this.proxies.values()) {
      p.heal();
      p.setDelayMs(0);
    }
    for (const id of this.ids) this.setClock(id, { wallOffsetMs: 0, monotonicRate: this.baseRate });
    for (const id of this.ids) if (!this.cluster.processes.has(id)) await this.restart(id);
    return this.restoreMembership(20_000, log);
  }

  async stop(keepData: boolean): Promise<void> {
    for (const id of [...this.paused]) {
      const pid = this.cluster.processes.get(id)?.pid;
      if (pid !== undefined) this.resume(id, pid);
    }
    this.status.close();
    await this.cluster.stopAll({ removeData: !keepData });
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }
}
