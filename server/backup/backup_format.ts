// The backup file: what `tenured backup` writes and `tenured restore` reads (README.md here).
//
//   offset 0   8 bytes   magic "TNRBAKUP"
//          8   4 bytes   format version, big-endian (BACKUP_FORMAT_VERSION)
//         12   4 bytes   header length H, big-endian
//         16   H bytes   header, UTF-8 JSON (BackupHeader)
//     16 + H   N bytes   the state machine image (N = header.imageBytes; server/state snapshot())
//  16 + H + N  32 bytes  SHA-256 over everything before it (magic, version, header, image)
//
// The file is written as the stream arrives (header, then chunks), so the checksum is a
// trailer, not a header field. It covers the header too: restore trusts nothing it has not
// verified. The server's own SHA-256 over the image (the stream's trailer) is checked by the
// backup client before the file is renamed into place.
//
// Reading refuses, with a message that says what is wrong: another magic (not a backup),
// another version, a length that does not fit the file (truncated or trailing bytes), a
// checksum mismatch, a header that is not the expected shape.

import { createHash, type Hash } from "node:crypto";

export const BACKUP_MAGIC = Buffer.from("TNRBAKUP", "ascii");
export const BACKUP_FORMAT_VERSION = 1;
const PREAMBLE_BYTES = BACKUP_MAGIC.length + 4 + 4;
export const CHECKSUM_BYTES = 32;
/** A header with members listed is a few KiB; anything much larger is not one of ours. */
export const HEADER_BYTES_MAX = 1024 * 1024;

export interface BackupMember {
  readonly id: string;
  readonly address: string;
  readonly role: string;
}

/** What the leader said about the image (BackupHeader in cluster.proto), checked on read. */
export interface BackupHeader {
  readonly formatVersion: number;
  readonly clusterId: string;
  readonly appliedIndex: number;
  readonly term: number;
  readonly tokenEpoch: number;
  readonly lastToken: number;
  readonly lastLeaseId: number;
  readonly imageBytes: number;
  readonly members: readonly BackupMember[];
  readonly takenAtMs: number;
  readonly leaderId: string;
}

/** An expected refusal of a backup file or stream: the message is for the operator. */
export class BackupFormatError extends Error {
  override readonly name = "BackupFormatError";
}

/** The bytes before the image: magic, version, header length, header JSON. */
export function encodePreamble(header: BackupHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const fixed = Buffer.alloc(PREAMBLE_BYTES);
  BACKUP_MAGIC.copy(fixed, 0);
  fixed.writeUInt32BE(header.formatVersion, BACKUP_MAGIC.length);
  fixed.writeUInt32BE(json.length, BACKUP_MAGIC.length + 4);
  return Buffer.concat([fixed, json]);
}

/** The file checksum, fed as the file is written. */
export function fileHash(): Hash {
  return createHash("sha256");
}

export interface BackupFile {
  readonly header: BackupHeader;
  /** A view into the file's bytes (no copy). */
  readonly image: Uint8Array;
}

/** Parses and verifies a whole backup file; every problem is a BackupFormatError. */
export function decodeBackupFile(bytes: Uint8Array, source = "backup file"): BackupFile {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < PREAMBLE_BYTES || !buf.subarray(0, BACKUP_MAGIC.length).equals(BACKUP_MAGIC)) {
    throw new BackupFormatError(`${source} is not a Tenure backup (no ${BACKUP_MAGIC.toString("ascii")} magic at its start)`);
  }
  const version = buf.readUInt32BE(BACKUP_MAGIC.length);
  if (version !== BACKUP_FORMAT_VERSION) {
    throw new BackupFormatError(`${source} has backup format version ${version}; this tenured reads version ${BACKUP_FORMAT_VERSION} only`);
  }
  const headerBytes = buf.readUInt32BE(BACKUP_MAGIC.length + 4);
  if (headerBytes > HEADER_BYTES_MAX || PREAMBLE_BYTES + headerBytes + CHECKSUM_BYTES > buf.length) {
    throw truncated(source, PREAMBLE_BYTES + headerBytes + CHECKSUM_BYTES, buf.length, "its header");
  }
  const header = parseHeaderJson(buf.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + headerBytes), source);
  const imageStart = PREAMBLE_BYTES + headerBytes;
  const expected = imageStart + header.imageBytes + CHECKSUM_BYTES;
  if (buf.length < expected) throw truncated(source, expected, buf.length, "the image and checksum");
  if (buf.length > expected) {
    throw new BackupFormatError(`${source} has ${buf.length - expected} bytes after its checksum: not a file tenured wrote`);
  }
  const bodyEnd = imageStart + header.imageBytes;
  const actual = createHash("sha256").update(buf.subarray(0, bodyEnd)).digest();
  if (!actual.equals(buf.subarray(bodyEnd))) {
    throw new BackupFormatError(`${source} fails its SHA-256 checksum: the file is damaged; use another copy of the backup`);
  }
  return { header, image: buf.subarray(imageStart, bodyEnd) };
}

function truncated(source: string, expected: number, actual: number, what: string): BackupFormatError {
  return new BackupFormatError(`${source} is truncated: ${what} needs ${expected} bytes, the file has ${actual}`);
}

function parseHeaderJson(bytes: Uint8Array, source: string): BackupHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new BackupFormatError(`${source}: the header is not UTF-8 JSON`);
  }
  return checkHeader(raw, source);
}

/** Checks a header's shape and ranges (from a file, or built from the stream's BackupHeader). */
export function checkHeader(raw: unknown, source: string): BackupHeader {
  const bad = (what: string): BackupFormatError => new BackupFormatError(`${source}: header field ${what}`);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("(the header) must be an object");
  const o = raw as Record<string, unknown>;
  const uint = (key: string): number => {
    const v = o[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw bad(`${key} must be a safe integer >= 0`);
    return v;
  };
  const str = (key: string): string => {
    const v = o[key];
    if (typeof v !== "string") throw bad(`${key} must be a string`);
    return v;
  };
  const membersRaw = o["members"];
  if (!Array.isArray(membersRaw)) throw bad("members must be a list");
  const members = membersRaw.map((m: unknown, i) => {
    if (typeof m !== "object" || m === null) throw bad(`members[${i}] must be an object`);
    const r = m as Record<string, unknown>;
    if (typeof r["id"] !== "string" || typeof r["address"] !== "string" || typeof r["role"] !== "string") {
      throw bad(`members[${i}] needs id, address and role strings`);
    }
    return { id: r["id"], address: r["address"], role: r["role"] };
  });
  const header: BackupHeader = {
    formatVersion: uint("formatVersion"),
    clusterId: str("clusterId"),
    appliedIndex: uint("appliedIndex"),
    term: uint("term"),
    tokenEpoch: uint("tokenEpoch"),
    lastToken: uint("lastToken"),
    lastLeaseId: uint("lastLeaseId"),
    imageBytes: uint("imageBytes"),
    members,
    takenAtMs: uint("takenAtMs"),
    leaderId: str("leaderId"),
  };
  if (header.formatVersion !== BACKUP_FORMAT_VERSION) {
    throw new BackupFormatError(
      `${source} has backup format version ${header.formatVersion}; this tenured reads version ${BACKUP_FORMAT_VERSION} only`,
    );
  }
  return header;
}

/** A complete file in memory (tests, and small tools); the backup client streams instead. */
export function encodeBackupFile(header: BackupHeader, image: Uint8Array): Buffer {
  const preamble = encodePreamble(header);
  const hash = fileHash().update(preamble).update(image).digest();
  return Buffer.concat([preamble, image, hash]);
}
