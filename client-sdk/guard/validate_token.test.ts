import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { encodeErrorDetail, ERROR_DETAIL_METADATA_KEY, serviceDefinition } from "../../proto/tenure_protos.ts";
import { validateToken } from "./validate_token.ts";

// Two fake members: a follower that answers NOT_LEADER with the leader's address, and the leader.
async function serve(impl: grpc.UntypedServiceImplementation): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server();
  server.addService(serviceDefinition("Lock") as unknown as grpc.ServiceDefinition, impl);
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { server, address: `127.0.0.1:${port}` };
}

describe("validateToken", () => {
  let leader: { server: grpc.Server; address: string };
  let follower: { server: grpc.Server; address: string };
  const asked: string[] = [];
  before(async () => {
    leader = await serve({
      ValidateToken(call: grpc.ServerUnaryCall<{ name: string; token: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        asked.push("leader");
        const current = call.request.name === "jobs" && call.request.token === "12";
        cb(null, { current, kind: "GRANT_KIND_LOCK", currentToken: "12" });
      },
    });
    follower = await serve({
      ValidateToken(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
        asked.push("follower");
        const md = new grpc.Metadata();
        md.set(
          ERROR_DETAIL_METADATA_KEY,
          encodeErrorDetail({ reason: "NOT_LEADER", leaderId: "a", leaderAddress: leader.address, currentToken: 0 }),
        );
        cb({ code: grpc.status.UNAVAILABLE, details: "not the leader", metadata: md }, null);
      },
    });
  });
  after(() => {
    leader.server.forceShutdown();
    follower.server.forceShutdown();
  });

  it("refuses to pick plaintext by itself: security (tls or insecure: true) or credentials is required", async () => {
    asked.length = 0;
    await assert.rejects(validateToken([leader.address], "jobs", 12n), (e: unknown) => {
      assert.equal((e as { code?: string }).code, "INVALID_ARGUMENT");
      return true;
    });
    assert.deepEqual(asked, [], "nothing was sent");
  });

  it("follows the NOT_LEADER hint and reports whether the token is current", async () => {
    asked.length = 0;
    assert.deepEqual(await validateToken([follower.address], "jobs", 12n, { security: { insecure: true } }), {
      current: true,
      currentToken: 12n,
      kind: "GRANT_KIND_LOCK",
    });
    assert.deepEqual(asked, ["follower", "leader"]);
    assert.deepEqual(await validateToken([follower.address], "jobs", "11", { security: { insecure: true } }), {
      current: false,
      currentToken: 12n,
      kind: "GRANT_KIND_LOCK",
    });
  });

  it("skips an unreachable endpoint", async () => {
    const r = await validateToken(["127.0.0.1:1", leader.address], "jobs", 12, { timeoutMs: 1000, security: { insecure: true } });
    assert.equal(r.current, true);
  });
});
