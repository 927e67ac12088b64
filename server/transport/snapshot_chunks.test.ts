// The split and the bounded reassembly of InstallSnapshot chunks (snapshot_chunks.ts): round trips
// at the edges of the chunk size, and every refusal (order, gaps, size, header, CRC).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SnapshotMessage } from "../core/messages.ts";
import { SnapshotAssembly, reassemble, snapshotChunks, type WireSnapshotChunk } from "./snapshot_chunks.ts";

const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };

function snapshot(bytes: number): SnapshotMessage {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + 7) & 0xff;
  return { kind: "snapshot", from: "a", to: "b", term: 4, snapshot: { metadata: { index: 90, term: 3, confState }, data } };
}

const expect = { clusterId: "k1", selfId: "b", snapshotBytesMax: 1 << 20 };

function refusal(r: { ok: boolean; code?: string; reason?: string }): string {
  assert.equal(r.ok, false, "expected a refusal");
  return `${r.code}: ${r.reason}`;
}

describe("snapshot chunks", () => {
  it("split and reassembled at the edges of the chunk size, the image and metadata come back whole", () => {
    for (const bytes of [0, 1, 999, 1000, 1001, 5000]) {
      const m = snapshot(bytes);
      const chunks = snapshotChunks("k1", m, 1000);
      assert.equal(chunks.length, 1 + Math.ceil(bytes / 1000), `${bytes} bytes: header + data chunks`);
      assert.ok(chunks.slice(1).every((c) => c.data.byteLength <= 1000 && c.header === null));
      const r = reassemble(chunks, expect);
      assert.ok(r.ok, `${bytes} bytes`);
      assert.deepStrictEqual(r.message, m);
    }
  });

  it("data chunks are views of the image, not copies", () => {
    const m = snapshot(3000);
    const chunks = snapshotChunks("k1", m, 1000);
    assert.equal(chunks[2]?.data.buffer, m.snapshot.data.buffer);
  });

  it("a reordered, missing or repeated chunk refuses the transfer", () => {
    const chunks = snapshotChunks("k1", snapshot(3000), 1000);
    const [h, c0, c1, c2] = chunks as [WireSnapshotChunk, WireSnapshotChunk, WireSnapshotChunk, WireSnapshotChunk];
    assert.match(refusal(reassemble([h, c1, c0, c2], expect)), /^INVALID_ARGUMENT: snapshot chunk at offset 1000, expected 0/);
    assert.match(refusal(reassemble([h, c0, c2], expect)), /offset 2000, expected 1000 \(reordered, missing or repeated\)/);
    assert.match(refusal(reassemble([h, c0, c0, c1, c2], expect)), /offset 0, expected 1000/);
    assert.match(refusal(reassemble([h, c0, c1], expect)), /^INVALID_ARGUMENT: snapshot transfer ended after 2000 of 3000 bytes$/);
  });

  it("data beyond the declared total, an empty chunk, a second header are refused", () => {
    const chunks = snapshotChunks("k1", snapshot(1500), 1000);
    const [h, c0] = chunks as [WireSnapshotChunk, WireSnapshotChunk];
    const long: WireSnapshotChunk = { header: null, offset: "1000", data: new Uint8Array(501) };
    assert.match(refusal(reassemble([h, c0, long], expect)), /runs to 1501, beyond the declared 1500 bytes/);
    assert.match(refusal(reassemble([h, c0, { header: null, offset: "1000", data: new Uint8Array(0) }], expect)), /empty snapshot chunk/);
    assert.match(refusal(reassemble([h, c0, h], expect)), /a second snapshot header/);
    assert.match(refusal(reassemble([c0], expect)), /the first chunk of a snapshot must carry its header/);
  });

  it("a total above snapshotBytesMax is refused at the header, before anything is buffered", () => {
    const [h] = snapshotChunks("k1", snapshot(2001), 1000) as [WireSnapshotChunk];
    const r = SnapshotAssembly.begin(h, { ...expect, snapshotBytesMax: 2000 });
    assert.match(refusal(r), /^RESOURCE_EXHAUSTED: snapshot of 2001 bytes is above this member's snapshotBytesMax 2000$/);
    assert.ok(SnapshotAssembly.begin(h, { ...expect, snapshotBytesMax: 2001 }).ok, "exactly at the limit is fine");
  });

  it("a corrupted image fails its CRC-32: DATA_LOSS", () => {
    const chunks = snapshotChunks("k1", snapshot(2500), 1000);
    const bad = chunks.map((c, i) => (i === 2 ? { ...c, data: Uint8Array.from(c.data, (b, j) => (j === 7 ? b ^ 1 : b)) } : c));
    assert.match(refusal(reassemble(bad, expect)), /^DATA_LOSS: snapshot image has CRC-32 \d+, its header says \d+$/);
  });

  it("the header is checked as an InstallSnapshot message would be", () => {
    const [h] = snapshotChunks("k1", snapshot(10), 1000) as [WireSnapshotChunk];
    const header = h.header;
    assert.ok(header);
    const withHeader = (patch: object): WireSnapshotChunk => ({ ...h, header: { ...header, ...patch } });
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ cluster_id: "other" }), expect)), /^FAILED_PRECONDITION: cluster id "other"/);
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ to: "c" }), expect)), /^FAILED_PRECONDITION: snapshot for "c" reached "b"/);
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ from: "b" }), expect)), /message.from equals message.to/);
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ term: "2" }), expect)), /snapshot term 3 is above the message term 2/);
    const noVoters = { ...header.metadata, conf_state: { ...header.metadata.conf_state, voters: [] } };
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ metadata: noVoters }), expect)), /no voters/);
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ total_bytes: "-1" }), expect)), /total_bytes is not a safe unsigned integer/);
    assert.match(refusal(SnapshotAssembly.begin(withHeader({ crc32: 2 ** 32 }), expect)), /crc32 is not a uint32/);
    assert.match(refusal(SnapshotAssembly.begin({ ...h, data: new Uint8Array(3) }, expect)), /the header chunk carries data/);
    assert.match(refusal(SnapshotAssembly.begin("garbage", expect)), /must carry its header/);
  });
});
