// The per-peer outbound queue of GrpcPeerTransport is bounded in bytes as well as in messages:
// towards a peer that is down, what does not fit is dropped (the newest), counted and logged,
// rate-limited; a queueBytesMax below one batch is refused at start.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import type { Message } from "../core/messages.ts";
import { GrpcPeerTransport, QUEUE_BYTES_MAX_DEFAULT } from "./grpc_peer_transport.ts";
import { estimateMessageBytes } from "./peer_codec.ts";

const KiB = 1024;

/** A port nothing listens on (taken, then released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const address = srv.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise<void>((r) => srv.close(() => r()));
  return address.port;
}

const append = (index: number, dataBytes: number): Message => ({
  kind: "append",
  from: "a",
  to: "b",
  term: 1,
  prevIndex: index - 1,
  prevTerm: 1,
  commit: 0,
  witnessFloor: 0,
  entries: [{ term: 1, index, type: "normal", data: new Uint8Array(dataBytes) }],
});

describe("grpc peer transport: outbound queue bytes", () => {
  it("towards a peer that is down, messages beyond queueBytesMax are dropped, counted and logged once", async () => {
    const port = await freePort();
    const lines: Record<string, unknown>[] = [];
    const messageBytesMax = 64 * KiB;
    const queueBytesMax = messageBytesMax; // above one batch (the frame less its header), as required
    const options = {
      selfId: "a",
      clusterId: "k1",
      listenAddress: "127.0.0.1:0",
      peers: [{ id: "b", address: `127.0.0.1:${port}` }],
      messageBytesMax,
      snapshotChunkBytes: 32 * KiB,
      reconnectBackoffMsMin: 1_000,
      reconnectBackoffMsMax: 2_000,
      log: (f: Record<string, unknown>) => void lines.push({ ...f }),
    };
    const a = await GrpcPeerTransport.start({ ...options, queueBytesMax });
    try {
      const messages = Array.from({ length: 10 }, (_, i) => append(i + 1, 20 * KiB));
      const bytes = estimateMessageBytes(messages[0] ?? assert.fail());
      const fit = Math.floor(queueBytesMax / bytes);
      assert.equal(fit, 3);
      a.send(messages);
      const stats = a.stats();
      assert.equal(stats.queueFullDrops, 10 - fit);
      assert.equal(stats.droppedMessages, 10 - fit, "the queue is not counted as dropped until the connect fails");
      const logged = lines.filter((l) => l["event"] === "message_dropped_queue_full");
      assert.equal(logged.length, 1, "rate-limited: one line for the burst");
      assert.deepEqual(logged[0], {
        event: "message_dropped_queue_full",
        peer: "b",
        kind: "append",
        bytes,
        queuedMessages: fit,
        queuedBytes: fit * bytes,
        limit: "queueBytesMax",
        limitValue: queueBytesMax,
      });
      // Small messages still fit behind the big ones, up to the byte bound.
      a.send([{ kind: "heartbeat", from: "a", to: "b", term: 1, commit: 0, readContext: 0, witnessFloor: 0 }]);
      assert.equal(a.stats().queueFullDrops, 10 - fit);
    } finally {
      await a.close();
    }
  });

  it("refuses a queueBytesMax below one batch; the default is 64 MiB, or one frame if larger", async () => {
    assert.equal(QUEUE_BYTES_MAX_DEFAULT, 64 * 1024 * KiB);
    const base = { selfId: "a", clusterId: "k1", listenAddress: "127.0.0.1:0", peers: [], log: () => {} };
    await assert.rejects(GrpcPeerTransport.start({ ...base, queueBytesMax: 1 * KiB }), /queueBytesMax 1024 is below one batch/);
    const big = await GrpcPeerTransport.start({ ...base, messageBytesMax: 128 * 1024 * KiB });
    await big.close();
  });
});
