// Chunked InstallSnapshot over real gRPC (127.0.0.1, port 0): a snapshot far above the frame
// arrives whole, Raft's repeated requests for it are coalesced, size drops are counted and logged,
// and the receiver refuses what is out of order, short, corrupt, too large, stalled or replaced.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { Message, SnapshotMessage } from "../core/messages.ts";
import { SNAPSHOT_INBOUND_TRANSFERS_MAX } from "../limits.ts";
import { GrpcPeerTransport, type GrpcPeerTransportOptions } from "./grpc_peer_transport.ts";
import { MemoryNetwork } from "./memory_transport.ts";
import { PEER_PROTO_LOADER_OPTIONS } from "./peer_codec.ts";
import { snapshotChunks, snapshotHeaderChunk, type WireSnapshotChunk } from "./snapshot_chunks.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };

function snapshot(bytes: number, index = 90, from = "a"): SnapshotMessage {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 131 + index) & 0xff;
  return { kind: "snapshot", from, to: "b", term: 4, snapshot: { metadata: { index, term: 3, confState }, data } };
}

const heartbeat = (commit: number): Message => ({
  kind: "heartbeat",
  from: "a",
  to: "b",
  term: 4,
  commit,
  readContext: 0,
  witnessFloor: 0,
});

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Logged = Record<string, unknown>[];

/** a -> b over gRPC, each with its own options and log. */
async function pair(optionsA: Partial<GrpcPeerTransportOptions> = {}, optionsB: Partial<GrpcPeerTransportOptions> = {}) {
  const logA: Logged = [];
  const logB: Logged = [];
  const base = { clusterId: "k1", listenAddress: "127.0.0.1:0", peers: [] };
  const b = await GrpcPeerTransport.start({ ...base, selfId: "b", log: (f) => void logB.push({ ...f }), ...optionsB });
  const a = await GrpcPeerTransport.start({ ...base, selfId: "a", log: (f) => void logA.push({ ...f }), ...optionsA });
  a.setPeers([{ id: "b", address: b.boundAddress() }]);
  const got: Message[] = [];
  b.onMessage((m) => void got.push(m));
  return { a, b, logA, logB, got, close: () => Promise.all([a.close(), b.close()]) };
}

const small = { messageBytesMax: 256 * KiB, snapshotChunkBytes: 64 * KiB };

describe("InstallSnapshot over gRPC", () => {
  it("a snapshot 40 times the frame arrives whole, in chunks, while heartbeats keep flowing", async () => {
    const p = await pair(small, small);
    try {
      const m = snapshot(10 * MiB);
      p.a.send([heartbeat(1), m, heartbeat(2)]);
      await waitFor("the snapshot", () => p.got.some((x) => x.kind === "snapshot"));
      await waitFor("both heartbeats", () => p.got.filter((x) => x.kind === "heartbeat").length === 2);
      const delivered = p.got.find((x) => x.kind === "snapshot");
      assert.deepStrictEqual(delivered, m);
      await waitFor("the sender's ack", () => p.a.stats().snapshotsSent === 1);
      assert.equal(p.b.stats().snapshotsReceived, 1);
      const sent = p.logA.find((f) => f["event"] === "snapshot_sent");
      assert.equal(sent?.["bytes"], 10 * MiB);
      assert.equal(sent?.["chunks"], 160);
      const received = p.logB.find((f) => f["event"] === "snapshot_received");
      assert.equal(received?.["bytes"], 10 * MiB);
      assert.equal(received?.["index"], 90);
    } finally {
      await p.close();
    }
  });

  it("Raft's repeated requests for the snapshot in flight (or just sent) are coalesced; a newer one goes", async () => {
    const p = await pair(small, small);
    try {
      const m = snapshot(4 * MiB);
      for (let i = 0; i < 10; i++) p.a.send([m]);
      await waitFor("the snapshot", () => p.got.length === 1);
      await waitFor("the sender's ack", () => p.a.stats().snapshotsSent === 1);
      p.a.send([m]); // just sent: within the resend interval
      const newer = snapshot(1 * MiB, 91);
      p.a.send([newer]);
      await waitFor("the newer snapshot", () => p.got.length === 2);
      assert.deepStrictEqual(p.got[1], newer);
      assert.equal(p.a.stats().snapshotsCoalesced, 10);
      assert.equal(p.b.stats().snapshotsReceived, 2);
    } finally {
      await p.close();
    }
  });

  it("messages too large to send are dropped, counted and logged at most once per interval", async () => {
    const p = await pair({ ...small, snapshotBytesMax: 1 * MiB }, small);
    try {
      for (let i = 0; i < 3; i++) p.a.send([snapshot(2 * MiB, 90 + i)]);
      const entry = { term: 4, index: 91, type: "normal" as const, data: new Uint8Array(300 * KiB) };
      p.a.send([
        { kind: "append", from: "a", to: "b", term: 4, prevIndex: 90, prevTerm: 3, entries: [entry], commit: 90, witnessFloor: 0 },
      ]);
      p.a.send([heartbeat(5)]);
      await waitFor("the heartbeat", () => p.got.length === 1);
      assert.deepStrictEqual([p.a.stats().oversizeDrops, p.a.stats().droppedMessages], [4, 4]);
      const lines = p.logA.filter((f) => f["event"] === "message_dropped_too_large");
      assert.deepStrictEqual(
        lines.map((f) => [f["kind"], f["limit"], f["bytes"]]),
        [
          ["snapshot", "snapshotBytesMax", 2 * MiB],
          ["append", "messageBytesMax", lines[1]?.["bytes"]],
        ],
      );
      assert.ok(Number(lines[1]?.["bytes"]) > 300 * KiB);
    } finally {
      await p.close();
    }
  });

  it("a receiver with a smaller snapshot limit refuses at the header; both sides log it", async () => {
    const p = await pair(small, { ...small, snapshotBytesMax: 1 * MiB });
    try {
      p.a.send([snapshot(2 * MiB)]);
      await waitFor("the refusal", () => p.b.stats().snapshotsRefused === 1);
      await waitFor("the sender's failure line", () => p.logA.some((f) => f["event"] === "snapshot_send_failed"));
      assert.match(
        String(p.logA.find((f) => f["event"] === "snapshot_send_failed")?.["reason"]),
        /^RESOURCE_EXHAUSTED: snapshot of 2097152 bytes/,
      );
      assert.equal(p.logB.find((f) => f["event"] === "snapshot_refused")?.["code"], "RESOURCE_EXHAUSTED");
      assert.equal(p.got.length, 0);
    } finally {
      await p.close();
    }
  });
});

describe("InstallSnapshot receiver, driven by a raw gRPC client", () => {
  const definition = protoLoader.loadSync(fileURLToPath(new URL("../../proto/tenure/v1/peer.proto", import.meta.url)), {
    ...PEER_PROTO_LOADER_OPTIONS,
  });
  const install = (definition["tenure.v1.RaftPeer"] as Record<string, protoLoader.MethodDefinition<WireSnapshotChunk, object>>)[
    "InstallSnapshot"
  ];
  assert.ok(install);

  /** Writes `chunks` on one stream (ending it unless told not to); resolves with the status code. */
  function transfer(client: grpc.Client, chunks: readonly WireSnapshotChunk[], end = true): Promise<number> {
    return new Promise((resolve) => {
      const call = client.makeClientStreamRequest(
        install?.path ?? "",
        install?.requestSerialize ?? (() => Buffer.alloc(0)),
        install?.responseDeserialize ?? (() => ({})),
        (err) => resolve(err ? err.code : grpc.status.OK),
      );
      for (const c of chunks) call.write(c);
      if (end) call.end();
    });
  }

  it("refuses reordered, short and corrupt transfers, a stalled one, and one replaced by a newer transfer", async () => {
    const p = await pair({}, { snapshotChunkTimeoutMs: 300, dropLogIntervalMs: 1 });
    const client = new grpc.Client(p.b.boundAddress(), grpc.credentials.createInsecure());
    try {
      const chunks = snapshotChunks("k1", snapshot(3000), 1000);
      const [h, c0, c1, c2] = chunks as [WireSnapshotChunk, WireSnapshotChunk, WireSnapshotChunk, WireSnapshotChunk];
      assert.equal(await transfer(client, [h, c1, c0, c2]), grpc.status.INVALID_ARGUMENT);
      assert.equal(await transfer(client, [h, c0, c1]), grpc.status.INVALID_ARGUMENT);
      const flipped = { ...c1, data: Uint8Array.from(c1.data, (b, i) => (i === 0 ? b ^ 0xff : b)) };
      assert.equal(await transfer(client, [h, c0, flipped, c2]), grpc.status.DATA_LOSS);
      assert.equal(await transfer(client, [h, c0], false), grpc.status.DEADLINE_EXCEEDED);
      assert.equal(p.got.length, 0, "nothing of a refused transfer reaches the node");
      // An unfinished transfer is replaced by the next one from the same peer, which completes.
      const first = transfer(client, [h, c0], false);
      await waitFor("the first transfer to start", () => p.b.stats().snapshotsInbound === 1);
      const second = transfer(client, chunks);
      assert.equal(await first, grpc.status.ABORTED);
      assert.equal(await second, grpc.status.OK);
      assert.equal(p.got.length, 1);
      assert.equal(p.b.stats().snapshotsInbound, 0);
      assert.deepStrictEqual(
        p.logB.filter((f) => f["event"] === "snapshot_refused").map((f) => f["code"]),
        ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "DATA_LOSS", "DEADLINE_EXCEEDED", "ABORTED"],
      );
      assert.equal(p.b.stats().rejectedBatches, 5);
    } finally {
      client.close();
      await p.close();
    }
  });
});

describe("InstallSnapshot receiver bounds", () => {
  const definition = protoLoader.loadSync(fileURLToPath(new URL("../../proto/tenure/v1/peer.proto", import.meta.url)), {
    ...PEER_PROTO_LOADER_OPTIONS,
  });
  const install = (definition["tenure.v1.RaftPeer"] as Record<string, protoLoader.MethodDefinition<WireSnapshotChunk, object>>)[
    "InstallSnapshot"
  ];

  it(`reassembles at most ${SNAPSHOT_INBOUND_TRANSFERS_MAX} transfers at once; one more is RESOURCE_EXHAUSTED`, async () => {
    assert.ok(install);
    const p = await pair();
    const client = new grpc.Client(p.b.boundAddress(), grpc.credentials.createInsecure());
    const calls: grpc.ClientWritableStream<WireSnapshotChunk>[] = [];
    try {
      const open = (from: string): Promise<number> =>
        new Promise((resolve) => {
          const call = client.makeClientStreamRequest(install.path, install.requestSerialize, install.responseDeserialize, (err) =>
            resolve(err ? err.code : grpc.status.OK),
          );
          calls.push(call);
          call.write(snapshotHeaderChunk("k1", snapshot(10, 90, from)));
        });
      const held = ["x", "y"].slice(0, SNAPSHOT_INBOUND_TRANSFERS_MAX).map(open);
      await waitFor("the held transfers", () => p.b.stats().snapshotsInbound === SNAPSHOT_INBOUND_TRANSFERS_MAX);
      assert.equal(await open("z"), grpc.status.RESOURCE_EXHAUSTED);
      for (const call of calls) call.cancel();
      await Promise.all(held);
      await waitFor("the held transfers to be dropped", () => p.b.stats().snapshotsInbound === 0);
    } finally {
      client.close();
      await p.close();
    }
  });
});

describe("InstallSnapshot on the memory twin", () => {
  it("chunks, reassembles and delivers a snapshot; drops and logs one above snapshotBytesMax", async () => {
    const logged: Logged = [];
    const net = new MemoryNetwork({ log: (f) => void logged.push({ ...f }), snapshotBytesMax: 2 * MiB, snapshotChunkBytes: 64 * KiB });
    const [a, b] = [net.transport("a"), net.transport("b")];
    try {
      const got: Message[] = [];
      b.onMessage((m) => void got.push(m));
      const m = snapshot(1 * MiB);
      a.send([heartbeat(1), m, snapshot(3 * MiB, 91)]);
      await waitFor("delivery", () => got.length === 2);
      assert.deepStrictEqual(got, [heartbeat(1), m]);
      assert.equal(a.stats().droppedMessages, 1);
      assert.deepStrictEqual(
        logged.map((f) => [f["event"], f["limit"]]),
        [["message_dropped_too_large", "snapshotBytesMax"]],
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
