// server/tls with real certificates (tools/dev_certs.ts) over real gRPC on loopback: mutual TLS is
// required, TLS 1.2 is refused unless configured, and a certificate or CA bundle rotated on disk
// is in force for the next connection on both sides (SIGHUP-style reload and the file watch),
// while a half-written rotation keeps the last good material.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ensureDevCertificates, issueClientCertificate, issueMemberCertificate, type DevCertificates } from "../../tools/dev_certs.ts";
import { CertificateReloader, TlsLoadError } from "./cert_reloader.ts";
import { ReloadingChannelCredentials, ReloadingServerCredentials } from "./credentials.ts";
import { ConfigError } from "../config.ts";
import { startMemberTls } from "./member_tls.ts";
import { loadTlsMaterial, type TlsFiles, type TlsMinVersion } from "./tls_material.ts";

const root = mkdtempSync(join(tmpdir(), "tenure-tls-"));
after(() => rmSync(root, { recursive: true, force: true }));

const ECHO_PATH = "/tenure.test.Echo/Who";
const pass = (b: Buffer): Buffer => b;

/** A server whose one method answers with the serial of the client certificate it saw. */
async function startEcho(creds: grpc.ServerCredentials): Promise<{ address: string; server: grpc.Server }> {
  const server = new grpc.Server();
  const definition: grpc.ServiceDefinition = {
    Who: {
      path: ECHO_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: pass,
      requestDeserialize: pass,
      responseSerialize: pass,
      responseDeserialize: pass,
    },
  };
  server.addService(definition, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
      done(null, Buffer.from(call.getAuthContext().sslPeerCertificate?.serialNumber ?? "none")),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, server };
}

/** One call on a fresh connection (a local subchannel pool: no connection shared with earlier calls). */
function who(address: string, creds: grpc.ChannelCredentials, options: grpc.ChannelOptions = {}): Promise<string> {
  const client = new grpc.Client(address, creds, { "grpc.use_local_subchannel_pool": 1, ...options });
  return new Promise<string>((resolve, reject) => {
    client.makeUnaryRequest(ECHO_PATH, pass, pass, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e, r) => {
      client.close();
      if (e) reject(e);
      else resolve(r?.toString() ?? "");
    });
  });
}

/** The serial of the certificate the server presents to a raw TLS connection. */
function serverSerial(address: string, o: { ca: Buffer; cert: Buffer; key: Buffer; maxVersion?: "TLSv1.2" }): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port: Number(port), ...o, servername: "localhost", ALPNProtocols: ["h2"] }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.destroy();
      resolve(serial);
    });
    s.once("error", reject);
  });
}

const serialOf = (file: string): string => new X509Certificate(readFileSync(file)).serialNumber;

function filesOf(certs: DevCertificates, member: string, minVersion: TlsMinVersion = "TLSv1.3"): TlsFiles {
  const own = certs.members[member];
  assert.ok(own);
  return { caFile: certs.caFile, certFile: own.certFile, keyFile: own.keyFile, minVersion };
}

const quiet = (lines: Record<string, unknown>[]) => (f: Record<string, unknown>) => void lines.push(f);

describe("server/tls", () => {
  let certs: DevCertificates;
  let other: DevCertificates;
  before(() => {
    certs = ensureDevCertificates(join(root, "ca1"), { memberIds: ["a", "b"], clientIdentities: ["alice"] });
    other = ensureDevCertificates(join(root, "ca2"), { memberIds: ["a"], clientIdentities: ["mallory"] });
  });

  it("loads a consistent set and refuses a mismatched key, another CA's certificate, an expired one, a missing file", () => {
    const good = loadTlsMaterial(filesOf(certs, "a"));
    assert.ok(good.ok);
    assert.match(good.material.summary.subjectAltName, /URI:urn:tenure:member:a/);
    const mismatch = loadTlsMaterial({ ...filesOf(certs, "a"), keyFile: certs.members.b?.keyFile ?? "" });
    assert.ok(!mismatch.ok && /is not the key of/.test(mismatch.reason));
    const foreign = loadTlsMaterial({ ...filesOf(other, "a"), caFile: certs.caFile });
    assert.ok(!foreign.ok && /not issued by a CA/.test(foreign.reason));
    const expired = issueMemberCertificate("a", { dir: join(root, "ca1"), stem: "expired-a", validDays: -1 });
    const old = loadTlsMaterial({ ...filesOf(certs, "a"), ...expired });
    assert.ok(!old.ok && /expired/.test(old.reason));
    const missing = loadTlsMaterial({ ...filesOf(certs, "a"), caFile: join(root, "nope.pem") });
    assert.ok(!missing.ok && /nope\.pem/.test(missing.reason));
    assert.throws(
      () => new CertificateReloader({ files: { ...filesOf(certs, "a"), caFile: join(root, "nope.pem") }, log: () => {} }),
      TlsLoadError,
    );
  });

  it("requires a client certificate from the CA; refuses plaintext, no certificate, another CA, TLS 1.2", async () => {
    const reloader = new CertificateReloader({ files: filesOf(certs, "a"), log: () => {} });
    const { address, server } = await startEcho(new ReloadingServerCredentials(reloader));
    try {
      const peer = new CertificateReloader({ files: filesOf(certs, "b"), log: () => {} });
      assert.equal(await who(address, new ReloadingChannelCredentials(peer)), serialOf(certs.members.b?.certFile ?? ""));
      const ca = readFileSync(certs.caFile);
      await assert.rejects(who(address, grpc.credentials.createInsecure()), { code: grpc.status.UNAVAILABLE });
      await assert.rejects(who(address, grpc.credentials.createSsl(ca)), { code: grpc.status.UNAVAILABLE });
      const m = other.clients.mallory;
      assert.ok(m);
      const foreign = grpc.credentials.createSsl(ca, readFileSync(m.keyFile), readFileSync(m.certFile));
      await assert.rejects(who(address, foreign), { code: grpc.status.UNAVAILABLE });
      const alice = { ca, cert: readFileSync(certs.clients.alice?.certFile ?? ""), key: readFileSync(certs.clients.alice?.keyFile ?? "") };
      await serverSerial(address, alice);
      await assert.rejects(serverSerial(address, { ...alice, maxVersion: "TLSv1.2" }), /version|protocol/i);
    } finally {
      server.forceShutdown();
    }
  });

  it("accepts TLS 1.2 only with --tls-min-version TLSv1.2", async () => {
    const reloader = new CertificateReloader({ files: filesOf(certs, "a", "TLSv1.2"), log: () => {} });
    const { address, server } = await startEcho(new ReloadingServerCredentials(reloader));
    try {
      const alice = certs.clients.alice;
      assert.ok(alice);
      const o = { ca: readFileSync(certs.caFile), cert: readFileSync(alice.certFile), key: readFileSync(alice.keyFile) };
      assert.equal(await serverSerial(address, { ...o, maxVersion: "TLSv1.2" }), serialOf(filesOf(certs, "a").certFile));
    } finally {
      server.forceShutdown();
    }
  });

  it("a rotated certificate is presented by new connections on both sides after reload(); a half-written rotation is not", async () => {
    const dir = join(root, "ca1");
    const lines: Record<string, unknown>[] = [];
    const sFiles = issueMemberCertificate("a", { dir, stem: "rot-a" });
    const cFiles = issueMemberCertificate("b", { dir, stem: "rot-b" });
    const serverReloader = new CertificateReloader({ files: { ...filesOf(certs, "a"), ...sFiles }, log: quiet(lines) });
    const clientReloader = new CertificateReloader({ files: { ...filesOf(certs, "b"), ...cFiles }, log: quiet(lines) });
    const { address, server } = await startEcho(new ReloadingServerCredentials(serverReloader));
    const channel = new ReloadingChannelCredentials(clientReloader);
    const alice = certs.clients.alice;
    assert.ok(alice);
    const raw = { ca: readFileSync(certs.caFile), cert: readFileSync(alice.certFile), key: readFileSync(alice.keyFile) };
    try {
      const s1 = await serverSerial(address, raw);
      const c1 = await who(address, channel);
      assert.equal(c1, serialOf(cFiles.certFile));
      issueMemberCertificate("a", { dir, stem: "rot-a" });
      issueMemberCertificate("b", { dir, stem: "rot-b" });
      assert.equal(serverReloader.reload(), "reloaded");
      assert.equal(clientReloader.reload(), "reloaded");
      const s2 = await serverSerial(address, raw);
      assert.notEqual(s2, s1);
      assert.equal(s2, serialOf(sFiles.certFile));
      assert.equal(await who(address, channel), serialOf(cFiles.certFile));
      assert.equal(serverReloader.reload(), "unchanged");
      // The certificate written, its key not yet: refused, the last good pair stays in force.
      const next = issueMemberCertificate("a", { dir, stem: "next-a" });
      copyFileSync(next.certFile, sFiles.certFile);
      assert.equal(serverReloader.reload(), "failed");
      assert.equal(await serverSerial(address, raw), s2);
      assert.ok(lines.some((l) => l["event"] === "tls_reload_failed" && /is not the key of/.test(String(l["reason"]))));
      copyFileSync(next.keyFile, sFiles.keyFile);
      assert.equal(serverReloader.reload(), "reloaded");
      assert.equal(await serverSerial(address, raw), serialOf(next.certFile));
      assert.deepEqual(serverReloader.counts(), { reloadsTotal: 2, reloadFailuresTotal: 1 });
      // The new context keeps the port's rules: a client certificate required, TLS 1.3 only.
      await assert.rejects(who(address, grpc.credentials.createSsl(raw.ca)), { code: grpc.status.UNAVAILABLE });
      await assert.rejects(serverSerial(address, { ...raw, maxVersion: "TLSv1.2" }), /version|protocol/i);
    } finally {
      server.forceShutdown();
    }
  });

  it("a CA bundle change on disk is picked up by the file watch: a client of the new CA is let in", async () => {
    const lines: Record<string, unknown>[] = [];
    const bundle = join(root, "bundle.pem");
    copyFileSync(certs.caFile, bundle);
    const reloader = new CertificateReloader({
      files: { ...filesOf(certs, "a"), caFile: bundle },
      reloadIntervalMs: 20,
      log: quiet(lines),
    });
    reloader.watch();
    const { address, server } = await startEcho(new ReloadingServerCredentials(reloader));
    const m = other.clients.mallory;
    assert.ok(m);
    // The client trusts both CAs (it checks the server's certificate, from the first CA).
    const both = Buffer.concat([readFileSync(certs.caFile), readFileSync(other.caFile)]);
    const fromCa2 = (): grpc.ChannelCredentials => grpc.credentials.createSsl(both, readFileSync(m.keyFile), readFileSync(m.certFile));
    try {
      await assert.rejects(who(address, fromCa2()), { code: grpc.status.UNAVAILABLE });
      writeFileSync(bundle, both);
      const deadline = Date.now() + 5_000;
      while (!lines.some((l) => l["event"] === "tls_reloaded") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        lines.some((l) => l["event"] === "tls_reloaded" && l["why"] === "file changed"),
        JSON.stringify(lines),
      );
      assert.equal(await who(address, fromCa2()), serialOf(m.certFile));
    } finally {
      reloader.close();
      server.forceShutdown();
    }
  });

  it("a client certificate is optional only when asked (bearer tokens): then one from another CA identifies nobody", async () => {
    const reloader = new CertificateReloader({ files: filesOf(certs, "a"), log: () => {} });
    const { address, server } = await startEcho(new ReloadingServerCredentials(reloader, { requireClientCertificate: false }));
    try {
      const ca = readFileSync(certs.caFile);
      assert.equal(await who(address, grpc.credentials.createSsl(ca)), "none");
      const m = other.clients.mallory;
      assert.ok(m);
      assert.equal(await who(address, grpc.credentials.createSsl(ca, readFileSync(m.keyFile), readFileSync(m.certFile))), "none");
      const c = issueClientCertificate("carol", { dir: join(root, "ca1") });
      assert.equal(
        await who(address, grpc.credentials.createSsl(ca, readFileSync(c.keyFile), readFileSync(c.certFile))),
        serialOf(c.certFile),
      );
    } finally {
      server.forceShutdown();
    }
  });

  it("startMemberTls: a bad file is a config error, --insecure warns, SIGHUP reloads (and never stops the process)", () => {
    const lines: Record<string, unknown>[] = [];
    assert.throws(() => startMemberTls({ ...filesOf(certs, "a"), keyFile: certs.members.b?.keyFile ?? "" }, quiet(lines)), ConfigError);
    const plain = startMemberTls(null, quiet(lines));
    assert.equal(plain.insecure, true);
    assert.ok(lines.some((l) => l["event"] === "insecure" && /PLAINTEXT/.test(String(l["warning"]))));
    process.emit("SIGHUP", "SIGHUP");
    plain.close();
    const dir = join(root, "ca1");
    const own = issueMemberCertificate("a", { dir, stem: "hup-a" });
    const member = startMemberTls({ ...filesOf(certs, "a"), ...own }, quiet(lines));
    try {
      assert.equal(member.insecure, false);
      assert.equal(member.transport, "mutual TLS (TLSv1.3 minimum)");
      process.emit("SIGHUP", "SIGHUP");
      assert.ok(lines.some((l) => l["event"] === "tls_unchanged" && l["why"] === "SIGHUP" && l["serialNumber"] === serialOf(own.certFile)));
      issueMemberCertificate("a", { dir, stem: "hup-a" });
      process.emit("SIGHUP", "SIGHUP");
      assert.ok(lines.some((l) => l["event"] === "tls_reloaded" && l["why"] === "SIGHUP" && l["serialNumber"] === serialOf(own.certFile)));
    } finally {
      member.close();
    }
    assert.equal(process.listenerCount("SIGHUP"), 0, "close() leaves a SIGHUP handler behind");
  });
});
