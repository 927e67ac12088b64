// How status_map.ts classifies what escapes a handler: an ApiError is its own status, an
// ordinary exception is INTERNAL and the server carries on (errors.test.ts has the logging), and
// an invariant violation (AssertionError, StorageCorruptError) goes to server/fatal.ts: unary
// calls, the streams, and the "best effort" reads that used to swallow every error.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TestApi, assertError, streamEnd, type Message } from "../../testing/kits/api_test_kit.ts";
import { AssertionError } from "../core/assert.ts";
import { setFatalHandler, type FatalReport } from "../fatal.ts";
import { StorageCorruptError } from "../storage/raft_storage.ts";
import { ApiError, logError, toStatusObject } from "./status_map.ts";

describe("status_map: what a handler's exception becomes", () => {
  const reports: FatalReport[] = [];
  let restore: () => void = () => {};
  beforeEach(() => {
    reports.length = 0;
    restore = setFatalHandler((r) => void reports.push(r));
  });
  afterEach(() => restore());

  describe("toStatusObject and logError", () => {
    it("an ApiError is its own status; nothing is fatal", () => {
      const s = toStatusObject(new ApiError("NOT_LEADER", "not the leader"), "Lock.Acquire");
      assert.equal(s.code, grpc.status.UNAVAILABLE);
      assert.equal(reports.length, 0);
    });

    it("an ordinary exception is INTERNAL and not fatal", () => {
      const stderrWrite = process.stderr.write;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      try {
        assert.equal(toStatusObject(new TypeError("x is undefined"), "Lock.Acquire").code, grpc.status.INTERNAL);
      } finally {
        process.stderr.write = stderrWrite;
      }
      assert.equal(reports.length, 0);
    });

    it("an AssertionError or a StorageCorruptError goes to fatal() with the rpc as where", () => {
      toStatusObject(new AssertionError("applied index went back"), "Lock.Acquire");
      logError("failed to end a stream", "Lease.KeepAlive", new StorageCorruptError("bad crc"));
      assert.deepEqual(
        reports.map((r) => r.where),
        ["client call Lock.Acquire", "client call Lease.KeepAlive"],
      );
      assert.ok(reports[0]?.error instanceof AssertionError);
    });
  });

  describe("over gRPC (FakeNode)", () => {
    let api: TestApi;
    before(async () => {
      api = await TestApi.start();
    });
    after(async () => {
      await api.close();
    });

    async function lease(clientId: string): Promise<string> {
      return String((await api.ok("Lease", "Grant", { clientId, seq: 1, ttlMs: 60_000 }))["leaseId"]);
    }

    it("unary: an assertion in the node is fatal (INTERNAL is what a test handler leaves)", async () => {
      api.node.throwNext = new AssertionError("machine read a torn table");
      assertError(await api.unary("Lock", "Status", { name: "x" }), grpc.status.INTERNAL, "INTERNAL");
      assert.deepEqual(
        reports.map((r) => r.where),
        ["client call Lock.Status"],
      );
      await api.ok("Lock", "Status", { name: "x" });
    });

    it("a refused try-lock's best-effort current_token read (a refusal stored by older code) does not swallow an assertion", async () => {
      const [a, b] = [await lease("ta"), await lease("tb")];
      await api.ok("Lock", "Acquire", { clientId: "ta", seq: 2, name: "m", leaseId: a, wait: false });
      const read = api.node.read;
      const submit = api.node.submit;
      api.node.read = async () => {
        throw new AssertionError("lock table holder without a lease");
      };
      // The refusal as older code stored it, without its token: the handler reads the token.
      api.node.submit = async (command) => {
        const outcome = await submit.call(api.node, command);
        if (outcome.kind !== "applied" || outcome.result.ok) return outcome;
        const { currentToken: _dropped, ...older } = outcome.result;
        return { kind: "applied", result: older };
      };
      try {
        assertError(
          await api.unary("Lock", "Acquire", { clientId: "tb", seq: 2, name: "m", leaseId: b, wait: false }),
          grpc.status.INTERNAL,
          "INTERNAL",
        );
      } finally {
        api.node.read = read;
        api.node.submit = submit;
      }
      assert.deepEqual(
        reports.map((r) => r.where),
        ["client call Lock.Acquire"],
      );
      // An ordinary failure of the same read still gives the plain LOCK_HELD answer.
      api.node.read = async () => {
        throw new Error("read failed");
      };
      try {
        assertError(
          await api.unary("Lock", "Acquire", { clientId: "tb", seq: 3, name: "m", leaseId: b, wait: false }),
          grpc.status.ABORTED,
          "LOCK_HELD",
        );
      } finally {
        api.node.read = read;
      }
      assert.equal(reports.length, 1);
    });

    it("server stream (Election.Observe): an assertion in its first read is fatal", async () => {
      api.node.throwNext = new AssertionError("election table out of order");
      const end = await streamEnd(api.serverStream("Election", "Observe", { name: "e" }));
      assert.ok(!end.ok && end.code === grpc.status.INTERNAL);
      assert.deepEqual(
        reports.map((r) => r.where),
        ["client call Election.Observe"],
      );
    });

    it("bidi stream (Lease.KeepAlive): an assertion in a renewal is fatal", async () => {
      const id = await lease("ka");
      const stream = api.bidi("Lease", "KeepAlive");
      const ended = streamEnd(stream);
      api.node.throwNext = new StorageCorruptError("session row checksum");
      stream.write({ clientId: "ka", seq: 2, leaseIds: [id] } satisfies Message);
      const end = await ended;
      assert.ok(!end.ok && end.code === grpc.status.INTERNAL);
      assert.deepEqual(
        reports.map((r) => r.where),
        ["client call Lease.KeepAlive"],
      );
      stream.cancel();
    });
  });
});
