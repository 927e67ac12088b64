import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { Counter } from "prom-client";
import { parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import { createRegistry } from "../metrics/registry.ts";
import { HEADER_BYTES_MAX, handle, type HealthSource, type HealthServerHandle, startHealthServer } from "./http_server.ts";
import type { Readiness } from "./readiness.ts";

function source(): { src: HealthSource; setReady: (r: Readiness) => void; counter: Counter } {
  const registry = createRegistry();
  const counter = new Counter({ name: "tenure_test_things_total", help: "things", registers: [registry] });
  let readiness: Readiness = { ready: true };
  return { src: { registry, readiness: () => readiness }, setReady: (r) => (readiness = r), counter };
}

describe("health HTTP handler", () => {
  it("GET /healthz is 200 ok whatever the readiness", async () => {
    const { src, setReady } = source();
    setReady({ ready: false, reason: "no leader known in term 2" });
    const a = await handle(src, "GET", "/healthz");
    assert.equal(a.status, 200);
    assert.equal(a.body, "ok\n");
  });

  it("GET /readyz follows readiness: 200, or 503 with the reason", async () => {
    const { src, setReady } = source();
    assert.equal((await handle(src, "GET", "/readyz")).status, 200);
    setReady({ ready: false, reason: "no leader known in term 2" });
    const a = await handle(src, "GET", "/readyz");
    assert.equal(a.status, 503);
    assert.equal(a.body, "not ready: no leader known in term 2\n");
    setReady({ ready: true });
    assert.equal((await handle(src, "GET", "/readyz?verbose=1")).status, 200);
  });

  it("GET /metrics is the registry's text exposition with its content type", async () => {
    const { src, counter } = source();
    counter.inc(3);
    const a = await handle(src, "GET", "/metrics");
    assert.equal(a.status, 200);
    assert.match(a.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/);
    assert.equal(sampleValue(parseExposition(a.body), "tenure_test_things_total"), 3);
  });

  it("other paths are 404, other methods 405 with Allow; no registry: /metrics is 404", async () => {
    const { src } = source();
    for (const path of ["/", "/metrics/", "/ready", "/debug/pprof", "//metrics"])
      assert.equal((await handle(src, "GET", path)).status, 404, path);
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
      const a = await handle(src, method, "/metrics");
      assert.equal(a.status, 405, method);
      assert.equal(a.headers["allow"], "GET, HEAD");
    }
    assert.equal((await handle({ ...src, registry: null }, "GET", "/metrics")).status, 404);
    assert.equal((await handle({ ...src, registry: null }, "GET", "/healthz")).status, 200);
  });
});

describe("health HTTP server on a socket", () => {
  const { src, setReady } = source();
  let server: HealthServerHandle;
  before(async () => {
    server = await startHealthServer("127.0.0.1:0", src);
  });
  after(() => server.close());

  const url = (path: string): string => `http://${server.address}${path}`;

  it("binds the asked host with port 0 resolved, and answers the three paths", async () => {
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(url("/healthz"))).status, 200);
    setReady({ ready: false, reason: "catching up" });
    const r = await fetch(url("/readyz"));
    assert.equal(r.status, 503);
    assert.equal(await r.text(), "not ready: catching up\n");
    setReady({ ready: true });
    const m = await fetch(url("/metrics"));
    assert.equal(m.status, 200);
    assert.match(await m.text(), /tenure_test_things_total 0/);
    assert.equal((await fetch(url("/nope"))).status, 404);
  });

  it("POST with a body is 405 and the connection is closed; HEAD has no body", async () => {
    const r = await fetch(url("/metrics"), { method: "POST", body: "x".repeat(1000) });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get("connection"), "close");
    const h = await fetch(url("/healthz"), { method: "HEAD" });
    assert.equal(h.status, 200);
    assert.equal(await h.text(), "");
  });

  it("headers larger than the limit are refused with 431", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url("/metrics"), { headers: { "x-big": "y".repeat(HEADER_BYTES_MAX + 100) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 431);
  });

  it("a client that never finishes its headers is cut off (headers timeout), the server keeps serving", async () => {
    const [host, port] = [server.address.slice(0, server.address.lastIndexOf(":")), Number(server.address.split(":").pop())];
    const closed = await new Promise<number>((resolve) => {
      const started = Date.now();
      const socket = connect(port, host, () => socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
      socket.on("data", () => undefined);
      socket.on("close", () => resolve(Date.now() - started));
      socket.on("error", () => undefined);
    });
    assert.ok(closed < 15_000, `closed after ${closed} ms`);
    assert.equal((await fetch(url("/healthz"))).status, 200);
  });
});
