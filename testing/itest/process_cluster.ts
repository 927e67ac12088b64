// Real tenured processes on 127.0.0.1 for integration tests: one data directory per member under
// a temp root, kill -9, graceful stop, restart from disk. Every process started is stopped by pid
// in stopAll(). Witness members run tenure-witness (witness/main.ts), and each directed peer link
// can be routed through its own address (a TcpProxy) to partition it.
//
// Ports without a race: no port number is ever picked, released and handed on. Each member gets
// two TcpProxy listeners (client and peer) bound to port 0 and held for the cluster's life; their
// addresses are the member's addresses in every --members list, in endpoints() and in leader
// hints, and they stay the same across restarts. The member process itself listens on
// 127.0.0.1:0 for both and reports what it bound in its {"event":"started"} line; the two
// proxies forward there. A connection that arrives while the member starts waits for that line;
// one that arrives while it is down is refused (accepted and closed at once).
//
// Transport security: mutual TLS on both ports by default, every member with the process's dev
// CA (test_certs.ts) and its own certificate (CN and SANs = its id, IP:127.0.0.1), clients with
// a client certificate of the same CA. The proxies carry TLS unchanged (they are TCP). A test
// that needs plaintext sets `insecure` and says why.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { TlsOptions, TransportSecurity } from "../../client-sdk/tls.ts";
import { TICK_MS_DEFAULT } from "../../server/config.ts";
import type { DevCertificates } from "../../tools/dev_certs.ts";
import { serverArgs } from "./server_command.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { TestClient } from "./test_client.ts";
import { ADMIN_CLIENT_IDENTITY, clientTlsOf, DEFAULT_CLIENT_IDENTITY, testCertificates } from "./test_certs.ts";

export { ADMIN_CLIENT_IDENTITY, DEFAULT_CLIENT_IDENTITY };

export interface Member {
  readonly id: string;
  /** The member's client address for the cluster's life (a proxy to its current process). */
  readonly clientAddress: string;
  /** The member's peer address for the cluster's life (a proxy to its current process). */
  readonly peerAddress: string;
}

/** What a running member process bound itself (port 0), from its "started" line. */
export interface BoundAddresses {
  readonly clientAddress: string;
  readonly peerAddress: string;
}

export interface ClusterOptions {
  readonly ids?: readonly string[];
  /** --cluster-id of every member (default "itest"); a cluster restored from a backup needs a new one. */
  readonly clusterId?: string;
  /** --tick-ms; default tenured's own (TICK_MS_DEFAULT, 50 ms). An idle member's CPU grows with
   *  its tick rate (ticks and heartbeats), and a run of the suite keeps a dozen members alive at
   *  once: at 20 ms an idle cluster of three took about 0.15 of a core, at 50 ms half that. Tests
   *  that need faster elections set it. */
  readonly tickMs?: number;
  readonly electionTimeoutTicks?: number;
  readonly lockDelayMs?: number;
  readonly extraFlags?: readonly string[];
  /** Members that run tenure-witness; every member gets --witnesses with them. */
  readonly witnesses?: readonly string[];
  /** The peer address `from` dials to reach `to` (default to.peerAddress): a per-link proxy
   *  whose target is `cluster.peerTarget(to.id)` (see ProcessCluster.create). */
  readonly peerRoute?: (from: string, to: Member) => string;
  /** Flags for one member only (e.g. its own test clock file); `root` is the cluster's temp root. */
  readonly perMemberFlags?: (id: string, root: string) => readonly string[];
  /** Plaintext on both ports (--insecure on every member) instead of mutual TLS. Only for a test
   *  that is about plaintext or must not depend on TLS; the call site says why. */
  readonly insecure?: boolean;
  /** Client identities to issue certificates for, besides DEFAULT_CLIENT_IDENTITY and
   *  ADMIN_CLIENT_IDENTITY (auth tests). */
  readonly clientIdentities?: readonly string[];
  /** --admin-identities of every member (TLS only; default [ADMIN_CLIENT_IDENTITY]): membership
   *  changes, leadership transfer and other identities' leases need one of these. [] for none. */
  readonly adminIdentities?: readonly string[];
  /** Member ids to issue certificates for that are not members (a peer claiming an id outside
   *  the configuration, a member added later). */
  readonly extraMemberIds?: readonly string[];
  /** One member's TLS files instead of the defaults (the dev CA, its own certificate): a
   *  certificate of another member or another CA, for peer-identity tests. Fields left out keep
   *  their default. Read at every start of the member. */
  readonly memberTls?: (id: string, certs: DevCertificates) => Partial<MemberTlsFiles> | undefined;
}

/** The three files a member's --tls-ca, --tls-cert and --tls-key name. */
export interface MemberTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

const START_TIMEOUT_MS = 30_000;

/** Where a member's traffic goes now: its bound addresses, a start in progress, or down. */
type MemberState =
  | { readonly kind: "up"; readonly bound: BoundAddresses }
  | { readonly kind: "starting"; readonly started: Promise<BoundAddresses | null> }
  | { readonly kind: "down" };

export class ProcessCluster {
  readonly root = mkdtempSync(join(tmpdir(), "tenure-itest-"));
  readonly processes = new Map<string, ChildProcess>();
  readonly logs = new Map<string, string[]>();
  private readonly states = new Map<string, MemberState>();

  private constructor(
    readonly members: readonly Member[],
    private readonly fronts: readonly TcpProxy[],
    private readonly options: ClusterOptions,
    /** The run's dev certificates, or null for an --insecure cluster. */
    readonly certificates: DevCertificates | null,
  ) {}

  /** Binds every member's client and peer proxies (port 0, held until stopAll) and starts no
   *  process: put per-link proxies in front (peerRoute, targets from peerTarget()), then
   *  startAll(). */
  static async create(options: ClusterOptions = {}): Promise<ProcessCluster> {
    const ids = options.ids ?? ["a", "b", "c"];
    const certificates =
      options.insecure === true
        ? null
        : testCertificates({
            memberIds: [...ids, ...(options.extraMemberIds ?? [])],
            clientIdentities: options.clientIdentities ?? [],
          });
    let cluster: ProcessCluster | null = null;
    const fronts: TcpProxy[] = [];
    const members: Member[] = [];
    try {
      for (const id of ids) {
        const client = await TcpProxy.start(() => cluster?.target(id, "clientAddress") ?? null);
        fronts.push(client);
        const peer = await TcpProxy.start(() => cluster?.target(id, "peerAddress") ?? null);
        fronts.push(peer);
        members.push({ id, clientAddress: client.address, peerAddress: peer.address });
      }
    } catch (e) {
      await Promise.all(fronts.map((f) => f.close()));
      throw e;
    }
    cluster = new ProcessCluster(members, fronts, options, certificates);
    return cluster;
  }

  /** create(), then every member bootstraps; resolves once all have logged "started". */
  static async start(options: ClusterOptions = {}): Promise<ProcessCluster> {
    const cluster = await ProcessCluster.create(options);
    try {
      await cluster.startAll();
    } catch (e) {
      await cluster.stopAll();
      throw e;
    }
    return cluster;
  }

  /** Bootstraps every member (the first start of a new cluster). */
  async startAll(): Promise<void> {
    await Promise.all(this.members.map((m) => this.startMember(m.id, { bootstrap: true })));
  }

  /** Target for a proxy in front of `id`'s peer port (a partitionable link): what the member's
   *  current process bound, waiting while it starts, null while it is down. */
  peerTarget(id: string): string | null | Promise<string | null> {
    return this.target(id, "peerAddress");
  }

  /** The running process's own listeners (no proxy), or null while it is down or starting. For
   *  probes that measure; tests use the member's addresses, which outlive restarts. */
  bound(id: string): BoundAddresses | null {
    const s = this.states.get(id);
    return s?.kind === "up" ? s.bound : null;
  }

  private target(id: string, which: keyof BoundAddresses): string | null | Promise<string | null> {
    const s = this.states.get(id) ?? { kind: "down" };
    if (s.kind === "up") return s.bound[which];
    if (s.kind === "starting") return s.started.then((b) => b?.[which] ?? null);
    return null;
  }

  endpoints(): string[] {
    return this.members.map((m) => m.clientAddress);
  }

  /** How a client reaches this cluster: spread into TenureClient's options, or give to
   *  TestClient. TLS with `identity`'s certificate files, or insecure for an --insecure cluster. */
  clientSecurity(identity: string = DEFAULT_CLIENT_IDENTITY): TransportSecurity {
    return this.certificates === null ? { insecure: true } : { tls: this.clientTls(identity) };
  }

  /** The TLS options (CA, certificate and key files) of client `identity`; throws for an
   *  --insecure cluster. */
  clientTls(identity: string = DEFAULT_CLIENT_IDENTITY): TlsOptions {
    if (this.certificates === null) throw new Error("an --insecure cluster has no certificates");
    return clientTlsOf(this.certificates, identity);
  }

  /** A TestClient for this cluster's transport (default: every member's client address). */
  testClient(endpoints: readonly string[] = this.endpoints(), identity: string = DEFAULT_CLIENT_IDENTITY): TestClient {
    return new TestClient(endpoints, this.clientSecurity(identity));
  }

  /** The TLS files member `id` starts with (memberTls over the defaults); null when insecure. */
  memberTlsFiles(id: string): MemberTlsFiles | null {
    const certs = this.certificates;
    if (certs === null) return null;
    const own = certs.members[id];
    if (!own) throw new Error(`no certificate for member ${id}: add it to extraMemberIds`);
    return { caFile: certs.caFile, certFile: own.certFile, keyFile: own.keyFile, ...this.options.memberTls?.(id, certs) };
  }

  private securityFlags(id: string): string[] {
    const files = this.memberTlsFiles(id);
    // Plaintext has no identities (the open mode: everyone may do everything), so no admins either.
    if (files === null) return ["--insecure"];
    const admins = this.options.adminIdentities ?? [ADMIN_CLIENT_IDENTITY];
    return [
      "--tls-ca",
      files.caFile,
      "--tls-cert",
      files.certFile,
      "--tls-key",
      files.keyFile,
      ...(admins.length > 0 ? ["--admin-identities", admins.join(",")] : []),
    ];
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
    this.member(id); // throws for an unknown id
    const o = this.options;
    const witnesses = o.witnesses ?? [];
    const route = (x: Member): string => (x.id === id || !o.peerRoute ? x.peerAddress : o.peerRoute(id, x));
    const args = [
      ...serverArgs(witnesses.includes(id) ? "tenure-witness" : "tenured"),
      "--id",
      id,
      "--cluster-id",
      o.clusterId ?? "itest",
      "--data-dir",
      this.dataDir(id),
      "--peer-listen",
      "127.0.0.1:0",
      "--client-listen",
      "127.0.0.1:0",
      "--members",
      this.members.map((x) => `${x.id}=${route(x)}/${x.clientAddress}`).join(","),
      ...(witnesses.length > 0 ? ["--witnesses", witnesses.join(",")] : []),
      "--tick-ms",
      String(o.tickMs ?? TICK_MS_DEFAULT),
      "--election-timeout-ticks",
      String(o.electionTimeoutTicks ?? 10),
      "--lock-delay-ms",
      String(o.lockDelayMs ?? 500),
      ...(opts.bootstrap ? ["--bootstrap"] : []),
      ...this.securityFlags(id),
      ...(o.extraFlags ?? []),
      ...(o.perMemberFlags?.(id, this.root) ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.processes.set(id, child);
    const lines: string[] = [];
    // The previous life's last lines and exit, for a start that fails because of how it ended.
    const before = this.logs.get(id);
    const previousLife = before === undefined ? "" : ` (previous run's last lines: ${before.slice(-4).join(" | ")})`;
    this.logs.set(id, lines);
    let settle: (b: BoundAddresses | null) => void = () => undefined;
    const started = new Promise<BoundAddresses | null>((resolve) => (settle = resolve));
    this.states.set(id, { kind: "starting", started });
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        settle(null);
        reject(new Error(`${id} ${why}: ${lines.slice(-5).join(" | ")}${previousLife}`));
      };
      const timer = setTimeout(() => fail("did not start"), START_TIMEOUT_MS);
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on("line", (line) => {
          if (lines.length < 5000) lines.push(line);
          if (!line.includes('"event":"started"')) return;
          const bound = boundOf(line);
          if (bound === null) return fail(`logged "started" without its addresses`);
          clearTimeout(timer);
          if (this.processes.get(id) === child) this.states.set(id, { kind: "up", bound });
          settle(bound);
          resolve();
        });
      }
      child.once("exit", (code, signal) => {
        lines.push(`[exited: code ${code} signal ${signal}]`);
        if (this.processes.get(id) === child) {
          this.processes.delete(id);
          this.states.set(id, { kind: "down" });
        }
        fail(`exited with ${code}`);
      });
    });
  }

  /** Drops every connection through member `id`'s client and peer addresses (its process keeps
   *  running): the clients and peers reconnect, with a new TLS handshake. */
  resetConnections(id: string): void {
    const i = this.members.findIndex((m) => m.id === id);
    if (i < 0) throw new Error(`no member ${id}`);
    for (const front of this.fronts.slice(2 * i, 2 * i + 2)) front.resetConnections();
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
    await Promise.all(this.fronts.map((f) => f.close()));
    if (options.removeData) rmSync(this.root, { recursive: true, force: true });
  }
}

/** The bound addresses in a {"event":"started"} line, or null if it lacks them. */
function boundOf(line: string): BoundAddresses | null {
  try {
    const o = JSON.parse(line.slice(line.indexOf("{"))) as Record<string, unknown>;
    const client = o["clientAddress"];
    const peer = o["peerAddress"];
    return typeof client === "string" && typeof peer === "string" ? { clientAddress: client, peerAddress: peer } : null;
  } catch {
    return null;
  }
}
