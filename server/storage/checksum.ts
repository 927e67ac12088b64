// CRC32 (IEEE 802.3, the zlib/PNG polynomial) and the per-record checksums of server/storage.
// Pure: no node:* or npm imports, so the memory twin and the sqlite store compute identical values.
//
// CRC32 detects torn writes and flipped bits, not tampering; that is all a local store needs.

import type { ConfState, Entry, HardState, SnapshotMetadata } from "../core/types.ts";
import type { StorageIdentity } from "./raft_storage.ts";

const CRC32_TABLE: Uint32Array = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** Continues a CRC32 over `bytes`. Start with crc = 0; the result is an unsigned 32-bit integer. */
export function crc32Update(crc: number, bytes: Uint8Array): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    // Both indexes are in range by construction (byte value, 0..255).
    c = (CRC32_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

export function crc32(bytes: Uint8Array): number {
  return crc32Update(0, bytes);
}

export type ChecksumField = number | string | Uint8Array;

const TAG_NUMBER = 1;
const TAG_STRING = 2;
const TAG_BYTES = 3;
const textEncoder = new TextEncoder();

/**
 * CRC32 over a framed encoding of `fields`: each field is a type tag, a 32-bit length and the
 * payload, so ("ab","c") and ("a","bc") differ and a number never collides with a string.
 */
export function checksumOf(fields: readonly ChecksumField[]): number {
  let crc = 0;
  const header = new Uint8Array(5);
  const headerView = new DataView(header.buffer);
  const numberBytes = new Uint8Array(8);
  const numberView = new DataView(numberBytes.buffer);
  for (const field of fields) {
    let tag: number;
    let payload: Uint8Array;
    if (typeof field === "number") {
      tag = TAG_NUMBER;
      numberView.setFloat64(0, field, true); // exact for every safe integer
      payload = numberBytes;
    } else if (typeof field === "string") {
      tag = TAG_STRING;
      payload = textEncoder.encode(field);
    } else {
      tag = TAG_BYTES;
      payload = field;
    }
    headerView.setUint8(0, tag);
    headerView.setUint32(1, payload.length, true);
    crc = crc32Update(crc32Update(crc, header), payload);
  }
  return crc;
}

// Each record kind starts with its own name, so a row copied into another table never verifies.

export function entryChecksum(entry: Entry): number {
  return checksumOf(["entry", entry.index, entry.term, entry.type, entry.data]);
}

export function hardStateChecksum(hardState: HardState): number {
  return checksumOf(["hard_state", hardState.term, hardState.vote, hardState.commit]);
}

/** `confStateJson` is the exact stored text, so the check covers what is on disk. */
export function snapshotChecksum(metadata: Pick<SnapshotMetadata, "index" | "term">, confStateJson: string, data: Uint8Array): number {
  return checksumOf(["snapshot", metadata.index, metadata.term, confStateJson, data]);
}

export function identityChecksum(identity: StorageIdentity): number {
  return checksumOf(["identity", identity.clusterId, identity.nodeId]);
}

/** Canonical JSON of a ConfState: fixed key order, so equal states give equal checksums. */
export function encodeConfState(confState: ConfState): string {
  return JSON.stringify({
    voters: confState.voters,
    votersOutgoing: confState.votersOutgoing,
    learners: confState.learners,
    learnersNext: confState.learnersNext,
    witnesses: confState.witnesses,
    autoLeave: confState.autoLeave,
  });
}
