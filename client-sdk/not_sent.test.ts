// A request that never left the process (issue 16: connection refused, nothing reachable) fails
// as UNAVAILABLE, fast, and never as OUTCOME_UNKNOWN; endpoints without a port are refused. The
// first test pins grpc-js's wording for "never connected" against real refused and unresolvable
// endpoints: errors.ts recognises a never-sent call by it.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { tenurePackage } from "../proto/tenure_protos.ts";
import { scriptedRpc, scriptedTransport } from "../testing/kits/scripted_transport.ts";
import { TenureClient } from "./client.ts";
import { endpointProblem } from "./endpoints.ts";
import { isNotSent, TenureError } from "./errors.ts";
import type { Rpc } from "./rpc.ts";
import type { Message } from "./transport.ts";

/** A port nothing listens on: bound, then closed (connections to it are refused). */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

type UnaryFn = (req: object, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void;

async function rawError(endpoint: string): Promise<grpc.ServiceError> {
  const pkg = grpc.loadPackageDefinition(tenurePackage()) as unknown as {
    tenure: { v1: { Lock: new (a: string, c: grpc.ChannelCredentials) => grpc.Client } };
  };
  const client = new pkg.tenure.v1.Lock(endpoint, grpc.credentials.createInsecure());
  try {
    return await new Promise<grpc.ServiceError>((resolve, reject) =>
      (client as unknown as { Status: UnaryFn }).Status({ name: "x" }, { deadline: Date.now() + 5_000 }, (e) =>
        e ? resolve(e) : reject(new Error("a call to a closed port succeeded")),
      ),
    );
  } finally {
    client.close();
  }
}

const ALL_REFUSED_BOUND_MS = 3_000;

describe("a request that was never sent", () => {
  it("grpc-js's errors for a refused port and an unresolvable name are recognised as never sent", async () => {
    const refused = await rawError(`127.0.0.1:${await refusedPort()}`);
    assert.equal(isNotSent(refused), true, refused.details);
    const unresolved = await rawError("no-such-host.invalid:7001");
    assert.equal(isNotSent(unresolved), true, unresolved.details);
    assert.equal(TenureError.from(refused).notSent, true);
  });

  it(`with every endpoint refusing, lock(), a lease grant and a read fail as UNAVAILABLE within ${ALL_REFUSED_BOUND_MS} ms, not OUTCOME_UNKNOWN`, async () => {
    const endpoints = [`127.0.0.1:${await refusedPort()}`, `127.0.0.1:${await refusedPort()}`, `127.0.0.1:${await refusedPort()}`];
    const client = new TenureClient({ endpoints, insecure: true });
    try {
      for (const call of [
        () => client.lock("never-sent", { ttlMs: 5_000 }),
        () => client.grantLease({ ttlMs: 5_000 }),
        () => client.lockStatus("never-sent"),
      ]) {
        const started = performance.now();
        const error = await call().then(
          () => assert.fail("a call to refused endpoints succeeded"),
          (e: unknown) => e,
        );
        const elapsedMs = performance.now() - started;
        assert.ok(error instanceof TenureError, String(error));
        assert.equal(error.code, "UNAVAILABLE", error.message);
        assert.equal(error.notSent, true);
        assert.match(error.message, /no endpoint reachable, nothing was sent/);
        for (const e of endpoints) assert.ok(error.message.includes(e), `${e} not named: ${error.message}`);
        assert.ok(elapsedMs < ALL_REFUSED_BOUND_MS, `took ${elapsedMs.toFixed(0)} ms`);
      }
    } finally {
      client.close();
    }
  });
});

describe("the retry engine with refused endpoints (scripted transport)", () => {
  const notSent = (): TenureError => new TenureError("UNAVAILABLE", "No connection established", { notSent: true });
  const reset = (): TenureError => new TenureError("UNAVAILABLE", "Connection dropped");

  function scripted(steps: (Message | TenureError)[]): { rpc: Rpc; calls: string[] } {
    const { transport, endpointsCalled } = scriptedTransport(steps, notSent);
    // A long backoff: a test that waits for one fails on time instead of passing slowly.
    const rpc = scriptedRpc(transport, { backoff: { baseMs: 5_000, capMs: 5_000 }, defaultTimeoutMs: 20_000 });
    return { rpc, calls: endpointsCalled };
  }

  it("moves on to the next endpoint at once after a refused connection and succeeds there", async () => {
    const { rpc, calls } = scripted([notSent(), { leaseId: "7" }]);
    const started = performance.now();
    const res = await rpc.mutate("Lease", "Grant", { ttlMs: 1000 });
    assert.equal(res["leaseId"], "7");
    assert.deepEqual(calls, ["a", "b"]);
    assert.ok(performance.now() - started < 1_000, "waited for a backoff after a refused connection");
  });

  it("a mutation whose earlier attempt may have arrived stays OUTCOME_UNKNOWN when nothing answers afterwards", async () => {
    const { rpc } = scripted([reset(), notSent(), notSent(), notSent()]);
    const error = await rpc.mutate("Lease", "Grant", { ttlMs: 1000 }, { timeoutMs: 7_000 }).then(
      () => assert.fail("succeeded"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TenureError);
    assert.equal(error.code, "OUTCOME_UNKNOWN", error.message);
  });
});

describe("endpoints are host:port", () => {
  it("refuses an endpoint without a port, with a scheme, a bad port or host, naming it", () => {
    for (const [endpoint, why] of [
      ["10.0.0.1", /has no port/],
      ["tenure-0.tenure", /has no port/],
      ["::1", /has no port/],
      ["https://10.0.0.1:7001", /has a scheme/],
      ["10.0.0.1:0", /port "0" is not 1..65535/],
      ["10.0.0.1:70000", /port "70000" is not 1..65535/],
      ["10.0.0.1:", /port "" is not/],
      [" 10.0.0.1:7001", /empty or has spaces/],
      ["bad_host:7001", /is not a host name or address/],
    ] as const) {
      assert.match(endpointProblem(endpoint) ?? "accepted", why, endpoint);
      assert.throws(
        () => new TenureClient({ endpoints: [endpoint], insecure: true }),
        (e: unknown) => e instanceof TenureError && e.code === "INVALID_ARGUMENT" && e.message.includes(JSON.stringify(endpoint)),
      );
    }
  });

  it("accepts names, IPv4 and bracketed IPv6 with ports", () => {
    for (const endpoint of [
      "127.0.0.1:7001",
      "localhost:1",
      "tenure-0.tenure.default.svc.cluster.local:7001",
      "[::1]:7001",
      "[fe80::1]:65535",
    ]) {
      assert.equal(endpointProblem(endpoint), null, endpoint);
    }
  });
});
