// Real gRPC over 127.0.0.1 (port 0), plus the same contract run against the in-memory twin.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { Message } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import { GrpcPeerTransport } from "./grpc_peer_transport.ts";
import type { GrpcPeerTransportOptions } from "./grpc_peer_transport.ts";
import { MemoryNetwork } from "./memory_transport.ts";
import { PEER_PROTO_LOADER_OPTIONS, encodeBatch } from "./peer_codec.ts";
import type { PeerTransport } from "./peer_transport.ts";

const quiet = (): void => {};

function everyKind(from: NodeId, to: NodeId): Message[] {
  const head = { from, to, term: 3 };
  const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
  return [
    {
      ...head,
      kind: "append",
      prevIndex: 4,
      prevTerm: 2,
      commit: 4,
      witnessFloor: 0,
      entries: [
        { term: 3, index: 5, type: "normal", data: new Uint8Array([1, 2, 3]) },
        { term: 3, index: 6, type: "config", data: new TextEncoder().encode('{"kind":"leaveJoint"}') },
      ],
    },
    { ...head, kind: "appendResponse", index: 6, reject: true, rejectHintIndex: 2, rejectHintTerm: 1 },
    { ...head, kind: "heartbeat", commit: 6, readContext: 9, witnessFloor: 5 },
    { ...head, kind: "heartbeatResponse", readContext: 9 },
    { ...head, kind: "vote", preVote: true, transfer: false, lastIndex: 6, lastTerm: 3 },
    { ...head, kind: "voteResponse", preVote: false, reject: true },
    { ...head, kind: "snapshot", snapshot: { metadata: { index: 6, term: 3, confState }, data: new Uint8Array([9, 9]) } },
    { ...head, kind: "timeoutNow" },
  ];
}

const heartbeat = (from: NodeId, to: NodeId, commit: number): Message => ({
  kind: "heartbeat",
  from,
  to,
  term: 1,
  commit,
  readContext: 0,
  witnessFloor: 0,
});

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const heartbeatTo = (to: NodeId, commit: number): Message => ({
  kind: "heartbeat",
  from: "a",
  to,
  term: 1,
  commit,
  readContext: 0,
  witnessFloor: 0,
});

/** A port nothing listens on (taken, then released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const address = srv.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise<void>((r) => srv.close(() => r()));
  return address.port;
}

type Cluster = { readonly transports: ReadonlyMap<NodeId, PeerTransport>; close(): Promise<void> };

async function grpcCluster(ids: readonly NodeId[], extra: Partial<GrpcPeerTransportOptions> = {}): Promise<Cluster> {
  const transports = new Map<NodeId, GrpcPeerTransport>();
  for (const id of ids) {
    transports.set(
      id,
      await GrpcPeerTransport.start({ selfId: id, clusterId: "k1", listenAddress: "127.0.0.1:0", peers: [], log: quiet, ...extra }),
    );
  }
  const peers = [...transports].map(([id, t]) => ({ id, address: t.boundAddress() }));
  for (const t of transports.values()) t.setPeers(peers);
  return { transports, close: async () => void (await Promise.all([...transports.values()].map((t) => t.close()))) };
}

async function memoryCluster(ids: readonly NodeId[]): Promise<Cluster> {
  const net = new MemoryNetwork({ log: quiet });
  const transports = new Map(ids.map((id) => [id, net.transport(id)] as const));
  return { transports, close: async () => void (await Promise.all([...transports.values()].map((t) => t.close()))) };
}

function contract(name: string, make: (ids: readonly NodeId[]) => Promise<Cluster>): void {
  describe(`PeerTransport contract: ${name}`, () => {
    it("three transports exchange messages of every kind, in order per pair (a snapshot on its own stream)", async () => {
      const ids = ["a", "b", "c"];
      const cluster = await make(ids);
      try {
        const got = new Map<NodeId, Message[]>(ids.map((id) => [id, []]));
        for (const [id, t] of cluster.transports) t.onMessage((m) => got.get(id)?.push(m));
        for (const [from, t] of cluster.transports) t.send(ids.filter((to) => to !== from).flatMap((to) => everyKind(from, to)));
        await waitFor("all messages", () => [...got.values()].every((list) => list.length === 16));
        // Snapshots travel on their own InstallSnapshot stream: ordered with nothing else.
        const ordered = (list: readonly Message[]): Message[] => [
          ...list.filter((m) => m.kind !== "snapshot"),
          ...list.filter((m) => m.kind === "snapshot"),
        ];
        for (const to of ids) {
          for (const from of ids.filter((id) => id !== to)) {
            assert.deepStrictEqual(ordered(got.get(to)?.filter((m) => m.from === from) ?? []), ordered(everyKind(from, to)));
          }
        }
        assert.equal(cluster.transports.get("a")?.stats().receivedMessages, 16);
      } finally {
        await cluster.close();
      }
    });

    it("unknown destinations are dropped and counted; a throwing handler does not stop delivery", async () => {
      const cluster = await make(["a", "b"]);
      try {
        const [a, b] = [cluster.transports.get("a"), cluster.transports.get("b")];
        assert.ok(a && b);
        const seen: number[] = [];
        b.onMessage((m) => {
          seen.push(m.kind === "heartbeat" ? m.commit : -1);
          if (seen.length === 1) throw new Error("handler bug");
        });
        a.send([heartbeat("a", "zz", 0), heartbeat("a", "a", 0), heartbeat("a", "b", 1)]);
        await waitFor("first message", () => seen.length === 1);
        a.send([heartbeat("a", "b", 2)]);
        await waitFor("second message", () => seen.length === 2);
        assert.deepStrictEqual(seen, [1, 2]);
        assert.equal(a.stats().droppedMessages, 2);
      } finally {
        await cluster.close();
      }
    });
  });
}

contract("memory", memoryCluster);
contract("grpc", (ids) => grpcCluster(ids));

describe("MemoryNetwork", () => {
  it("cut is one-way and heal restores delivery", async () => {
    const net = new MemoryNetwork();
    const [a, b] = [net.transport("a"), net.transport("b")];
    after(() => Promise.all([a.close(), b.close()]));
    const atA: Message[] = [];
    const atB: Message[] = [];
    a.onMessage((m) => atA.push(m));
    b.onMessage((m) => atB.push(m));
    net.cut("a", "b");
    a.send([heartbeat("a", "b", 1)]);
    b.send([heartbeat("b", "a", 1)]);
    await waitFor("b->a", () => atA.length === 1);
    await new Promise((r) => setImmediate(r));
    assert.equal(atB.length, 0);
    assert.equal(net.drops(), 1);
    net.heal();
    a.send([heartbeat("a", "b", 2)]);
    await waitFor("a->b after heal", () => atB.length === 1);
  });
});

describe("GrpcPeerTransport", () => {
  it("send() writes its messages to an open stream at once, one frame per peer, not in a later turn", async () => {
    const cluster = await grpcCluster(["a", "b"]);
    try {
      const a = cluster.transports.get("a") as GrpcPeerTransport;
      const b = cluster.transports.get("b");
      assert.ok(a && b);
      const atB: Message[] = [];
      b.onMessage((m) => atB.push(m));
      a.send([heartbeatTo("b", 1)]);
      await waitFor("the stream to b is open", () => atB.length === 1);
      const before = a.stats();
      a.send([heartbeatTo("b", 2), heartbeatTo("b", 3)]);
      // Synchronously: a leader's next pass (its fsync) may run in the very next turn.
      const after = a.stats();
      assert.equal(after.sentBatches - before.sentBatches, 1, "one frame for the two messages of one send()");
      assert.equal(after.sentMessages - before.sentMessages, 2);
      await waitFor("both delivered", () => atB.length === 3);
    } finally {
      await cluster.close();
    }
  });

  it("a batch of 1000 messages arrives complete and in order in one frame", async () => {
    const cluster = await grpcCluster(["a", "b"], { batchMessagesMax: 1000 });
    try {
      const [a, b] = [cluster.transports.get("a"), cluster.transports.get("b")];
      assert.ok(a instanceof GrpcPeerTransport && b instanceof GrpcPeerTransport);
      const commits: number[] = [];
      b.onMessage((m) => commits.push(m.kind === "heartbeat" ? m.commit : -1));
      a.send(Array.from({ length: 1000 }, (_, i) => heartbeat("a", "b", i)));
      await waitFor("1000 messages", () => commits.length === 1000);
      assert.deepStrictEqual(
        commits,
        Array.from({ length: 1000 }, (_, i) => i),
      );
      assert.equal(b.stats().receivedBatches, 1);
      assert.deepStrictEqual([a.stats().sentMessages, a.stats().sentBatches, a.stats().droppedMessages], [1000, 1, 0]);
    } finally {
      await cluster.close();
    }
  });

  it("a wrong cluster id is rejected (FAILED_PRECONDITION) and counted; garbage is INVALID_ARGUMENT", async () => {
    const a = await GrpcPeerTransport.start({ selfId: "a", clusterId: "k1", listenAddress: "127.0.0.1:0", peers: [], log: quiet });
    const stranger = await GrpcPeerTransport.start({
      selfId: "x",
      clusterId: "other",
      listenAddress: "127.0.0.1:0",
      peers: [{ id: "a", address: a.boundAddress() }],
      log: quiet,
    });
    const client = new grpc.Client(a.boundAddress(), grpc.credentials.createInsecure());
    try {
      let delivered = 0;
      a.onMessage(() => (delivered += 1));
      stranger.send([heartbeat("x", "a", 1)]);
      await waitFor("rejection", () => a.stats().rejectedBatches === 1);
      const definition = protoLoader.loadSync(fileURLToPath(new URL("../../proto/tenure/v1/peer.proto", import.meta.url)), {
        ...PEER_PROTO_LOADER_OPTIONS,
      });
      const send = (definition["tenure.v1.RaftPeer"] as Record<string, protoLoader.MethodDefinition<object, object>>)["Send"];
      assert.ok(send);
      const statusOf = (batch: object): Promise<number> =>
        new Promise((resolve) => {
          const call = client.makeClientStreamRequest(send.path, send.requestSerialize, send.responseDeserialize, (err) =>
            resolve(err ? err.code : 0),
          );
          call.write(batch);
        });
      const good = encodeBatch({ clusterId: "k1", from: "x", to: "a" }, [heartbeat("x", "a", 1)]);
      assert.equal(await statusOf({ ...good, cluster_id: "other" }), grpc.status.FAILED_PRECONDITION);
      assert.equal(await statusOf({ ...good, to: "b" }), grpc.status.FAILED_PRECONDITION);
      assert.equal(
        await statusOf({ ...good, messages: [{ ...good.messages[0], term: "18446744073709551615" }] }),
        grpc.status.INVALID_ARGUMENT,
      );
      assert.equal(await statusOf({ ...good, messages: [{ from: "x", to: "a", term: "1" }] }), grpc.status.INVALID_ARGUMENT);
      assert.equal(a.stats().rejectedBatches, 5);
      assert.equal(delivered, 0);
    } finally {
      client.close();
      await Promise.all([a.close(), stranger.close()]);
    }
  });

  it("a peer that is down costs bounded drops, then messages flow once it starts", async () => {
    const port = await freePort();
    const a = await GrpcPeerTransport.start({
      selfId: "a",
      clusterId: "k1",
      listenAddress: "127.0.0.1:0",
      peers: [{ id: "b", address: `127.0.0.1:${port}` }],
      queueMessagesMax: 8,
      reconnectBackoffMsMin: 10,
      reconnectBackoffMsMax: 100,
      log: quiet,
    });
    let b: GrpcPeerTransport | null = null;
    try {
      a.send(Array.from({ length: 50 }, (_, i) => heartbeat("a", "b", i)));
      assert.equal(a.stats().droppedMessages, 42, "the queue holds 8, the rest is dropped at once");
      await waitFor("failed connect drops the queue", () => a.stats().droppedMessages === 50);
      assert.equal(a.stats().sentMessages, 0);
      b = await GrpcPeerTransport.start({ selfId: "b", clusterId: "k1", listenAddress: `127.0.0.1:${port}`, peers: [], log: quiet });
      let got = 0;
      b.onMessage(() => (got += 1));
      // Raft resends on its own heartbeat; model that until the link has reconnected.
      await waitFor("delivery after restart", () => {
        a.send([heartbeat("a", "b", 100)]);
        return got > 0;
      });
      assert.ok(a.stats().sentMessages >= 1);
    } finally {
      await Promise.all([a.close(), b?.close()]);
    }
  });

  it("close() releases the port: a new transport can listen on it at once", async () => {
    const first = await GrpcPeerTransport.start({ selfId: "a", clusterId: "k1", listenAddress: "127.0.0.1:0", peers: [], log: quiet });
    const address = first.boundAddress();
    assert.match(address, /^127\.0\.0\.1:[1-9]\d*$/);
    const peer = await GrpcPeerTransport.start({
      selfId: "b",
      clusterId: "k1",
      listenAddress: "127.0.0.1:0",
      peers: [{ id: "a", address }],
      log: quiet,
    });
    try {
      let got = 0;
      first.onMessage(() => (got += 1));
      peer.send([heartbeat("b", "a", 1)]); // an open inbound stream must not hold close() up
      await waitFor("inbound stream", () => got === 1);
      await first.close();
      await first.close(); // idempotent
      const second = await GrpcPeerTransport.start({ selfId: "a", clusterId: "k1", listenAddress: address, peers: [], log: quiet });
      try {
        assert.equal(second.boundAddress(), address);
        second.onMessage(() => (got += 1));
        await waitFor("reconnect to the new listener", () => {
          peer.send([heartbeat("b", "a", 2)]);
          return got >= 2;
        });
      } finally {
        await second.close();
      }
      first.send([heartbeat("a", "b", 1)]);
      assert.equal(first.stats().droppedMessages, 1, "send after close drops");
    } finally {
      await peer.close();
    }
  });
});
