// When the certificates this member presents and trusts expire, read at scrape time from the TLS
// material in force (server/tls: the reloader swaps it on rotation, so a renewed certificate shows
// at the next scrape), as Unix timestamps so that an alert compares them with time():
//   tenure_tls_certificate_expiry_timestamp_seconds{certificate="member"}: the member's own
//     certificate (the first of its chain), shown on both ports and when it dials its peers;
//   tenure_tls_certificate_expiry_timestamp_seconds{certificate="ca"}: the CA in the bundle that
//     issued it (the earliest-expiring CA of the bundle if none of them did).
// No sample with --insecure (no material) or before a source is bound.

import { X509Certificate } from "node:crypto";
import { Gauge } from "prom-client";
import type { MetricsRegistry } from "./registry.ts";

/** The TLS material in force (server/tls TlsMaterialSource fits): PEM bytes only. */
export interface TlsCertificateSource {
  readonly current: () => { readonly cert: Buffer; readonly ca: Buffer };
}

export interface CertificateExpiry {
  readonly memberSeconds: number;
  readonly caSeconds: number | null;
}

/** The expiry of a member's certificate and of the CA that issued it, in Unix seconds. */
export function certificateExpiry(certPem: Buffer, caPem: Buffer): CertificateExpiry {
  const leaf = new X509Certificate(certPem);
  const blocks = caPem.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const cas = blocks.map((b) => new X509Certificate(b));
  const seconds = (c: X509Certificate): number => Date.parse(c.validTo) / 1000;
  const issuer = cas.find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  const earliest = cas.map(seconds).sort((x, y) => x - y)[0];
  return { memberSeconds: seconds(leaf), caSeconds: issuer !== undefined ? seconds(issuer) : (earliest ?? null) };
}

export class TlsMetrics {
  private source: TlsCertificateSource | null = null;
  /** The last material read and its expiry: parsed again only when the material changes. */
  private cached: { cert: Buffer; ca: Buffer; expiry: CertificateExpiry } | null = null;

  constructor(registry: MetricsRegistry) {
    const self = this;
    new Gauge({
      name: "tenure_tls_certificate_expiry_timestamp_seconds",
      help: "When this member's TLS certificate (certificate=member) and the CA that issued it (certificate=ca) expire, Unix seconds; the material in force, reloads included. No sample with --insecure.",
      labelNames: ["certificate"],
      registers: [registry],
      collect() {
        this.reset();
        const expiry = self.expiry();
        if (expiry === null) return;
        this.set({ certificate: "member" }, expiry.memberSeconds);
        if (expiry.caSeconds !== null) this.set({ certificate: "ca" }, expiry.caSeconds);
      },
    });
  }

  /** The member's material (null with --insecure: no samples). */
  bind(source: TlsCertificateSource | null): void {
    this.source = source;
    this.cached = null;
  }

  private expiry(): CertificateExpiry | null {
    if (this.source === null) return null;
    const m = this.source.current();
    if (this.cached === null || this.cached.cert !== m.cert || this.cached.ca !== m.ca) {
      this.cached = { cert: m.cert, ca: m.ca, expiry: certificateExpiry(m.cert, m.ca) };
    }
    return this.cached.expiry;
  }
}
