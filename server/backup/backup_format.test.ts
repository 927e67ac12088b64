import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sampleBackup } from "../../testing/kits/backup_samples.ts";
import { BACKUP_FORMAT_VERSION, BackupFormatError, CHECKSUM_BYTES, decodeBackupFile, encodeBackupFile } from "./backup_format.ts";

const members = [{ id: "a", address: "127.0.0.1:7001", role: "voter" as const }];
const sample = () => sampleBackup({ members, takenAtMs: 1_800_000_000_000 });

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
    const { header, image } = sample();
    const decoded = decodeBackupFile(encodeBackupFile(header, image));
    assert.deepEqual(decoded.header, header);
    assert.deepEqual(Buffer.from(decoded.image), Buffer.from(image));
  });

  it("a flipped bit anywhere (magic aside) fails the checksum, header included", () => {
    const { header, image } = sample();
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
    const { header, image } = sample();
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
    const { header, image } = sample();
    const file = Buffer.from(encodeBackupFile(header, image));
    file.writeUInt32BE(BACKUP_FORMAT_VERSION + 1, 8);
    assert.equal(refusal(file), `f.bak has backup format version 2; this tenured reads version ${BACKUP_FORMAT_VERSION} only`);
  });

  it("a file that is not a backup says so", () => {
    assert.match(refusal(Buffer.from("SQLite format 3\0 and then some more bytes to be long enough")), /f\.bak is not a Tenure backup/);
  });

  it("a header of the wrong shape is refused, even with a matching checksum", () => {
    const { header, image } = sample();
    const bad = { ...header, lastToken: -1 };
    assert.match(refusal(encodeBackupFile(bad, image)), /header field lastToken must be a safe integer >= 0/);
  });
});
