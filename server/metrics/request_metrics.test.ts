import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { parseExposition, samplesOf, sampleValue } from "../../testing/kits/prom_text.ts";
import { createRegistry } from "./registry.ts";
import { RequestMetrics } from "./request_metrics.ts";

const identity = (b: Buffer): Buffer => b;
const METHOD: grpc.MethodDefinition<Buffer, Buffer> = {
  path: "/test.v1.Echo/Say",
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
};
const UNLISTED: grpc.MethodDefinition<Buffer, Buffer> = { ...METHOD, path: "/test.v1.Other/Do" };

describe("request metrics", () => {
  const registry = createRegistry();
  const metrics = new RequestMetrics(registry);
  const server = new grpc.Server({ interceptors: [metrics.interceptor()] });
  let client: grpc.Client;

  before(async () => {
    const say: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
      if (call.request.length === 0) callback({ code: grpc.status.INVALID_ARGUMENT, details: "empty" });
      else callback(null, call.request);
    };
    metrics.knowService({ Say: METHOD });
    server.addService({ Say: METHOD }, { Say: say });
    server.addService({ Do: UNLISTED }, { Do: say });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(() => {
    client.close();
    server.forceShutdown();
  });

  const call = (method: grpc.MethodDefinition<Buffer, Buffer>, body: Buffer): Promise<grpc.status> =>
    new Promise((resolve) => {
      client.makeUnaryRequest(method.path, identity, identity, body, (error) =>
        resolve(error === null ? grpc.status.OK : (error.code ?? -1)),
      );
    });

  it("counts each answered call by method and code; unlisted methods are 'other'", async () => {
    assert.equal(await call(METHOD, Buffer.from("hi")), grpc.status.OK);
    assert.equal(await call(METHOD, Buffer.from("hi")), grpc.status.OK);
    assert.equal(await call(METHOD, Buffer.alloc(0)), grpc.status.INVALID_ARGUMENT);
    assert.equal(await call(UNLISTED, Buffer.from("x")), grpc.status.OK);
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_requests_total", { method: "/test.v1.Echo/Say", code: "OK" }), 2);
    assert.equal(sampleValue(s, "tenure_requests_total", { method: "/test.v1.Echo/Say", code: "INVALID_ARGUMENT" }), 1);
    assert.equal(sampleValue(s, "tenure_requests_total", { method: "other", code: "OK" }), 1);
    assert.equal(samplesOf(s, "tenure_requests_total", { method: "/test.v1.Other/Do" }).length, 0);
    // Each call's duration too, under the same labels.
    assert.equal(sampleValue(s, "tenure_request_duration_seconds_count", { method: "/test.v1.Echo/Say", code: "OK" }), 2);
    assert.equal(sampleValue(s, "tenure_request_duration_seconds_count", { method: "other", code: "OK" }), 1);
    assert.ok(sampleValue(s, "tenure_request_duration_seconds_sum", { method: "/test.v1.Echo/Say", code: "OK" }) > 0);
  });

  it("a code outside gRPC's 17 is counted as UNKNOWN", async () => {
    metrics.count("/test.v1.Echo/Say", 99 as grpc.status);
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_requests_total", { method: "/test.v1.Echo/Say", code: "UNKNOWN" }), 1);
  });
});
