// The per-connection peer certificate memo over real TLS sockets on loopback: one object per TLS
// 1.3 connection, a new one per connection, never remembered on TLS 1.2 (renegotiation could
// change it) nor for a detailed chain.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, createServer, type PeerCertificate, type TLSSocket } from "node:tls";
import { ensureDevCertificates, type DevCertificates } from "../../tools/dev_certs.ts";
import { certificateIdentity } from "../auth/identity.ts";
import { installPeerCertificateMemo } from "./peer_certificate_memo.ts";

let dir = "";
let certs: DevCertificates;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "tenure-cert-memo-"));
  certs = ensureDevCertificates(dir, { memberIds: ["a"], clientIdentities: ["alice"] });
  installPeerCertificateMemo();
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Opens one mutual-TLS connection and hands the server's socket to `inspect`. */
async function onServerSocket<T>(maxVersion: "TLSv1.3" | "TLSv1.2", inspect: (socket: TLSSocket) => T): Promise<T> {
  const read = (f: string) => readFileSync(f);
  const server = createServer({
    ca: read(certs.caFile),
    cert: read(certs.members["a"]!.certFile),
    key: read(certs.members["a"]!.keyFile),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    maxVersion,
  });
  const result = new Promise<T>((resolve, reject) => {
    server.once("secureConnection", (socket: TLSSocket) => {
      try {
        resolve(inspect(socket));
      } catch (error) {
        reject(error);
      }
      socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const client = connect({
    host: "127.0.0.1",
    port,
    ca: read(certs.caFile),
    cert: read(certs.clients["alice"]!.certFile),
    key: read(certs.clients["alice"]!.keyFile),
    servername: "a",
    checkServerIdentity: () => undefined,
  });
  client.on("error", () => {});
  try {
    return await result;
  } finally {
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("peer certificate memo", () => {
  it("TLS 1.3: the same certificate object for every call on one connection, and its identity read once", async () => {
    const seen = await onServerSocket("TLSv1.3", (socket) => {
      assert.equal(socket.getProtocol(), "TLSv1.3");
      const first = socket.getPeerCertificate();
      const second = socket.getPeerCertificate();
      assert.equal(first, second, "remembered");
      assert.ok(first.raw.length > 0);
      assert.equal(certificateIdentity(first), certificateIdentity(second), "identity read once per certificate object");
      assert.deepEqual(certificateIdentity(first), { ok: true, identity: "alice" });
      const detailed = socket.getPeerCertificate(true);
      assert.notEqual(detailed, first, "a detailed chain is never the remembered object");
      assert.notEqual(socket.getPeerCertificate(true), detailed);
      return first;
    });
    const other = await onServerSocket("TLSv1.3", (socket) => socket.getPeerCertificate());
    assert.notEqual(other, seen, "a new connection reads its own certificate");
    assert.equal(other.fingerprint256, seen.fingerprint256);
  });

  it("TLS 1.2: never remembered (a renegotiation could present another certificate)", async () => {
    const [first, second] = await onServerSocket("TLSv1.2", (socket): [PeerCertificate, PeerCertificate] => {
      assert.equal(socket.getProtocol(), "TLSv1.2");
      return [socket.getPeerCertificate(), socket.getPeerCertificate()];
    });
    assert.notEqual(first, second);
    assert.equal(first.fingerprint256, second.fingerprint256);
  });
});
