// tenure_tls_certificate_expiry_timestamp_seconds over real certificates (tools/dev_certs.ts):
// the member certificate's and its issuing CA's notAfter, the material in force read at each
// scrape (a rotation shows at once), nothing with --insecure.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ensureDevCertificates, issueMemberCertificate } from "../../tools/dev_certs.ts";
import { testMetricsOptions } from "../../testing/kits/metrics_fixtures.ts";
import { MemberMetrics } from "./member_metrics.ts";
import { certificateExpiry } from "./tls_metrics.ts";

const root = mkdtempSync(join(tmpdir(), "tenure-tls-metrics-"));
after(() => rmSync(root, { recursive: true, force: true }));

const options = testMetricsOptions();
const NAME = "tenure_tls_certificate_expiry_timestamp_seconds";
const notAfter = (pem: Buffer): number => Date.parse(new X509Certificate(pem).validTo) / 1000;

async function samples(m: MemberMetrics): Promise<Map<string, number>> {
  const metric = m.registry.getSingleMetric(NAME);
  assert.ok(metric, `${NAME} is registered`);
  const got = await metric.get();
  return new Map(got.values.map((v) => [String(v.labels["certificate"]), v.value]));
}

describe("TLS certificate expiry metric", () => {
  const certs = ensureDevCertificates(join(root, "ca"), { memberIds: ["a"], clientIdentities: [] });
  const ca = readFileSync(certs.caFile);
  const cert = readFileSync(certs.members["a"]?.certFile ?? "");

  it("reports the member certificate's and its CA's notAfter, in Unix seconds", async () => {
    const m = new MemberMetrics(options);
    m.tls({ current: () => ({ cert, ca }) });
    const s = await samples(m);
    assert.equal(s.get("member"), notAfter(cert));
    assert.equal(s.get("ca"), notAfter(ca));
    // dev_certs: members 365 days, the CA 3650 days, from now.
    const days = ((s.get("member") ?? 0) - Date.now() / 1000) / 86400;
    assert.ok(days > 363 && days < 367, `member certificate expires in ${days} days`);
    assert.ok((s.get("ca") ?? 0) > (s.get("member") ?? 0));
    const text = await m.registry.metrics();
    assert.match(text, /tenure_tls_certificate_expiry_timestamp_seconds\{certificate="member"\} \d+/);
    m.close();
  });

  it("follows the material in force: a rotated certificate shows at the next scrape", async () => {
    const short = issueMemberCertificate("a", { dir: join(root, "ca"), stem: "short-a", validDays: 3 });
    const shortPem = readFileSync(short.certFile);
    let current = { cert, ca };
    const m = new MemberMetrics(options);
    m.tls({ current: () => current });
    assert.equal((await samples(m)).get("member"), notAfter(cert));
    current = { cert: shortPem, ca };
    const s = await samples(m);
    assert.equal(s.get("member"), notAfter(shortPem));
    const days = ((s.get("member") ?? 0) - Date.now() / 1000) / 86400;
    assert.ok(days > 2 && days < 4, `rotated certificate expires in ${days} days`);
    m.close();
  });

  it("the CA is the one that issued the certificate, even when the bundle holds another", () => {
    const other = readFileSync(ensureDevCertificates(join(root, "other"), { memberIds: [], clientIdentities: [] }).caFile);
    const e = certificateExpiry(cert, Buffer.concat([other, ca]));
    assert.equal(e.caSeconds, notAfter(ca));
    assert.equal(e.memberSeconds, notAfter(cert));
    // A bundle without the issuer (the peers would refuse the certificate): its earliest CA.
    assert.equal(certificateExpiry(cert, other).caSeconds, notAfter(other));
  });

  it("no sample with --insecure (no material) or before the material is bound", async () => {
    const m = new MemberMetrics(options);
    assert.equal((await samples(m)).size, 0);
    m.tls(null);
    assert.equal((await samples(m)).size, 0);
    assert.doesNotMatch(await m.registry.metrics(), /tenure_tls_certificate_expiry_timestamp_seconds\{/);
    m.close();
  });
});
