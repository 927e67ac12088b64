import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checksumOf, crc32, crc32Update } from "./checksum.ts";

describe("crc32", () => {
  it("matches the IEEE check value and continues across chunks", () => {
    const text = new TextEncoder().encode("123456789");
    assert.equal(crc32(text), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
    assert.equal(crc32Update(crc32(text.subarray(0, 4)), text.subarray(4)), 0xcbf43926);
  });

  it("frames fields so shifted boundaries and types differ", () => {
    assert.notEqual(checksumOf(["ab", "c"]), checksumOf(["a", "bc"]));
    assert.notEqual(checksumOf([1]), checksumOf(["1"]));
    assert.notEqual(checksumOf([new Uint8Array([1])]), checksumOf([new Uint8Array([2])]));
    const fields = ["x", 7, new Uint8Array([1, 2])] as const;
    assert.equal(checksumOf(fields), checksumOf(["x", 7, Uint8Array.of(1, 2)]));
  });
});
