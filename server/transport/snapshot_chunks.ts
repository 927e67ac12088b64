// InstallSnapshot in chunks (proto/tenure/v1/peer.proto, RaftPeer.InstallSnapshot): the split on
// the sending side and the bounded reassembly on the receiving side. No gRPC here, so the
// in-memory twin runs exactly these checks too.
//
// A transfer is a header (ids, term, metadata, total size, CRC-32), then the image in chunks of
// at most snapshotChunkBytes, in order. The receiver checks the header as it would check an
// InstallSnapshot message on Send, refuses a total above its snapshotBytesMax before it allocates
// anything, then allocates exactly the declared total once and copies each chunk into place: its
// memory is bounded by snapshotBytesMax per transfer whatever the sender does. A chunk that does
// not start where the previous ended (reordered, missing or repeated), data beyond the total, an
// early end, or a CRC mismatch refuses the whole transfer.

import { crc32 } from "node:zlib";
import type { Message, SnapshotMessage } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import { decodeMessage, encodeMessage, type WireSnapshot } from "./peer_codec.ts";

export interface WireSnapshotHeader {
  cluster_id: string;
  from: string;
  to: string;
  term: string;
  metadata: WireSnapshot["metadata"];
  total_bytes: string;
  crc32: number;
}

export interface WireSnapshotChunk {
  header?: WireSnapshotHeader | null;
  offset: string;
  data: Uint8Array;
}

export type ChunkRefusalCode = "FAILED_PRECONDITION" | "INVALID_ARGUMENT" | "RESOURCE_EXHAUSTED" | "DATA_LOSS";
export interface ChunkRefusal {
  readonly ok: false;
  readonly code: ChunkRefusalCode;
  readonly reason: string;
}

const refuse = (code: ChunkRefusalCode, reason: string): ChunkRefusal => ({ ok: false, code, reason });

/** The header chunk of `m`'s transfer. */
export function snapshotHeaderChunk(clusterId: string, m: SnapshotMessage): WireSnapshotChunk {
  const wire = encodeMessage({ ...m, snapshot: { metadata: m.snapshot.metadata, data: new Uint8Array(0) } });
  const metadata = wire.snapshot?.snapshot.metadata;
  if (metadata === undefined) throw new Error("encodeMessage lost the snapshot metadata");
  const data = m.snapshot.data;
  const header = {
    cluster_id: clusterId,
    from: m.from,
    to: m.to,
    term: wire.term,
    metadata,
    total_bytes: String(data.byteLength),
    crc32: crc32(data),
  };
  return { header, offset: "0", data: new Uint8Array(0) };
}

/** The data chunk at `offset` (a view, not a copy) and where the next one starts. */
export function snapshotDataChunk(data: Uint8Array, offset: number, chunkBytes: number): { chunk: WireSnapshotChunk; next: number } {
  const next = Math.min(data.byteLength, offset + chunkBytes);
  return { chunk: { header: null, offset: String(offset), data: data.subarray(offset, next) }, next };
}

/** Every chunk of `m`'s transfer, header first (the memory twin and the tests use this). */
export function snapshotChunks(clusterId: string, m: SnapshotMessage, chunkBytes: number): WireSnapshotChunk[] {
  const chunks = [snapshotHeaderChunk(clusterId, m)];
  for (let offset = 0; offset < m.snapshot.data.byteLength; ) {
    const { chunk, next } = snapshotDataChunk(m.snapshot.data, offset, chunkBytes);
    chunks.push(chunk);
    offset = next;
  }
  return chunks;
}

export interface AssemblyExpectations {
  readonly clusterId: string;
  readonly selfId: NodeId;
  readonly snapshotBytesMax: number;
}

function record(raw: unknown): Record<string, unknown> | null {
  return typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : null;
}

function readCount(raw: unknown): number | null {
  const n = typeof raw === "string" && /^\d{1,16}$/.test(raw) ? Number(raw) : typeof raw === "number" ? raw : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** One transfer being reassembled. Create it with begin() on the first chunk. */
export class SnapshotAssembly {
  private received = 0;
  private readonly image: Uint8Array;

  private constructor(
    /** The InstallSnapshot message the header describes, with an empty image. */
    private readonly head: SnapshotMessage,
    readonly totalBytes: number,
    private readonly crc: number,
  ) {
    this.image = new Uint8Array(totalBytes);
  }

  get from(): NodeId {
    return this.head.from;
  }

  get receivedBytes(): number {
    return this.received;
  }

  get metadata(): SnapshotMessage["snapshot"]["metadata"] {
    return this.head.snapshot.metadata;
  }

  /** Checks the header chunk; allocates the image only once the header passed every check. */
  static begin(raw: unknown, expect: AssemblyExpectations): { readonly ok: true; readonly assembly: SnapshotAssembly } | ChunkRefusal {
    const header = record(record(raw)?.["header"]);
    if (header === null) return refuse("INVALID_ARGUMENT", "the first chunk of a snapshot must carry its header");
    if (header["cluster_id"] !== expect.clusterId) {
      return refuse(
        "FAILED_PRECONDITION",
        `cluster id ${JSON.stringify(String(header["cluster_id"]).slice(0, 64))} is not ${JSON.stringify(expect.clusterId)}`,
      );
    }
    if (header["to"] !== expect.selfId)
      return refuse(
        "FAILED_PRECONDITION",
        `snapshot for ${JSON.stringify(String(header["to"]).slice(0, 64))} reached ${JSON.stringify(expect.selfId)}`,
      );
    const dataBytes = record(raw)?.["data"];
    if (dataBytes instanceof Uint8Array && dataBytes.byteLength > 0) return refuse("INVALID_ARGUMENT", "the header chunk carries data");
    const totalBytes = readCount(header["total_bytes"]);
    if (totalBytes === null) return refuse("INVALID_ARGUMENT", "snapshot header total_bytes is not a safe unsigned integer");
    const crc = header["crc32"];
    if (typeof crc !== "number" || !Number.isInteger(crc) || crc < 0 || crc > 0xffffffff)
      return refuse("INVALID_ARGUMENT", "snapshot header crc32 is not a uint32");
    // The same checks as an InstallSnapshot message on Send (ids, term, metadata, voters).
    const wire = {
      from: header["from"],
      to: header["to"],
      term: header["term"],
      snapshot: { snapshot: { metadata: header["metadata"], data: new Uint8Array(0) } },
    };
    const decoded = decodeMessage(wire);
    if (!decoded.ok) return refuse("INVALID_ARGUMENT", `snapshot header: ${decoded.reason}`);
    if (decoded.value.kind !== "snapshot") return refuse("INVALID_ARGUMENT", "snapshot header did not decode as a snapshot");
    if (totalBytes > expect.snapshotBytesMax) {
      return refuse(
        "RESOURCE_EXHAUSTED",
        `snapshot of ${totalBytes} bytes is above this member's snapshotBytesMax ${expect.snapshotBytesMax}`,
      );
    }
    return { ok: true, assembly: new SnapshotAssembly(decoded.value, totalBytes, crc) };
  }

  /** Copies one data chunk into place, or refuses the transfer. */
  add(raw: unknown): { readonly ok: true } | ChunkRefusal {
    const chunk = record(raw);
    if (chunk === null) return refuse("INVALID_ARGUMENT", "snapshot chunk is not an object");
    if (record(chunk["header"]) !== null) return refuse("INVALID_ARGUMENT", "a second snapshot header in one transfer");
    const offset = readCount(chunk["offset"]);
    const data = chunk["data"];
    if (offset === null || !(data instanceof Uint8Array)) return refuse("INVALID_ARGUMENT", "snapshot chunk needs an offset and data");
    if (offset !== this.received) {
      return refuse("INVALID_ARGUMENT", `snapshot chunk at offset ${offset}, expected ${this.received} (reordered, missing or repeated)`);
    }
    if (data.byteLength === 0) return refuse("INVALID_ARGUMENT", `empty snapshot chunk at offset ${offset}`);
    if (offset + data.byteLength > this.totalBytes) {
      return refuse("INVALID_ARGUMENT", `snapshot chunk runs to ${offset + data.byteLength}, beyond the declared ${this.totalBytes} bytes`);
    }
    this.image.set(data, offset);
    this.received += data.byteLength;
    return { ok: true };
  }

  /** At the end of the stream: the whole snapshot as a Message, or why not. */
  finish(): { readonly ok: true; readonly message: Message } | ChunkRefusal {
    if (this.received !== this.totalBytes) {
      return refuse("INVALID_ARGUMENT", `snapshot transfer ended after ${this.received} of ${this.totalBytes} bytes`);
    }
    const crc = crc32(this.image);
    if (crc !== this.crc) return refuse("DATA_LOSS", `snapshot image has CRC-32 ${crc}, its header says ${this.crc}`);
    return { ok: true, message: { ...this.head, snapshot: { metadata: this.head.snapshot.metadata, data: this.image } } };
  }
}

/** A whole transfer at once (the memory twin; tests): begin, add each chunk, finish. */
export function reassemble(
  chunks: readonly unknown[],
  expect: AssemblyExpectations,
): { readonly ok: true; readonly message: Message } | ChunkRefusal {
  const begun = SnapshotAssembly.begin(chunks[0], expect);
  if (!begun.ok) return begun;
  for (const chunk of chunks.slice(1)) {
    const r = begun.assembly.add(chunk);
    if (!r.ok) return r;
  }
  return begun.assembly.finish();
}
