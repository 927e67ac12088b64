// The SDK's TLS (tls.ts, GrpcWire) against a grpc-js server on 127.0.0.1 that requires a client
// certificate from its CA, with certificates from tools/dev_certs.ts: the server's certificate
// is verified (IP SAN, the CA), the client's is presented, TLS 1.3 is the floor unless lowered,
// plaintext needs insecure: true, and a certificate replaced on disk is what the next
// connection presents while a half-written rotation keeps the last good pair.

import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { tenurePackage } from "../proto/tenure_protos.ts";
import { ensureDevCertificates, issueClientCertificate, type DevCertificates } from "../tools/dev_certs.ts";
import { TenureError } from "./errors.ts";
import { channelCredentials, TlsMaterial, type TlsOptions } from "./tls.ts";
import { GrpcWire } from "./transport.ts";

type Obj = Record<string, unknown>;
type ServiceCtor = { service: grpc.ServiceDefinition };
const services = (grpc.loadPackageDefinition(tenurePackage()) as unknown as { tenure: { v1: Record<string, ServiceCtor> } }).tenure.v1;

const root = mkdtempSync(join(tmpdir(), "tenure-sdk-tls-"));
let certs: DevCertificates;
let otherCa: DevCertificates;
let server: grpc.Server;
let endpoint = "";
/** The CN of the client certificate of each call the server answered, in order. */
const seen: string[] = [];

function startServer(): Promise<number> {
  const ca = certs;
  const member = ca.members["a"];
  assert.ok(member);
  server = new grpc.Server();
  const cluster = services["Cluster"];
  assert.ok(cluster);
  server.addService(cluster.service, {
    Status: (call: grpc.ServerUnaryCall<Obj, Obj>, done: grpc.sendUnaryData<Obj>) => {
      const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN ?? "";
      seen.push(String(cn));
      done(null, { leaderId: String(cn) });
    },
  });
  const creds = grpc.ServerCredentials.createSsl(
    readFileSync(ca.caFile),
    [{ private_key: readFileSync(member.keyFile), cert_chain: readFileSync(member.certFile) }],
    true,
  );
  return new Promise((resolve, reject) => server.bindAsync("127.0.0.1:0", creds, (e, port) => (e ? reject(e) : resolve(port))));
}

function clientTls(identity: string, overrides: Partial<TlsOptions> = {}): TlsOptions {
  const c = certs.clients[identity];
  assert.ok(c);
  return { caFile: certs.caFile, certFile: c.certFile, keyFile: c.keyFile, ...overrides };
}

async function status(wire: GrpcWire): Promise<Obj> {
  return wire.unary(endpoint, "Cluster", "Status", {}, 5_000, new AbortController().signal);
}

before(async () => {
  certs = ensureDevCertificates(join(root, "ca"), { memberIds: ["a"], clientIdentities: ["alice", "bob", "rotating"] });
  otherCa = ensureDevCertificates(join(root, "other"), { memberIds: ["a"], clientIdentities: ["mallory"] });
  endpoint = `127.0.0.1:${await startServer()}`;
});

after(() => {
  server?.forceShutdown();
  rmSync(root, { recursive: true, force: true });
});

describe("SDK transport security", () => {
  it("refuses to build a wire without tls or insecure: true, or with both", () => {
    for (const bad of [{}, { insecure: false }, { tls: clientTls("alice"), insecure: true }]) {
      assert.throws(
        () => channelCredentials(bad),
        (e: unknown) => e instanceof TenureError && e.code === "INVALID_ARGUMENT",
      );
    }
    assert.throws(() => new TlsMaterial({ caFile: certs.caFile, ca: "x" }), /ca or caFile|not both/);
    assert.throws(() => new TlsMaterial({ caFile: certs.caFile, certFile: clientTls("alice").certFile ?? "" }), /certificate and its key/);
    assert.throws(
      () => new TlsMaterial({ caFile: join(root, "missing.pem") }),
      (e: unknown) => e instanceof TenureError && e.code === "INVALID_ARGUMENT",
    );
  });

  it("mutual TLS with PEM strings: the server's certificate verifies by its IP SAN, the client's is presented", async () => {
    const files = clientTls("alice");
    const wire = new GrpcWire({
      tls: {
        ca: readFileSync(files.caFile ?? "", "utf8"),
        cert: readFileSync(files.certFile ?? ""),
        key: readFileSync(files.keyFile ?? "", "utf8"),
      },
    });
    try {
      assert.equal((await status(wire))["leaderId"], "alice");
    } finally {
      wire.close();
    }
  });

  it("a server certificate from another CA is refused (UNAVAILABLE), and so is a wrong server name", async () => {
    const mallory = otherCa.clients["mallory"];
    assert.ok(mallory);
    const foreign = new GrpcWire({ tls: { caFile: otherCa.caFile, certFile: mallory.certFile, keyFile: mallory.keyFile } });
    const misnamed = new GrpcWire({ tls: clientTls("alice", { serverName: "b" }) });
    try {
      for (const wire of [foreign, misnamed]) {
        await assert.rejects(status(wire), (e: unknown) => e instanceof TenureError && e.code === "UNAVAILABLE");
      }
      const named = new GrpcWire({ tls: clientTls("bob", { serverName: "a" }) });
      assert.equal((await status(named))["leaderId"], "bob", "the member id is a DNS SAN of its certificate");
      named.close();
    } finally {
      foreign.close();
      misnamed.close();
    }
  });

  it("TLS 1.3 is the floor by default; minVersion TLSv1.2 lowers it", async () => {
    const member = certs.members["a"];
    assert.ok(member);
    const old = tls.createServer({ key: readFileSync(member.keyFile), cert: readFileSync(member.certFile), maxVersion: "TLSv1.2" }, (s) =>
      s.end(),
    );
    await new Promise<void>((res) => old.listen(0, "127.0.0.1", () => res()));
    const port = (old.address() as { port: number }).port;
    const dial = (material: TlsMaterial): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: "127.0.0.1", port, secureContext: material.current(), servername: "localhost" }, () => {
          resolve(String(s.getProtocol()));
          s.end();
        });
        s.once("error", reject);
      });
    try {
      await assert.rejects(dial(new TlsMaterial(clientTls("alice"))), /protocol|version/i);
      assert.equal(await dial(new TlsMaterial(clientTls("alice", { minVersion: "TLSv1.2" }))), "TLSv1.2");
    } finally {
      old.close();
    }
  });

  it("a client certificate replaced on disk is presented by the next connection; a half-written pair keeps the old one", async () => {
    const dir = join(root, "ca");
    const live = certs.clients["rotating"];
    assert.ok(live);
    const wire = new GrpcWire({ tls: clientTls("rotating") });
    try {
      assert.equal((await status(wire))["leaderId"], "rotating");
      // A certificate of another identity, same CA: its CN tells which pair a connection used.
      const next = issueClientCertificate("carol", { dir, stem: "client-carol-next" });
      // Half a rotation: the new certificate without its key. The pair does not match, so the
      // next connection still presents the old one (and does not fail).
      copyFileSync(next.certFile, live.certFile);
      wire.close();
      assert.equal((await status(wire))["leaderId"], "rotating");
      copyFileSync(next.keyFile, live.keyFile);
      // The open connection keeps its certificate; a new one presents the new pair.
      assert.equal((await status(wire))["leaderId"], "rotating", "an open connection changed certificate");
      wire.close();
      assert.equal((await status(wire))["leaderId"], "carol");
    } finally {
      wire.close();
    }
  });
});
