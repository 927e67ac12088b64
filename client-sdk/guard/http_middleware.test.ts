import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { StaleFencingTokenError } from "./errors.ts";
import { fencing, sendStale, withFencing } from "./http_middleware.ts";
import { MemoryGuard } from "./memory_guard.ts";
import { REJECTIONS_METRIC } from "./metrics.ts";

describe("HTTP fencing middleware over a real http server", () => {
  const registry = new Registry();
  const data = new Map<string, string>();
  const guard = new MemoryGuard(data, { registry });
  let handled = 0;
  const server = createServer(
    withFencing(guard, { resourceOf: (req) => new URL(req.url ?? "/", "http://x").pathname.slice(1) || null }, (req, res) => {
      handled++;
      if (req.method === "GET") {
        res.end(data.get(new URL(req.url ?? "/", "http://x").pathname.slice(1)) ?? "");
        return;
      }
      try {
        req.fenced?.run((d) => d.set(req.fenced!.resource, `by ${req.fenced!.token}`));
        res.end("ok");
      } catch (e) {
        if (e instanceof StaleFencingTokenError) sendStale(res, e);
        else throw e;
      }
    }),
  );
  let base = "";
  before(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const put = (path: string, token?: string) =>
    fetch(`${base}${path}`, { method: "PUT", headers: token === undefined ? {} : { "tenure-fencing-token": token }, body: "x" });

  it("passes a fresh token (200) and an equal one, answers 409 to a stale one before the handler runs", async () => {
    assert.equal((await put("/orders", "7")).status, 200);
    assert.equal((await put("/orders", "7")).status, 200);
    const before = handled;
    const stale = await put("/orders", "6");
    assert.equal(stale.status, 409);
    assert.deepEqual(await stale.json(), {
      code: "STALE_FENCING_TOKEN",
      resource: "orders",
      token: "6",
      highest: "7",
      message: 'stale fencing token 6 for resource "orders": token 7 was already accepted (a newer lock holder exists)',
    });
    assert.equal(handled, before, "the handler never saw the stale request");
    assert.equal(data.get("orders"), "by 7");
    const m = await registry.getSingleMetric(REJECTIONS_METRIC)?.get();
    assert.equal(m?.values.find((v) => v.labels["resource"] === "orders")?.value, 1);
  });

  it("answers 400 to a missing or malformed token and to a request without a resource", async () => {
    for (const t of [undefined, "", "abc", "0", "-5", "99999999999999999999999"]) {
      const r = await put("/orders", t);
      assert.equal(r.status, 400, String(t));
      assert.equal(((await r.json()) as { code: string }).code, "INVALID_FENCING_TOKEN");
    }
    assert.equal((await put("/", "9")).status, 400);
  });

  it("does not fence reads", async () => {
    const r = await fetch(`${base}/orders`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "by 7");
  });
});

describe("fencing() as Express-style middleware", () => {
  it("calls next() only for admitted requests, with req.fenced set", () => {
    const guard = new MemoryGuard(undefined, { registry: null });
    const mw = fencing(guard, { resourceOf: () => "r", header: "X-Token" });
    const res = { statusCode: 0, headersSent: false, setHeader() {}, end() {} };
    let nexts = 0;
    const req = { method: "POST", headers: { "x-token": "5" } } as never;
    mw(req, res as never, () => nexts++);
    assert.equal(nexts, 1);
    assert.equal((req as { fenced: { token: bigint } }).fenced.token, 5n);
    mw({ method: "POST", headers: { "x-token": "4" } } as never, res as never, () => nexts++);
    assert.equal(nexts, 1);
    assert.equal(res.statusCode, 409);
  });
});
