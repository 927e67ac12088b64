import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import forge from "node-forge";
import { KeyPool, writeKeyPool } from "./dev_keys.ts";

const dir = mkdtempSync(join(tmpdir(), "tenure-dev-keys-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const modulusOf = (keys: forge.pki.rsa.KeyPair): string => keys.publicKey.n.toString(16);

describe("the test run's key pool", () => {
  it("hands out each pooled key once, in order, then new keys; every pair matches", async () => {
    const file = join(dir, "keys.pem");
    await writeKeyPool(file, 3);
    const text = readFileSync(file, "utf8");
    const pooled = (text.match(/BEGIN RSA PRIVATE KEY/g) ?? []).length;
    assert.equal(pooled, 3);
    const pool = KeyPool.parse(text);
    const taken = Array.from({ length: 5 }, () => pool.take());
    assert.equal(pool.left, 0);
    // The first three are the file's, in its order; the two after are new; no two are the same.
    const fileModuli = (text.match(/-----BEGIN RSA PRIVATE KEY-----[^-]+-----END RSA PRIVATE KEY-----/g) ?? []).map((pem) =>
      forge.pki.privateKeyFromPem(pem).n.toString(16),
    );
    assert.deepEqual(taken.slice(0, 3).map(modulusOf), fileModuli);
    assert.equal(new Set(taken.map(modulusOf)).size, 5);
    for (const keys of taken) {
      assert.equal(keys.publicKey.n.bitLength(), 2048);
      // The public half is the private key's own (a certificate signed with it verifies).
      const fromPrivate = createPublicKey(createPrivateKey(forge.pki.privateKeyToPem(keys.privateKey))).export({
        type: "spki",
        format: "pem",
      });
      assert.equal(forge.pki.publicKeyToPem(keys.publicKey).replace(/\r/g, ""), String(fromPrivate));
    }
  });

  it("an empty pool generates every key", () => {
    const pool = new KeyPool([]);
    assert.notEqual(modulusOf(pool.take()), modulusOf(pool.take()));
  });
});
