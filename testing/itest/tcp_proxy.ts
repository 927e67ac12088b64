// A TCP proxy on 127.0.0.1 for partition tests between real processes: put one in front of each
// directed peer link (A->B goes through its own proxy, B->A through another), then cut() it to
// partition that link and heal() it to reconnect. Cutting destroys the live connections (so the
// gRPC stream breaks at once, like a cable pulled) and refuses new ones until heal(): a refused
// connection is accepted and destroyed immediately, so clients see a reset, not a hang.
// Two more faults for the chaos harness: setDelayMs() holds every chunk in both directions for
// that long (order kept: a slow WAN link, not a lossy one), and resetConnections() drops the live
// connections but accepts new ones (a flapping NAT or load balancer).
// The target may be a function, asked at every new connection: ProcessCluster keeps one proxy
// per member port for the cluster's life (the address every other member and client dials) and
// points it at whatever port the member's current process bound (port 0 at every start), so no
// port number is ever chosen, freed and reused. A function may return a promise (a member still
// starting: the connection waits, its bytes held) or null (the member is down: refused).

import { createConnection, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

/** Where a proxy forwards: host:port, or asked per connection (null: refuse it). */
export type ProxyTarget = string | (() => string | null | Promise<string | null>);

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private isCut = false;
  private closed = false;
  private delayMs = 0;
  /** Bytes held by the delay, over every connection; past the limit the connection is dropped. */
  private delayedBytes = 0;
  static readonly DELAYED_BYTES_MAX = 64 * 1024 * 1024;

  private constructor(
    private readonly server: Server,
    /** host:port the proxy listens on (what the client side dials). */
    readonly address: string,
    private readonly target: ProxyTarget,
  ) {}

  /** Listens on 127.0.0.1 port 0 (kept until close()) and forwards every connection to
   *  `target`: a host:port, or a function asked at each new connection (see the header). */
  static start(target: ProxyTarget): Promise<TcpProxy> {
    return new Promise((resolve, reject) => {
      let proxy: TcpProxy | null = null;
      const server = createServer((client) => {
        if (proxy) void proxy.accept(client);
        else client.destroy();
      });
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const a = server.address();
        const listenPort = typeof a === "object" && a ? a.port : 0;
        proxy = new TcpProxy(server, `127.0.0.1:${listenPort}`, target);
        resolve(proxy);
      });
    });
  }

  get cutNow(): boolean {
    return this.isCut;
  }

  /** Drops every live connection and refuses new ones until heal(). */
  cut(): void {
    this.isCut = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  heal(): void {
    this.isCut = false;
  }

  /** Every chunk, both ways, is forwarded `ms` after it arrived (0: at once). */
  setDelayMs(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`delay must be >= 0 ms, got ${ms}`);
    this.delayMs = ms;
  }

  get delayNowMs(): number {
    return this.delayMs;
  }

  /** Drops every live connection; new ones are still accepted (unlike cut()). */
  resetConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): Promise<void> {
    this.closed = true;
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async accept(client: Socket): Promise<void> {
    if (this.isCut || this.closed) {
      client.destroy();
      return;
    }
    let target: string | null;
    if (typeof this.target === "string") {
      target = this.target;
    } else {
      // Held while the function decides (a member still starting); its bytes wait in the socket.
      client.pause();
      client.on("error", () => client.destroy());
      this.sockets.add(client);
      target = await this.target();
      this.sockets.delete(client);
    }
    if (target === null || this.isCut || this.closed || client.destroyed) {
      client.destroy();
      return;
    }
    const colon = target.lastIndexOf(":");
    const upstream = createConnection({ host: target.slice(0, colon), port: Number(target.slice(colon + 1)) });
    this.sockets.add(client);
    this.sockets.add(upstream);
    // Either side failing or closing tears down both halves: a half-open pair would look like a
    // link that is up but silent, which is a different fault from the one a test asked for.
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      s.on("error", teardown);
      s.on("close", teardown);
    }
    this.forward(client, upstream, teardown);
    this.forward(upstream, client, teardown);
    client.resume();
  }

  /** from -> to, through the delay when one is set. Chunks keep their order: each is released no
   *  earlier than the one before it, even when the delay is lowered meanwhile. */
  private forward(from: Socket, to: Socket, teardown: () => void): void {
    let releaseAfterMs = 0;
    let pendingChunks = 0; // held by timers: a chunk arriving now must not overtake them
    from.on("data", (chunk: Buffer) => {
      if (this.delayMs === 0 && pendingChunks === 0) {
        if (!to.write(chunk)) from.pause();
        return;
      }
      if (this.delayedBytes + chunk.length > TcpProxy.DELAYED_BYTES_MAX) {
        teardown();
        return;
      }
      this.delayedBytes += chunk.length;
      pendingChunks++;
      releaseAfterMs = Math.max(releaseAfterMs, performance.now() + this.delayMs);
      setTimeout(
        () => {
          this.delayedBytes -= chunk.length;
          pendingChunks--;
          if (!to.destroyed) to.write(chunk);
        },
        Math.max(0, releaseAfterMs - performance.now()),
      );
    });
    to.on("drain", () => from.resume());
  }
}
