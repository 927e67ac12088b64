// The witness's client port over real gRPC: every method of Lease, Lock, Election and Cluster is
// refused with UNAVAILABLE / IS_WITNESS and the leader hint (streams end at once), except
// Cluster.Status, which reports the witness's own view.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import {
  ERROR_DETAIL_METADATA_KEY,
  decodeErrorDetail,
  serviceDefinition,
  tenurePackage,
  type ErrorDetail,
  type ServiceName,
} from "../proto/tenure_protos.ts";
import { startClientStub, type ClientStubHandle } from "./client_stub.ts";
import type { WitnessStatus } from "./witness_node.ts";

type ClientCtor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;
const loaded = grpc.loadPackageDefinition(tenurePackage()) as unknown as { tenure: { v1: Record<ServiceName, ClientCtor> } };
const SERVICES: readonly ServiceName[] = ["Lease", "Lock", "Election", "Cluster"];

let view: WitnessStatus = {
  id: "w",
  role: "follower",
  term: 4,
  leader: "b",
  commitIndex: 12,
  appliedIndex: 0,
  lastIndex: 13,
  firstIndex: 9,
  confState: { voters: ["a", "b", "w"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: ["w"], autoLeave: false },
};
const addresses = new Map([
  ["a", "127.0.0.1:7001"],
  ["b", "127.0.0.1:7002"],
  ["w", "127.0.0.1:7003"],
]);

interface Failure {
  readonly code: grpc.status;
  readonly detail: ErrorDetail | null;
}

function failureOf(err: grpc.ServiceError): Failure {
  const raw = err.metadata?.get(ERROR_DETAIL_METADATA_KEY)[0];
  return { code: err.code, detail: Buffer.isBuffer(raw) ? decodeErrorDetail(raw) : null };
}

/** Calls `method` the way its shape requires and resolves with the error it ends with. */
function callExpectingError(
  client: grpc.Client,
  method: string,
  def: { requestStream: boolean; responseStream: boolean },
): Promise<Failure> {
  const c = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  const fn = c[method];
  if (!fn) throw new Error(`no method ${method}`);
  const deadline = { deadline: Date.now() + 5000 };
  return new Promise((resolve, reject) => {
    const done = (err: grpc.ServiceError | null): void => (err ? resolve(failureOf(err)) : reject(new Error(`${method} succeeded`)));
    if (!def.responseStream) {
      const cb = (err: grpc.ServiceError | null) => done(err);
      const call = def.requestStream ? fn.call(client, deadline, cb) : fn.call(client, {}, deadline, cb);
      if (def.requestStream) (call as grpc.ClientWritableStream<object>).write({});
      return;
    }
    const stream = (def.requestStream ? fn.call(client, deadline) : fn.call(client, {}, deadline)) as grpc.ClientReadableStream<object>;
    stream.on("data", () => reject(new Error(`${method} streamed data`)));
    stream.on("error", (err: grpc.ServiceError) => done(err));
    if (def.requestStream) (stream as unknown as grpc.ClientDuplexStream<object, object>).write({});
  });
}

describe("witness client stub", () => {
  let stub: ClientStubHandle;
  const clients = new Map<ServiceName, grpc.Client>();

  before(async () => {
    stub = await startClientStub({ listenAddress: "127.0.0.1:0", status: () => view, memberAddresses: addresses });
    for (const s of SERVICES) clients.set(s, new loaded.tenure.v1[s](stub.boundAddress(), grpc.credentials.createInsecure()));
  });

  after(async () => {
    for (const c of clients.values()) c.close();
    await stub.close();
  });

  it("refuses every client method with IS_WITNESS and the leader hint", async () => {
    let count = 0;
    for (const s of SERVICES) {
      for (const [method, def] of Object.entries(serviceDefinition(s))) {
        if (`${s}.${method}` === "Cluster.Status") continue;
        const f = await callExpectingError(clients.get(s) as grpc.Client, method, def);
        assert.equal(f.code, grpc.status.UNAVAILABLE, `${s}.${method}`);
        assert.equal(f.detail?.reason, "IS_WITNESS", `${s}.${method}`);
        assert.equal(f.detail?.leaderId, "b");
        assert.equal(f.detail?.leaderAddress, "127.0.0.1:7002");
        count++;
      }
    }
    assert.ok(count >= 15, `only ${count} methods checked`);
  });

  it("gives no hint while it knows no leader or leads itself", async () => {
    for (const leader of ["", "w"]) {
      view = { ...view, leader, role: leader === "w" ? "leader" : "follower" };
      const def = serviceDefinition("Lock")["Status"];
      assert.ok(def);
      const f = await callExpectingError(clients.get("Lock") as grpc.Client, "Status", def);
      assert.equal(f.detail?.reason, "IS_WITNESS");
      assert.equal(f.detail?.leaderAddress, "");
    }
    view = { ...view, leader: "b", role: "follower" };
  });

  it("answers Cluster.Status with its own view: commits, never applies", async () => {
    const c = clients.get("Cluster") as unknown as Record<
      string,
      (req: object, cb: (e: grpc.ServiceError | null, r: Record<string, unknown>) => void) => void
    >;
    const r = await new Promise<Record<string, unknown>>((resolve, reject) =>
      c["Status"]?.call(c, {}, (e, res) => (e ? reject(e) : resolve(res))),
    );
    assert.equal(r["nodeId"], "w");
    assert.equal(r["leaderId"], "b");
    assert.equal(r["leaderAddress"], "127.0.0.1:7002");
    assert.equal(r["commitIndex"], "12");
    assert.equal(r["appliedIndex"], "0");
    assert.deepEqual((r["confState"] as Record<string, unknown>)["witnesses"], ["w"]);
    // Started without credentials (plaintext), and it says so.
    assert.equal(r["insecure"], true);
  });
});
