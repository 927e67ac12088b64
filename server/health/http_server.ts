// The member's plain-HTTP operations port (--metrics-listen host:port; off by default):
//   GET /metrics  the Prometheus text exposition of the member's registry (server/metrics)
//   GET /healthz  200 "ok" while the process runs and its event loop answers (liveness)
//   GET /readyz   200 "ready" when the member is ready to serve (readiness.ts), else 503 with the
//                 reason in one line
// Anything else: another method is 405 (Allow: GET, HEAD), another path 404. HEAD answers as GET
// without a body. Secure by default: config.ts refuses a non-loopback host unless
// --metrics-allow-remote; the port has no TLS and no authentication, and serves nothing that
// changes state. Limits: small headers (HEADER_BYTES_MAX), request and header timeouts, a bound
// on connections, no request body read (a request that sends one gets 405/404 and the socket
// closed), one scrape at a time per connection.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exposition, type MetricsRegistry } from "../metrics/registry.ts";
import type { Readiness } from "./readiness.ts";

export const HEADER_BYTES_MAX = 4 * 1024;
export const REQUEST_TIMEOUT_MS = 5_000;
export const HEADERS_TIMEOUT_MS = 3_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const CONNECTIONS_MAX = 64;

export interface HealthSource {
  /** The registry /metrics exposes; null: no metrics (404 on /metrics). */
  readonly registry: MetricsRegistry | null;
  readonly readiness: () => Readiness;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const TEXT = "text/plain; charset=utf-8";

function answer(status: number, body: string, headers: Record<string, string> = {}): HttpAnswer {
  return { status, headers: { "content-type": TEXT, "cache-control": "no-store", ...headers }, body };
}

/** The answer to one request (method, URL path): the whole behaviour, without sockets. */
export async function handle(source: HealthSource, method: string, url: string): Promise<HttpAnswer> {
  const path = url.split("?", 1)[0] ?? "";
  const known = path === "/healthz" || path === "/readyz" || (path === "/metrics" && source.registry !== null);
  if (!known) return answer(404, `not found: ${path.slice(0, 100)} (paths: /metrics, /healthz, /readyz)\n`);
  if (method !== "GET" && method !== "HEAD")
    return answer(405, `method ${method.slice(0, 20)} not allowed: GET only\n`, { allow: "GET, HEAD" });
  if (path === "/healthz") return answer(200, "ok\n");
  if (path === "/readyz") {
    const r = source.readiness();
    return r.ready ? answer(200, "ready\n") : answer(503, `not ready: ${r.reason}\n`);
  }
  const registry = source.registry;
  if (registry === null) return answer(404, "not found\n");
  const { contentType, body } = await exposition(registry);
  return answer(200, body, { "content-type": contentType });
}

export interface HealthServerHandle {
  /** host:port actually bound (the port resolved when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

function respond(req: IncomingMessage, res: ServerResponse, a: HttpAnswer): void {
  const body = req.method === "HEAD" ? "" : a.body;
  // A request that carries a body is not read: answer and close rather than keep the socket.
  const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
  res.writeHead(a.status, {
    ...a.headers,
    "content-length": String(Buffer.byteLength(a.body)),
    ...(hasBody ? { connection: "close" } : {}),
  });
  res.end(body);
}

/** Binds `listen` (host:port) and serves; resolves once listening. */
export function startHealthServer(
  listen: string,
  source: HealthSource,
  log: (fields: Record<string, unknown>) => void = () => undefined,
): Promise<HealthServerHandle> {
  const cut = listen.lastIndexOf(":");
  const rawHost = listen.slice(0, cut);
  const host = rawHost.startsWith("[") && rawHost.endsWith("]") ? rawHost.slice(1, -1) : rawHost;
  const port = Number(listen.slice(cut + 1));
  const server: Server = createServer(
    {
      maxHeaderSize: HEADER_BYTES_MAX,
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // How often the two timeouts above are checked (node's default, 30 s, would let a slow
      // client hold a connection for that long).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      handle(source, req.method ?? "", req.url ?? "").then(
        (a) => respond(req, res, a),
        (error: unknown) => {
          log({ event: "metrics_scrape_failed", level: "error", error: error instanceof Error ? error.message : String(error) });
          respond(req, res, answer(500, "internal error\n"));
        },
      );
    },
  );
  server.maxConnections = CONNECTIONS_MAX;
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const bound = server.address() as AddressInfo;
      const shownHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
      resolve({
        address: `${shownHost}:${bound.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
