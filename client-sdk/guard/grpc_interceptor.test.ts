import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Registry } from "prom-client";
import { fencedCall, withFencing } from "./grpc_interceptor.ts";
import { MemoryGuard } from "./memory_guard.ts";
import { REJECTIONS_METRIC } from "./metrics.ts";

type Put = { key: string; value: string };
const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString("utf8")),
};
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const service: grpc.ServiceDefinition = { Put: method("/test.Store/Put", false), Watch: method("/test.Store/Watch", true) };
const Client = grpc.makeGenericClientConstructor(service, "Store");

describe("gRPC withFencing over a real server", () => {
  const registry = new Registry();
  const data = new Map<string, string>();
  const guard = new MemoryGuard(data, { registry });
  const server = new grpc.Server();
  let handled = 0;
  server.addService(
    service,
    withFencing(
      {
        Put(call: grpc.ServerUnaryCall<Put, unknown>, cb: grpc.sendUnaryData<unknown>) {
          handled++;
          fencedCall<Map<string, string>>(call as grpc.ServerUnaryCall<unknown, unknown>).run((d) =>
            d.set(call.request.key, call.request.value),
          );
          cb(null, { ok: true });
        },
        Watch(call: grpc.ServerWritableStream<unknown, unknown>) {
          call.end();
        },
      },
      { guard, resourceOf: (call) => (call.request as Put).key },
    ),
  );
  let client: grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  before(async () => {
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
  });
  after(() => {
    client.close();
    server.forceShutdown();
  });

  const put = (req: Put, token?: string) =>
    new Promise<{ err: grpc.ServiceError | null }>((resolve) => {
      const md = new grpc.Metadata();
      if (token !== undefined) md.set("tenure-fencing-token", token);
      client["Put"]!(req, md, (err: grpc.ServiceError | null) => resolve({ err }));
    });

  it("passes fresh and equal tokens, rejects a stale one with FAILED_PRECONDITION and the reason trailer", async () => {
    assert.equal((await put({ key: "k", value: "a" }, "20")).err, null);
    assert.equal((await put({ key: "k", value: "b" }, "20")).err, null);
    const before = handled;
    const { err } = await put({ key: "k", value: "old" }, "19");
    assert.equal(err?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(err?.details ?? "", /stale fencing token 19 .*token 20 was already accepted/);
    assert.deepEqual(err?.metadata.get("tenure-error-reason"), ["STALE_FENCING_TOKEN"]);
    assert.deepEqual(err?.metadata.get("tenure-fencing-highest"), ["20"]);
    assert.equal(handled, before);
    assert.equal(data.get("k"), "b");
    const m = await registry.getSingleMetric(REJECTIONS_METRIC)?.get();
    assert.equal(m?.values.find((v) => v.labels["resource"] === "k")?.value, 1);
  });

  it("answers INVALID_ARGUMENT to a missing or malformed token", async () => {
    for (const t of [undefined, "x", "0"]) {
      const { err } = await put({ key: "k", value: "z" }, t);
      assert.equal(err?.code, grpc.status.INVALID_ARGUMENT, String(t));
      assert.deepEqual(err?.metadata.get("tenure-error-reason"), ["INVALID_FENCING_TOKEN"]);
    }
    assert.equal(data.get("k"), "b");
  });

  it("answers UNIMPLEMENTED on a wrapped streaming method instead of running it unfenced", async () => {
    const stream = client["Watch"]!({ key: "k" }, new grpc.Metadata()) as grpc.ClientReadableStream<unknown>;
    const code = await new Promise<number>((resolve) => {
      stream.on("error", (e: grpc.ServiceError) => resolve(e.code));
      stream.on("data", () => {});
      stream.on("end", () => resolve(-1));
    });
    assert.equal(code, grpc.status.UNIMPLEMENTED);
  });
});
