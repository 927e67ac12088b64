// RSA key pairs for tools/dev_certs.ts. A new 2048-bit key costs about 0.1-0.2 s of CPU, and a test
// process that issues a CA and its certificates made eight or more: a second of CPU in every
// real-process test file, the largest part of a small file's cost. So the test runner
// (testing/run_tests.ts) generates a pool of keys once per run and names its file in
// TEST_DEV_KEY_POOL; each process then takes the pool's keys in order, every key at most once
// (two certificates of one process never share a key, so a second CA in the same test is a
// different CA), and generates new keys once it has used them all. Processes do not share
// anything but the file: two test files may hold the same key in their separate CAs, which never
// meet. Without the variable (npm start, the bench, production) every key is new.

import { generateKeyPair } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import forge from "node-forge";

const KEY_BITS = 2048;

/** Test runs only: the file of PEM private keys (PKCS#1) that newKeyPair() takes first. */
export const TEST_KEY_POOL_ENV = "TEST_DEV_KEY_POOL";

const PEM_BLOCK = /-----BEGIN RSA PRIVATE KEY-----[^-]+-----END RSA PRIVATE KEY-----/g;

/** Hands out the keys of a pool file in order, each once, then new ones. */
export class KeyPool {
  private next = 0;

  constructor(private readonly pems: readonly string[]) {}

  static parse(text: string): KeyPool {
    return new KeyPool(text.match(PEM_BLOCK) ?? []);
  }

  /** How many pooled keys are left. */
  get left(): number {
    return this.pems.length - this.next;
  }

  take(): forge.pki.rsa.KeyPair {
    const pem = this.pems[this.next];
    if (pem === undefined) return forge.pki.rsa.generateKeyPair({ bits: KEY_BITS });
    this.next++;
    const privateKey = forge.pki.privateKeyFromPem(pem);
    return { privateKey, publicKey: forge.pki.setRsaPublicKey(privateKey.n, privateKey.e) };
  }
}

let processPool: KeyPool | null = null;

/** A key pair no other certificate of this process has: the run's pool's next, else a new one. */
export function newKeyPair(): forge.pki.rsa.KeyPair {
  if (processPool === null) {
    const file = process.env[TEST_KEY_POOL_ENV];
    processPool = file === undefined || file === "" ? new KeyPool([]) : KeyPool.parse(readFileSync(file, "utf8"));
  }
  return processPool.take();
}

/** Writes `count` new keys to `file` for TEST_DEV_KEY_POOL, generated on libuv's threads. */
export async function writeKeyPool(file: string, count: number): Promise<void> {
  const one = (): Promise<string> =>
    new Promise((resolve, reject) =>
      generateKeyPair(
        "rsa",
        {
          modulusLength: KEY_BITS,
          publicKeyEncoding: { type: "spki", format: "pem" },
          privateKeyEncoding: { type: "pkcs1", format: "pem" },
        },
        (error, _publicKey, privateKey) => (error ? reject(error) : resolve(privateKey)),
      ),
    );
  const keys = await Promise.all(Array.from({ length: count }, one));
  writeFileSync(file, keys.join(""), { mode: 0o600 });
}
