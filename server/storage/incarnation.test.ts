// <dataDir>/incarnation and <dataDir>/peer_incarnations: round trips, and every kind of damage
// refused (flipped byte, truncated, another file's line, wrong shape), never read as a value.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  INCARNATION_FILE_NAME,
  PEER_INCARNATIONS_FILE_NAME,
  decodeRecordLine,
  encodeRecordLine,
  isIncarnation,
  readIncarnation,
  readPeerIncarnations,
  writeIncarnation,
  writePeerIncarnations,
} from "./incarnation.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "tenure-incarnation-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => fs.mkdtempSync(path.join(root, `d${n++}-`));

const X = "0123456789abcdef0123456789abcdef";
const Y = "fedcba9876543210fedcba9876543210";

describe("incarnation file", () => {
  it("absent, then written and read back; no temp file is left", () => {
    const dir = freshDir();
    assert.deepEqual(readIncarnation(dir), { kind: "absent" });
    writeIncarnation(dir, X);
    assert.deepEqual(readIncarnation(dir), { kind: "ok", value: X });
    writeIncarnation(dir, Y);
    assert.deepEqual(readIncarnation(dir), { kind: "ok", value: Y });
    assert.deepEqual(fs.readdirSync(dir), [INCARNATION_FILE_NAME]);
  });
  it("refuses to write something that is not 128 bits of hex", () => {
    assert.throws(() => writeIncarnation(freshDir(), "not-an-incarnation"), /not an incarnation/);
    assert.equal(isIncarnation(X.toUpperCase()), false);
    assert.equal(isIncarnation(`${X}0`), false);
  });
  it("a flipped byte, a truncated file, another file's line or a wrong shape is corrupt", () => {
    const dir = freshDir();
    const file = path.join(dir, INCARNATION_FILE_NAME);
    writeIncarnation(dir, X);
    const good = fs.readFileSync(file, "utf8");
    const damaged = [
      good.replace(X, Y), // the checksum no longer matches
      good.slice(0, good.length - 5),
      "",
      encodeRecordLine("peer-incarnations", { incarnation: X }),
      encodeRecordLine("incarnation", { incarnation: "xyz" }),
      encodeRecordLine("incarnation", [X]),
    ];
    for (const text of damaged) {
      fs.writeFileSync(file, text);
      const r = readIncarnation(dir);
      assert.equal(r.kind, "corrupt", JSON.stringify(text));
    }
  });
  it("decodeRecordLine says why", () => {
    const line = encodeRecordLine("incarnation", { incarnation: X });
    assert.deepEqual(decodeRecordLine("incarnation", line), { value: { incarnation: X } });
    assert.equal(decodeRecordLine("incarnation", line.replace("crc32=", "crc32=z")), "malformed checksum field");
    assert.equal(decodeRecordLine("incarnation", line.replace('"}', '" }')), "checksum mismatch");
    assert.equal(decodeRecordLine("other", line), "not a other line");
  });
});

describe("peer_incarnations file", () => {
  it("round trips a table, sorted by id; an empty table too", () => {
    const dir = freshDir();
    assert.deepEqual(readPeerIncarnations(dir), { kind: "absent" });
    writePeerIncarnations(
      dir,
      new Map([
        ["c", Y],
        ["b", X],
      ]),
    );
    const r = readPeerIncarnations(dir);
    assert.equal(r.kind, "ok");
    assert.deepEqual(r.kind === "ok" ? [...r.value] : [], [
      ["b", X],
      ["c", Y],
    ]);
    writePeerIncarnations(dir, new Map());
    const empty = readPeerIncarnations(dir);
    assert.equal(empty.kind === "ok" ? empty.value.size : -1, 0);
  });
  it("a damaged table or a bad entry is corrupt", () => {
    const dir = freshDir();
    const file = path.join(dir, PEER_INCARNATIONS_FILE_NAME);
    writePeerIncarnations(dir, new Map([["b", X]]));
    const good = fs.readFileSync(file, "utf8");
    for (const text of [
      good.replace('"b"', '"d"'),
      encodeRecordLine("peer-incarnations", { peers: { b: "short" } }),
      encodeRecordLine("peer-incarnations", { peers: { "": X } }),
      encodeRecordLine("peer-incarnations", { peers: [X] }),
      encodeRecordLine("incarnation", { peers: { b: X } }),
    ]) {
      fs.writeFileSync(file, text);
      assert.equal(readPeerIncarnations(dir).kind, "corrupt", text);
    }
  });
});
