// Which endpoint the SDK tries next: NOT_LEADER hints followed anywhere by default, or only to
// listed endpoints (leaderHints "listed": clients behind proxies or port forwards, where the
// leader's advertised address is unreachable or would bypass the proxy).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { encodeErrorDetail, ERROR_DETAIL_METADATA_KEY } from "../proto/tenure_protos.ts";
import { scriptedRpc } from "../testing/kits/scripted_transport.ts";
import { TenureError } from "./errors.ts";
import { followLeaderStream } from "./leader_stream.ts";
import { SYSTEM_TIMERS } from "./timers.ts";
import { type Message, Transport, type Wire } from "./transport.ts";

const notLeader = (leaderAddress: string): TenureError => {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_DETAIL_METADATA_KEY, encodeErrorDetail({ reason: "NOT_LEADER", leaderId: "b", leaderAddress, currentToken: 0 }));
  return TenureError.from(Object.assign(new Error("not leader"), { code: grpc.status.UNAVAILABLE, details: "not leader", metadata }));
};

/** A wire where only `leader` answers; the others say NOT_LEADER naming `hint`. */
function wire(leader: string, hint: string, calls: string[]): Wire {
  return {
    unary: async (endpoint: string): Promise<Message> => {
      calls.push(endpoint);
      if (endpoint === leader) return { leaseId: "9" };
      throw notLeader(hint);
    },
    duplex: () => assert.fail("no streams here"),
    serverStream: () => assert.fail("no streams here"),
    close: () => {},
  };
}

describe("Transport and leader hints", () => {
  it("follow (default): a hint may name an address that is not listed", () => {
    const t = new Transport(["p1:1", "p2:1", "p3:1"], wire("", "", []));
    t.setLeader("10.0.0.2:7001", "p1:1");
    assert.equal(t.leader, "10.0.0.2:7001");
  });

  it("listed: an unlisted hint moves on to the next listed endpoint; a listed hint is followed", () => {
    const t = new Transport(["p1:1", "p2:1", "p3:1"], wire("", "", []), "listed");
    t.setLeader("10.0.0.2:7001", "p1:1");
    assert.equal(t.leader, "p2:1");
    t.setLeader("p1:1", "p2:1");
    assert.equal(t.leader, "p1:1");
  });

  it("a call through proxies reaches the leader through its listed proxy, never its own address", async () => {
    const calls: string[] = [];
    const t = new Transport(["p1:1", "p2:1", "p3:1"], wire("p3:1", "10.0.0.3:7001", calls), "listed");
    const res = await scriptedRpc(t).mutate("Lease", "Grant", { ttlMs: 1000 });
    assert.equal(res["leaseId"], "9");
    assert.deepEqual(calls, ["p1:1", "p2:1", "p3:1"]);

    const followed: string[] = [];
    const direct = new Transport(["p1:1", "p2:1", "p3:1"], wire("10.0.0.3:7001", "10.0.0.3:7001", followed));
    await scriptedRpc(direct).mutate("Lease", "Grant", { ttlMs: 1000 });
    assert.deepEqual(followed, ["p1:1", "10.0.0.3:7001"], "by default the hint is dialled");
  });

  it("a followed stream ends with an error no reconnect can mend, and reconnects after one it can", async () => {
    let opened = 0;
    const failing = (first: TenureError, then: TenureError): Wire => ({
      ...wire("", "", []),
      serverStream: () => {
        opened += 1;
        const error = opened === 1 ? first : then;
        return {
          cancel: () => {},
          [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }),
        };
      },
    });
    const host = (w: Wire) => ({
      transport: new Transport(["p1:1", "p2:1"], w),
      random: () => 0,
      closed: new AbortController().signal,
      timers: SYSTEM_TIMERS,
    });
    const denied = new TenureError("PERMISSION_DENIED", "lacks read");
    const drop = new TenureError("UNAVAILABLE", "connection dropped");
    const call = { service: "Lock", method: "Watch", request: { name: "x" } } as const;
    const iterate = (w: Wire) =>
      followLeaderStream(
        host(w),
        call,
        (m) => m,
        () => "k",
      ).next();
    await assert.rejects(iterate(failing(denied, denied)), (e: unknown) => e instanceof TenureError && e.code === "PERMISSION_DENIED");
    assert.equal(opened, 1, "not retried");
    opened = 0;
    await assert.rejects(iterate(failing(drop, denied)), (e: unknown) => e instanceof TenureError && e.code === "PERMISSION_DENIED");
    assert.equal(opened, 2, "the dropped connection was retried");
  });
});
