import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { X509Certificate } from "node:crypto";
import { ensureDevCertificates, issueClientCertificate, issueMemberCertificate } from "./dev_certs.ts";

const dir = mkdtempSync(join(tmpdir(), "tenure-dev-certs-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const x509 = (file: string): X509Certificate => new X509Certificate(readFileSync(file));

describe("dev_certs", () => {
  const certs = ensureDevCertificates(dir, { memberIds: ["a", "w"], clientIdentities: ["alice"] });

  it("issues a CA and certificates it signed, in the SAN convention", () => {
    const ca = x509(certs.caFile);
    assert.equal(ca.ca, true);
    const member = x509(certs.members.a?.certFile ?? "");
    assert.equal(member.verify(ca.publicKey), true);
    assert.equal(member.checkIssued(ca), true);
    assert.match(member.subject, /CN=a/);
    assert.equal(member.subjectAltName, "DNS:a, URI:urn:tenure:member:a, DNS:localhost, IP Address:127.0.0.1");
    assert.deepEqual(member.keyUsage?.slice().sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert.equal(member.checkHost("a"), "a");
    assert.equal(member.checkIP("127.0.0.1"), "127.0.0.1");
    const client = x509(certs.clients.alice?.certFile ?? "");
    assert.equal(client.verify(ca.publicKey), true);
    assert.match(client.subject, /CN=alice/);
    assert.equal(client.subjectAltName, "URI:urn:tenure:client:alice");
    assert.deepEqual(client.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
    assert.equal(statSync(certs.caKeyFile).mode & 0o077, 0, "the CA key is private to its owner");
  });

  it("is idempotent: a second call writes nothing, new needs only add", () => {
    const before = readFileSync(certs.members.a?.certFile ?? "", "utf8");
    const caBefore = readFileSync(certs.caFile, "utf8");
    const again = ensureDevCertificates(dir, { memberIds: ["a", "b"], clientIdentities: ["alice", "bob"] });
    assert.equal(readFileSync(again.members.a?.certFile ?? "", "utf8"), before);
    assert.equal(readFileSync(again.caFile, "utf8"), caBefore);
    assert.ok(again.members.b && again.clients.bob);
    assert.equal(x509(again.members.b.certFile).checkIssued(x509(again.caFile)), true);
  });

  it("reissues on request (rotation) with a new key, and takes hosts and a validity", () => {
    const old = x509(certs.members.a?.certFile ?? "");
    const files = issueMemberCertificate("a", { dir, hosts: ["10.0.0.5", "a.tenure.internal"], validDays: 2 });
    const now = x509(files.certFile);
    assert.notEqual(now.serialNumber, old.serialNumber);
    assert.notEqual(
      now.publicKey.export({ format: "der", type: "spki" }).toString("hex"),
      old.publicKey.export({ format: "der", type: "spki" }).toString("hex"),
    );
    assert.equal(now.subjectAltName, "DNS:a, URI:urn:tenure:member:a, IP Address:10.0.0.5, DNS:a.tenure.internal");
    assert.ok(Date.parse(now.validTo) - Date.now() < 3 * 86_400_000);
    const expired = x509(issueClientCertificate("late", { dir, validDays: -1 }).certFile);
    assert.ok(Date.parse(expired.validTo) < Date.now());
  });

  it("refuses an id that is not a plain name", () => {
    assert.throws(() => ensureDevCertificates(dir, { memberIds: ["../x"], clientIdentities: [] }), /member id/);
    assert.throws(() => issueClientCertificate("a b", { dir }), /client identity/);
  });
});
