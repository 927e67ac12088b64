import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { parseExposition, sampleValue } from "../../testing/kits/prom_text.ts";
import { TestApi } from "../../testing/kits/api_test_kit.ts";
import { createRegistry } from "../metrics/registry.ts";
import { RequestMetrics } from "../metrics/request_metrics.ts";
import { GrpcHealth, HEALTH_SERVICE_NAMES, healthServiceDefinition } from "./grpc_health.ts";
import type { Readiness } from "./readiness.ts";

const CHECK_DEF = healthServiceDefinition["Check"];
if (CHECK_DEF === undefined) throw new Error("no Check in grpc.health.v1.Health");
const CHECK = CHECK_DEF;

function check(api: TestApi, service: string): Promise<{ status?: string; code?: grpc.status }> {
  return new Promise((resolve) => {
    api.client.makeUnaryRequest(
      CHECK.path,
      CHECK.requestSerialize,
      (bytes: Buffer) => CHECK.responseDeserialize(bytes) as { status: string },
      { service },
      (error: grpc.ServiceError | null, response?: { status: string }) =>
        resolve(error ? { code: error.code } : { status: response?.status ?? "" }),
    );
  });
}

const reflectionProto = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..", "proto");

/** Service names the server lists through grpc.reflection.v1 (or the error code). */
function listServices(api: TestApi): Promise<string[] | grpc.status> {
  const pkg = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [reflectionProto], keepCase: true });
  const def = (pkg["grpc.reflection.v1.ServerReflection"] as Record<string, grpc.MethodDefinition<object, object>>)["ServerReflectionInfo"];
  if (def === undefined) throw new Error("no ServerReflectionInfo");
  return new Promise((resolve) => {
    const call = api.client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
    call.on("data", (r: { list_services_response?: { service: { name: string }[] } }) => {
      resolve((r.list_services_response?.service ?? []).map((s) => s.name));
      call.end();
    });
    call.on("error", (e: grpc.ServiceError) => resolve(e.code));
    call.write({ list_services: "" });
  });
}

describe("gRPC health and reflection on the client port", () => {
  let readiness: Readiness = { ready: false, reason: "no leader known in term 1" };
  const health = new GrpcHealth(() => readiness);
  const registry = createRegistry();
  const requests = new RequestMetrics(registry);
  const apis: TestApi[] = [];
  after(async () => {
    health.close();
    for (const api of apis) {
      api.client.close();
      await api.handle.close();
    }
  });

  it("Check follows readiness for the server and each tenure.v1 service; unknown services are NOT_FOUND", async () => {
    const api = await TestApi.start({
      health,
      interceptors: [requests.interceptor()],
      onService: (d) => requests.knowService(d),
    });
    apis.push(api);
    assert.deepEqual(await check(api, ""), { status: "NOT_SERVING" });
    readiness = { ready: true };
    assert.equal(health.update(), "SERVING");
    for (const name of ["", ...HEALTH_SERVICE_NAMES]) assert.deepEqual(await check(api, name), { status: "SERVING" }, name);
    assert.deepEqual(await check(api, "tenure.v1.Nope"), { code: grpc.status.NOT_FOUND });
    readiness = { ready: false, reason: "campaigning" };
    health.update();
    assert.deepEqual(await check(api, "tenure.v1.Lock"), { status: "NOT_SERVING" });
    // The health calls are counted like the API's, under their own method name.
    const samples = parseExposition(await registry.metrics());
    assert.equal(sampleValue(samples, "tenure_requests_total", { method: "/grpc.health.v1.Health/Check", code: "OK" }), 7);
    assert.equal(sampleValue(samples, "tenure_requests_total", { method: "/grpc.health.v1.Health/Check", code: "NOT_FOUND" }), 1);
  });

  it("start() polls readiness: a Check sees the change within an interval", async () => {
    const api = await TestApi.start({ health });
    apis.push(api);
    health.start(20);
    readiness = { ready: true };
    const deadline = Date.now() + 2_000;
    while ((await check(api, "")).status !== "SERVING") {
      assert.ok(Date.now() < deadline, "health never turned SERVING");
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it("reflection is off unless asked for; on, it lists tenure.v1 and the health service", async () => {
    const off = await TestApi.start({ health });
    apis.push(off);
    assert.equal(await listServices(off), grpc.status.UNIMPLEMENTED);
    const on = await TestApi.start({ health, reflection: true });
    apis.push(on);
    const names = await listServices(on);
    assert.ok(Array.isArray(names));
    for (const name of [...HEALTH_SERVICE_NAMES, "grpc.health.v1.Health"]) assert.ok(names.includes(name), `${name} in ${names}`);
  });
});
