import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_STATE_CONFIG } from "../state/limits.ts";
import { LockStateMachine } from "../state/machine.ts";
import {
  BACKUP_FORMAT_VERSION,
  BackupFormatError,
  CHECKSUM_BYTES,
  decodeBackupFile,
  encodeBackupFile,
  type BackupHeader,
} from "./backup_format.ts";

/** A real state image (no tables, counters as given) and the header that describes it. */
function sampleBackup(ids = { lastToken: 41, lastLeaseId: 0 }): { header: BackupHeader; image: Uint8Array } {
  const machine = new LockStateMachine(DEFAULT_STATE_CONFIG, {
    appliedIndex: 17,
    nowMs: 90_000,
    timersTerm: 3,
    ids,
    leases: [],
    locks: [],
    elections: [],
    sessions: [],
    idle: [],
  });
  const image = machine.snapshot();
  const tokens = machine.tokens();
  const header: BackupHeader = {
    formatVersion: BACKUP_FORMAT_VERSION,
    clusterId: "old",
    appliedIndex: 17,
    term: 3,
    tokenEpoch: tokens.epoch,
    lastToken: tokens.lastToken,
    lastLeaseId: tokens.lastLeaseId,
    imageBytes: image.length,
    members: [{ id: "a", address: "127.0.0.1:7001", role: "voter" }],
    takenAtMs: 1_800_000_000_000,
    leaderId: "a",
  };
  return { header, image };
}

function refusal(bytes: Uint8Array): string {
  try {
    decodeBackupFile(bytes, "f.bak");
  } catch (error) {
    assert.ok(error instanceof BackupFormatError, `a BackupFormatError, got ${String(error)}`);
    return error.message;
  }
  assert.fail("the file was accepted");
}

describe("backup file format", () => {
  it("round-trips header and image", () => {
    const { header, image } = sampleBackup();
    const decoded = decodeBackupFile(encodeBackupFile(header, image));
    assert.deepEqual(decoded.header, header);
    assert.deepEqual(Buffer.from(decoded.image), Buffer.from(image));
  });

  it("a flipped bit anywhere (magic aside) fails the checksum, header included", () => {
    const { header, image } = sampleBackup();
    const file = encodeBackupFile(header, image);
    const headerAt = file.indexOf(Buffer.from('"lastToken":41'));
    const imageAt = file.length - CHECKSUM_BYTES - 10;
    for (const at of [headerAt + 12, imageAt, file.length - 1]) {
      const damaged = Buffer.from(file);
      damaged[at] = (damaged[at] ?? 0) ^ 0x01;
      assert.match(refusal(damaged), /f\.bak fails its SHA-256 checksum: the file is damaged/, `byte ${at}`);
    }
  });

  it("a truncated file names what is missing", () => {
    const { header, image } = sampleBackup();
    const file = encodeBackupFile(header, image);
    assert.match(
      refusal(file.subarray(0, file.length - 1)),
      /f\.bak is truncated: the image and checksum needs \d+ bytes, the file has \d+/,
    );
    assert.match(refusal(file.subarray(0, 20)), /f\.bak is truncated: its header needs/);
    assert.match(refusal(file.subarray(0, 5)), /not a Tenure backup/);
    assert.match(refusal(Buffer.concat([file, Buffer.from("x")])), /1 bytes after its checksum/);
  });

  it("another format version is refused by name, before anything else is read", () => {
    const { header, image } = sampleBackup();
    const file = Buffer.from(encodeBackupFile(header, image));
    file.writeUInt32BE(BACKUP_FORMAT_VERSION + 1, 8);
    assert.equal(refusal(file), `f.bak has backup format version 2; this tenured reads version ${BACKUP_FORMAT_VERSION} only`);
  });

  it("a file that is not a backup says so", () => {
    assert.match(refusal(Buffer.from("SQLite format 3\0 and then some more bytes to be long enough")), /f\.bak is not a Tenure backup/);
  });

  it("a header of the wrong shape is refused, even with a matching checksum", () => {
    const { header, image } = sampleBackup();
    const bad = { ...header, lastToken: -1 };
    assert.match(refusal(encodeBackupFile(bad, image)), /header field lastToken must be a safe integer >= 0/);
  });
});
