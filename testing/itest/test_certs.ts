// The test run's certificates: one dev CA per test process (tools/dev_certs.ts) under a temp
// directory removed when the process exits, with member certificates for every member id a
// cluster of this process uses and client certificates for the identities its tests ask for.
// ensureDevCertificates is synchronous and keeps what exists, so every cluster of the process
// shares the one CA and a certificate is issued once per id.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TlsOptions, TransportSecurity } from "../../client-sdk/tls.ts";
import { ensureDevCertificates, type DevCertificates } from "../../tools/dev_certs.ts";

/** The client identity tests use unless they ask for another (its CN and urn:tenure:client: SAN). */
export const DEFAULT_CLIENT_IDENTITY = "itest";
/** The identity ProcessCluster lists in --admin-identities: for membership changes, leadership
 *  transfer, other identities' leases (a test asks for it by name; the default is no admin). */
export const ADMIN_CLIENT_IDENTITY = "itest-admin";

export interface CertificateNeeds {
  readonly memberIds: readonly string[];
  readonly clientIdentities?: readonly string[];
}

let root: string | null = null;
let issued: DevCertificates | null = null;

function certRoot(): string {
  if (root === null) {
    const dir = mkdtempSync(join(tmpdir(), "tenure-certs-"));
    root = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return root;
}

/** The process's certificates, with at least `needs` issued. */
export function testCertificates(needs: CertificateNeeds): DevCertificates {
  const memberIds = [...new Set([...Object.keys(issued?.members ?? {}), ...needs.memberIds])];
  const clientIdentities = [
    ...new Set([DEFAULT_CLIENT_IDENTITY, ADMIN_CLIENT_IDENTITY, ...Object.keys(issued?.clients ?? {}), ...(needs.clientIdentities ?? [])]),
  ];
  issued = ensureDevCertificates(certRoot(), { memberIds, clientIdentities });
  return issued;
}

/** The certificates issued so far in this process, or null. */
export function issuedCertificates(): DevCertificates | null {
  return issued;
}

/** TLS options (files, so a rotation on disk reaches new connections) for client `identity`. */
export function clientTlsOf(certs: DevCertificates, identity: string = DEFAULT_CLIENT_IDENTITY): TlsOptions {
  const c = certs.clients[identity];
  if (!c) throw new Error(`no client certificate for ${identity}: list it in the cluster's clientIdentities`);
  return { caFile: certs.caFile, certFile: c.certFile, keyFile: c.keyFile };
}

/** The default for a client a test builds without saying: the run's default client certificate
 *  once this process issued certificates, plaintext before (no TLS cluster can exist then). */
export function defaultTestSecurity(): TransportSecurity {
  return issued === null ? { insecure: true } : { tls: clientTlsOf(issued) };
}
