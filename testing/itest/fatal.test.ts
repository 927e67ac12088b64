// Issue 10, item 2 on real tenured processes: a broken invariant stops the process through
// server/fatal.ts (exit 70 and one {"event":"fatal"} line), while a bad client request is an
// expected failure: INVALID_ARGUMENT, and the member keeps serving.
//
// The invariant is fired from outside, with no test hook: the test dials the leader's peer port
// as another member, authenticated by that member's own dev certificate (the peer port checks
// that the certificate's member id is the id it sends from, issue 12), and sends, encoded with
// the project's own peer codec, a heartbeat from that member in the leader's own term. Every
// check before the core passes (identity, admission, bounds, the heartbeat's commit, no higher
// term), so it reaches RaftCore.stepLeader, which asserts that two leaders in one term is
// impossible. Only a member that is itself broken can send it, and then the assertion is
// exactly right: one of the two is broken, and this one refuses to go on. (A stranger, or a
// member claiming another's id, is refused at the stream: testing/itest/peer_security.test.ts.)

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Message } from "../../server/core/messages.ts";
import { FATAL_EXIT_CODE } from "../../server/fatal.ts";
import { peerFrame, peerStream } from "../kits/peer_wire.ts";
import { ProcessCluster } from "./process_cluster.ts";
import type { TestClient } from "./test_client.ts";

type Obj = Record<string, unknown>;

const CLUSTER_ID = "itest"; // as ProcessCluster starts its members

/** Sends one frame to `to`'s peer port as member `from`, with `from`'s own certificate. */
async function sendAsMember(cluster: ProcessCluster, x: { from: string; to: string }, messages: readonly Message[]): Promise<void> {
  const files = cluster.memberTlsFiles(x.from);
  assert.ok(files, "the fatal test runs with mutual TLS");
  const r = await peerStream(
    { address: cluster.member(x.to).peerAddress, credentials: { kind: "tls", ...files }, targetMemberId: x.to, deadlineMs: 3000 },
    "Send",
    [peerFrame(CLUSTER_ID, x, messages)],
  );
  // The leader dies on it: the stream breaks (UNAVAILABLE) or runs out of time, never a refusal.
  assert.ok(r.code !== grpc.status.PERMISSION_DENIED && r.code !== grpc.status.UNAUTHENTICATED, `refused: ${r.details}`);
}

function exitOf(child: ChildProcess, budgetMs: number): Promise<number | null | "running"> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("running"), budgetMs);
    // "close", not "exit": by then stdout and stderr are drained, so every line is in the logs.
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function rawUnary(client: TestClient, endpoint: string, path: string, bytes: Buffer): Promise<grpc.ServiceError | null> {
  const c = client.client("Lease", endpoint);
  return new Promise((resolve) => {
    c.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err) => resolve(err),
    );
  });
}

describe("fatal on real tenured processes", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let client: TestClient;
  before(async () => {
    cluster = await ProcessCluster.start();
    client = cluster.testClient();
  });
  after(async () => {
    client.close();
    await cluster.stopAll();
  });

  it("a malformed client request gets INVALID_ARGUMENT and the member keeps serving", async () => {
    const leader = cluster.member(await client.leaderId(10_000));
    const garbage = await rawUnary(client, leader.clientAddress, "/tenure.v1.Lease/Grant", Buffer.from([0x10, 0xff]));
    assert.equal(garbage?.code, grpc.status.INVALID_ARGUMENT, garbage?.details);
    const badTtl = await client.callAt(leader.clientAddress, "Lease", "Grant", { clientId: "bad", seq: 1, ttlMs: 0 });
    assert.ok(!badTtl.ok && badTtl.code === grpc.status.INVALID_ARGUMENT, JSON.stringify(badTtl));
    const good = await client.callAt<Obj>(leader.clientAddress, "Lease", "Grant", { clientId: "good", seq: 1, ttlMs: 5_000 });
    assert.ok(good.ok, JSON.stringify(good));
    assert.equal(cluster.processes.get(leader.id)?.exitCode, null);
    const lines = cluster.logs.get(leader.id) ?? [];
    assert.equal(lines.filter((l) => l.includes('"event":"fatal"')).length, 0);
  });

  it("a forged same-term heartbeat fires the leader's assertion: exit 70 with one fatal line", async () => {
    let outcome: { leader: string; sender: string; term: number; code: number | null } | null = null;
    // A real election between the Status read and the frame would change the term; try again.
    for (let attempt = 0; attempt < 5 && outcome === null; attempt++) {
      const leader = cluster.member(await client.leaderId(10_000));
      const status = await client.callAt<Obj>(leader.clientAddress, "Cluster", "Status", {});
      if (!status.ok || status.value["role"] !== "leader") continue;
      const term = Number(status.value["term"]);
      const sender = cluster.members.find((m) => m.id !== leader.id)?.id ?? "";
      const child = cluster.processes.get(leader.id);
      assert.ok(child);
      const forged: Message = { kind: "heartbeat", from: sender, to: leader.id, term, commit: 0, readContext: 0, witnessFloor: 0 };
      await sendAsMember(cluster, { from: sender, to: leader.id }, [forged]);
      const code = await exitOf(child, 3_000);
      if (code !== "running") outcome = { leader: leader.id, sender, term, code };
    }
    assert.ok(outcome, "the leader kept running after five forged heartbeats");
    assert.equal(outcome.code, FATAL_EXIT_CODE);
    const fatalLines = (cluster.logs.get(outcome.leader) ?? []).filter((l) => l.includes('"event":"fatal"'));
    assert.equal(fatalLines.length, 1, fatalLines.join("\n"));
    const line = JSON.parse(fatalLines[0] ?? "") as Obj;
    assert.equal(
      line["error"],
      `AssertionError: leader ${outcome.leader} got heartbeat from ${outcome.sender} in its own term ${outcome.term}`,
    );
    assert.equal(line["where"], `peer message from ${outcome.sender} (heartbeat)`);
    // Contained: the other two elect a leader and serve.
    const after = cluster.testClient(cluster.members.filter((m) => m.id !== outcome.leader).map((m) => m.clientAddress));
    try {
      const grant = await after.call<Obj>("Lease", "Grant", { clientId: "after", seq: 1, ttlMs: 5_000 }, 15_000);
      assert.ok(grant.ok, JSON.stringify(grant));
    } finally {
      after.close();
    }
  });
});
