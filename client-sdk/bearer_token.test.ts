import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { BearerToken, bearerInterceptor } from "./bearer_token.ts";

const dir = mkdtempSync(join(tmpdir(), "tenure-sdk-token-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("sdk: bearer token", () => {
  it("takes a token or a file, never both or neither, and refuses what is not visible ASCII", () => {
    assert.equal(new BearerToken({ token: "abc" }).current(), "abc");
    assert.throws(() => new BearerToken({}), /one of them/);
    assert.throws(() => new BearerToken({ token: "a", tokenFile: "f" }), /one of them/);
    assert.throws(() => new BearerToken({ token: "a b" }), /visible ASCII/);
  });

  it("re-reads its file when it changes (a rotation), keeping the last good token on a bad read", async () => {
    const file = join(dir, "token");
    writeFileSync(file, "first-token\n");
    const token = new BearerToken({ tokenFile: file });
    assert.equal(token.current(), "first-token");
    writeFileSync(join(dir, "next"), "second-token\n");
    renameSync(join(dir, "next"), file);
    await new Promise((r) => setTimeout(r, 1_050)); // the file is checked at most once a second
    assert.equal(token.current(), "second-token");
    rmSync(file);
    await new Promise((r) => setTimeout(r, 1_050));
    assert.equal(token.current(), "second-token");
  });

  it("the interceptor puts authorization: Bearer <token> on every call (real gRPC)", async () => {
    const seen: unknown[] = [];
    const server = new grpc.Server();
    const pass = (b: Buffer): Buffer => b;
    server.addService(
      {
        Echo: {
          path: "/t.T/Echo",
          requestStream: false,
          responseStream: false,
          requestSerialize: pass,
          requestDeserialize: pass,
          responseSerialize: pass,
          responseDeserialize: pass,
        },
      },
      {
        Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
          seen.push(call.metadata.get("authorization")[0]);
          cb(null, Buffer.alloc(0));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      interceptors: [bearerInterceptor(new BearerToken({ token: "tok-1" }))],
    });
    try {
      for (let i = 0; i < 2; i++) {
        await new Promise<void>((resolve, reject) =>
          client.makeUnaryRequest("/t.T/Echo", pass, pass, Buffer.alloc(0), (e) => (e ? reject(e) : resolve())),
        );
      }
      assert.deepEqual(seen, ["Bearer tok-1", "Bearer tok-1"]);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
