// One member's TLS material read from its three files (--tls-ca, --tls-cert, --tls-key) and checked
// before anything uses it: the key belongs to the certificate, the certificate is issued by a CA
// in the bundle and is within its validity, and Node builds a secure context from the three. A
// rotation that leaves a pair half-written (a new certificate beside the old key) therefore fails
// here, as a value the reloader logs, and never reaches a listening socket.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";

export const TLS_MIN_VERSIONS = ["TLSv1.3", "TLSv1.2"] as const;
export type TlsMinVersion = (typeof TLS_MIN_VERSIONS)[number];

export interface TlsFiles {
  /** PEM bundle of the CA certificates that sign members' and clients' certificates. */
  readonly caFile: string;
  /** PEM certificate (chain) this member presents on both ports and when dialing its peers. */
  readonly certFile: string;
  readonly keyFile: string;
  readonly minVersion: TlsMinVersion;
}

export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly minVersion: TlsMinVersion;
  /** For the logs: what was loaded, never the key. */
  readonly summary: TlsSummary;
}

export interface TlsSummary {
  readonly subject: string;
  readonly subjectAltName: string;
  readonly serialNumber: string;
  readonly validTo: string;
  readonly caSubjects: readonly string[];
}

export type TlsLoadResult = { readonly ok: true; readonly material: TlsMaterial } | { readonly ok: false; readonly reason: string };

/** A PEM bundle's certificates, each parsed (a bundle with none is an error). */
function caCertificates(pem: Buffer, file: string): X509Certificate[] {
  const blocks = pem.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file}: no PEM certificate in the CA bundle`);
  return blocks.map((b) => new X509Certificate(b));
}

/** The validity and issuer checks for the certificate this member presents. */
function checkLeaf(leaf: X509Certificate, cas: readonly X509Certificate[], files: TlsFiles, nowMs: number): void {
  if (Date.parse(leaf.validFrom) > nowMs) throw new Error(`${files.certFile}: not valid before ${leaf.validFrom}`);
  if (Date.parse(leaf.validTo) <= nowMs) throw new Error(`${files.certFile}: expired at ${leaf.validTo}`);
  // Peers check the chain on every handshake; refusing here names the file instead of leaving
  // every peer to log an unknown-CA handshake failure.
  if (!cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
    throw new Error(`${files.certFile}: not issued by a CA in ${files.caFile} (issuer ${leaf.issuer.replaceAll("\n", ", ")})`);
  }
}

/** Reads and checks the three files; never throws (a failed reload is an outcome, not a crash). */
export function loadTlsMaterial(files: TlsFiles, nowMs: number = Date.now()): TlsLoadResult {
  try {
    const ca = readFileSync(files.caFile);
    const cert = readFileSync(files.certFile);
    const key = readFileSync(files.keyFile);
    const cas = caCertificates(ca, files.caFile);
    const leaf = new X509Certificate(cert);
    if (!leaf.checkPrivateKey(createPrivateKey(key))) {
      throw new Error(`${files.keyFile} is not the key of ${files.certFile} (a rotation must replace both)`);
    }
    checkLeaf(leaf, cas, files, nowMs);
    const material: TlsMaterial = {
      ca,
      cert,
      key,
      minVersion: files.minVersion,
      summary: {
        subject: leaf.subject.replaceAll("\n", ", "),
        subjectAltName: leaf.subjectAltName ?? "",
        serialNumber: leaf.serialNumber,
        validTo: leaf.validTo,
        caSubjects: cas.map((c) => c.subject.replaceAll("\n", ", ")),
      },
    };
    // What grpc-js will do with it; a failure here would otherwise surface at the first handshake.
    createSecureContext(secureContextOptionsOf(material));
    return { ok: true, material };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/** The options every secure context of this member is built from, on either side. */
export function secureContextOptionsOf(m: TlsMaterial): SecureContextOptions {
  // maxVersion is left to Node (TLSv1.3); minVersion is the one knob the config turns.
  return { ca: m.ca, cert: m.cert, key: m.key, minVersion: m.minVersion };
}
