// Validates SQLite's write-ahead log ourselves, before SQLite opens it.
//
// Why: at recovery SQLite reads the WAL's frame chain up to the first frame whose checksum or
// salts do not match, and treats everything after it as never written. That is right for a torn
// tail (a crash while a transaction was being appended: nothing after it was acknowledged) and
// silently wrong for damage in the middle: the member would start with a shorter log, and an
// older term and vote, than it acknowledged. So we tell the two apart first, and the store
// refuses a WAL whose damage is followed by frames that prove later commits were written.
//
// Format (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte header, then frames of a
// 24-byte header plus one page. Header fields are big-endian; the checksum's 32-bit words are
// big-endian if the magic is 0x377f0683, little-endian if 0x377f0682. The checksum is
// cumulative: the header's covers its first 24 bytes from (0, 0); frame i's covers its first 8
// header bytes and its page, seeded with frame i-1's checksum (the header's for frame 1). A frame
// is valid when its salts equal the header's and its checksum matches.
//
// Telling damage from a torn tail without trusting the broken link: after an invalid frame we
// keep checking each following frame against the checksum STORED in the frame before it. A frame
// that verifies that way was written by SQLite after the frame before it was complete, so the
// invalid frame was damaged after it was written, not torn while being written. The proof we
// accept is such a frame that is also a commit frame (non-zero "database size after commit"):
// a later transaction was committed on top of the damage. A re-verifying frame that is not a
// commit is not proof: stale frames of a transaction that crashed before its commit, then partly
// overwritten by the next transaction after recovery, chain among themselves exactly like that.
//
// Limits (README "what is not detected"): damage confined to frames after the last commit that
// any later frame vouches for (the last transaction or transactions) looks exactly like a torn
// tail; so does a WAL cut at any point. The ack record (ack_record.ts) bounds both. A header whose
// salts were damaged cannot be tied to its frames and is reported as ignored, not proven corrupt.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
const MAGIC_LITTLE_ENDIAN = 0x377f0682;
const MAGIC_BIG_ENDIAN = 0x377f0683;
const FORMAT_VERSION = 3007000;
const PAGE_SIZE_BYTES_MIN = 512;
const PAGE_SIZE_BYTES_MAX = 65536;

export interface WalSalts {
  readonly salt1: number;
  readonly salt2: number;
}

/** What the chain holds; frames are numbered from 1 as in SQLite. */
export interface WalChain {
  readonly bytes: number;
  readonly pageSizeBytes: number;
  readonly salts: WalSalts;
  /** Complete frames in the file (any salts). */
  readonly frames: number;
  /** Frames of the unbroken chain from frame 1 (SQLite reads at most these). */
  readonly chainFrames: number;
  /** The last commit frame of the unbroken chain: what SQLite will recover; 0 if none. */
  readonly lastCommitFrame: number;
}

export type WalCheck =
  | { readonly kind: "absent" }
  /** Shorter than a header (0 bytes after a TRUNCATE checkpoint): SQLite reads no frame. */
  | { readonly kind: "empty"; readonly bytes: number }
  /** A header that does not verify and that no frame vouches for: SQLite reads no frame. */
  | { readonly kind: "headerIgnored"; readonly bytes: number; readonly detail: string }
  /** Every frame with the current salts is valid and the last one is a commit. */
  | ({ readonly kind: "clean" } & WalChain)
  /** Invalid or uncommitted frames after the last commit only: what a crash leaves. */
  | ({ readonly kind: "tornTail"; readonly tornAtFrame: number; readonly tornAtOffsetBytes: number } & WalChain)
  /** Damage followed by a later commit: acknowledged data SQLite would silently drop. */
  | {
      readonly kind: "corrupt";
      /** The first invalid frame (0 = the header). */
      readonly frame: number;
      readonly offsetBytes: number;
      readonly detail: string;
      /**
       * The end of the last valid commit frame of the unbroken chain from frame 1 (0 with a damaged
       * header): what SQLite itself would read. A store that recovers (sqlite_storage.ts) cuts the
       * WAL there, after keeping a copy, so that SQLite and this check then agree on it.
       */
      readonly cutAtBytes: number;
    };

interface Header {
  readonly bigEndian: boolean;
  readonly pageSizeBytes: number;
  readonly salts: WalSalts;
  /** The checksum the header stores (seed for frame 1). */
  readonly stored: readonly [number, number];
  /** null when the header verifies, else why not. */
  readonly problem: string | null;
}

/**
 * Reads `walPath` frame by frame (one page buffer, so a large WAL costs no large allocation).
 * `pageSizeBytesHint` (from raft.db's header) is used only when the WAL header is unreadable.
 */
export function checkWal(walPath: string, pageSizeBytesHint: number | null = null): WalCheck {
  let fd: number;
  try {
    fd = openSync(walPath, "r");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return { kind: "absent" };
    throw error;
  }
  try {
    const bytes = fstatSync(fd).size;
    if (bytes < WAL_HEADER_BYTES) return { kind: "empty", bytes };
    const raw = new Uint8Array(WAL_HEADER_BYTES);
    readExactly(fd, raw, 0);
    return scanFrames(fd, bytes, parseHeader(raw, pageSizeBytesHint));
  } finally {
    closeSync(fd);
  }
}

/** The salts in a WAL file's header (no verification), or null when it has none. */
export function readWalSalts(walPath: string): { readonly salts: WalSalts | null; readonly bytes: number } | null {
  let fd: number;
  try {
    fd = openSync(walPath, "r");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
  try {
    const bytes = fstatSync(fd).size;
    if (bytes < WAL_HEADER_BYTES) return { salts: null, bytes };
    const raw = new Uint8Array(WAL_HEADER_BYTES);
    readExactly(fd, raw, 0);
    const view = new DataView(raw.buffer);
    return { salts: { salt1: view.getUint32(16), salt2: view.getUint32(20) }, bytes };
  } finally {
    closeSync(fd);
  }
}

function parseHeader(raw: Uint8Array, pageSizeBytesHint: number | null): Header {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = view.getUint32(0);
  const version = view.getUint32(4);
  const pageSizeField = view.getUint32(8);
  const salts = { salt1: view.getUint32(16), salt2: view.getUint32(20) };
  const stored: [number, number] = [view.getUint32(24), view.getUint32(28)];
  const pageSizeValid = isPageSize(pageSizeField);
  const pageSizeBytes = pageSizeValid ? pageSizeField : (pageSizeBytesHint ?? 4096);
  const base = { pageSizeBytes, salts, stored };
  if (magic !== MAGIC_LITTLE_ENDIAN && magic !== MAGIC_BIG_ENDIAN) {
    // Which byte order the writer used is lost with the magic: the scan tries both.
    return { ...base, bigEndian: false, problem: `bad magic 0x${magic.toString(16)}` };
  }
  const bigEndian = magic === MAGIC_BIG_ENDIAN;
  if (version !== FORMAT_VERSION) return { ...base, bigEndian, problem: `format version ${version}` };
  if (!pageSizeValid) return { ...base, bigEndian, problem: `page size ${pageSizeField}` };
  const [c1, c2] = walChecksum([0, 0], raw.subarray(0, 24), bigEndian);
  if (c1 !== stored[0] || c2 !== stored[1]) return { ...base, bigEndian, problem: "header checksum mismatch" };
  return { ...base, bigEndian, problem: null };
}

function scanFrames(fd: number, bytes: number, header: Header): WalCheck {
  if (header.problem === null) return scanChain(fd, bytes, header);
  // SQLite ignores a WAL whose header does not verify. Ignoring it is only safe if nothing in the
  // file proves the header was good once: a commit frame that verifies against it.
  const orders = header.problem.startsWith("bad magic") ? [false, true] : [header.bigEndian];
  for (const bigEndian of orders) {
    const result = scanChain(fd, bytes, { ...header, bigEndian, problem: null });
    const vouched = result.kind === "corrupt" || ((result.kind === "clean" || result.kind === "tornTail") && result.lastCommitFrame > 0);
    if (vouched) {
      const detail = `WAL header damaged (${header.problem}), yet commit frames verify against it`;
      return { kind: "corrupt", frame: 0, offsetBytes: 0, detail, cutAtBytes: 0 };
    }
  }
  return { kind: "headerIgnored", bytes, detail: header.problem };
}

/** Walks every complete frame; see the file comment for the re-verification rule. */
function scanChain(fd: number, bytes: number, header: Header): WalCheck {
  const frameBytes = WAL_FRAME_HEADER_BYTES + header.pageSizeBytes;
  const frames = Math.floor((bytes - WAL_HEADER_BYTES) / frameBytes);
  const buffer = new Uint8Array(frameBytes);
  const view = new DataView(buffer.buffer);
  let seed: readonly [number, number] = header.stored;
  let chainFrames = 0;
  let lastCommitFrame = 0;
  let firstBreak = 0; // first frame with the current salts (or any) that is not valid
  let firstBreakWhy = "";
  let uncommittedAfterLastCommit = false;
  for (let frame = 1; frame <= frames; frame++) {
    readExactly(fd, buffer, WAL_HEADER_BYTES + (frame - 1) * frameBytes);
    const salt1 = view.getUint32(8);
    const salt2 = view.getUint32(12);
    const stored: [number, number] = [view.getUint32(16), view.getUint32(20)];
    const saltsMatch = salt1 === header.salts.salt1 && salt2 === header.salts.salt2;
    const isCommit = view.getUint32(4) !== 0;
    const sum = walChecksum(walChecksum(seed, buffer.subarray(0, 8), header.bigEndian), buffer.subarray(24), header.bigEndian);
    const valid = saltsMatch && sum[0] === stored[0] && sum[1] === stored[1];
    if (firstBreak === 0) {
      if (valid) {
        chainFrames = frame;
        if (isCommit) lastCommitFrame = frame;
        uncommittedAfterLastCommit = !isCommit;
      } else {
        firstBreak = frame;
        firstBreakWhy = saltsMatch ? "checksum mismatch" : "salts do not match the header";
      }
    } else if (valid && isCommit) {
      return {
        kind: "corrupt",
        frame: firstBreak,
        offsetBytes: WAL_HEADER_BYTES + (firstBreak - 1) * frameBytes,
        detail: `frame ${firstBreak}: ${firstBreakWhy}, yet commit frame ${frame} (byte offset ${
          WAL_HEADER_BYTES + (frame - 1) * frameBytes
        }) was written after it`,
        cutAtBytes: WAL_HEADER_BYTES + lastCommitFrame * frameBytes,
      };
    }
    seed = stored; // the next frame was chained to what this frame stores, damaged or not
  }
  const chain = { bytes, pageSizeBytes: header.pageSizeBytes, salts: header.salts, frames, chainFrames, lastCommitFrame };
  const partialBytes = (bytes - WAL_HEADER_BYTES) % frameBytes;
  // Frames with other salts after the chain are an older generation's, left when SQLite restarted
  // the WAL from its beginning: normal. A break with the current salts is a torn tail.
  const brokeWithCurrentSalts = firstBreak !== 0 && firstBreakWhy === "checksum mismatch";
  const tornAtFrame = uncommittedAfterLastCommit
    ? lastCommitFrame + 1
    : brokeWithCurrentSalts
      ? firstBreak
      : firstBreak === 0 && partialBytes !== 0
        ? frames + 1
        : 0;
  if (tornAtFrame === 0) return { kind: "clean", ...chain };
  return { kind: "tornTail", tornAtFrame, tornAtOffsetBytes: WAL_HEADER_BYTES + (tornAtFrame - 1) * frameBytes, ...chain };
}

/**
 * SQLite's WAL checksum: over 32-bit words x[0..n) (n even, byte order per the magic),
 * s0 += x[i] + s1; s1 += x[i+1] + s0, modulo 2^32, starting from `seed`.
 */
export function walChecksum(seed: readonly [number, number], bytes: Uint8Array, bigEndian: boolean): [number, number] {
  if (bytes.length % 8 !== 0) throw new RangeError(`WAL checksum over ${bytes.length} bytes (not a multiple of 8)`);
  let s0 = seed[0];
  let s1 = seed[1];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const littleEndian = !bigEndian;
  for (let i = 0; i < bytes.length; i += 8) {
    s0 = (s0 + view.getUint32(i, littleEndian) + s1) >>> 0;
    s1 = (s1 + view.getUint32(i + 4, littleEndian) + s0) >>> 0;
  }
  return [s0, s1];
}

function isPageSize(value: number): boolean {
  return value >= PAGE_SIZE_BYTES_MIN && value <= PAGE_SIZE_BYTES_MAX && (value & (value - 1)) === 0;
}

function readExactly(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error(`short read at byte ${position + done}`);
    done += n;
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}
