// A member's transport security, as tenured and tenure-witness start it: with the TLS files, one
// certificate reloader (file watch, and SIGHUP) behind the credentials of both ports and of the
// peer dialer; with --insecure, plaintext everywhere and a warning line at start. A TLS file that
// is missing or does not fit (tls_material.ts) is a configuration error: the member exits 2 before
// it opens anything.

import * as grpc from "@grpc/grpc-js";
import { ConfigError } from "../config.ts";
import { CertificateReloader, TlsLoadError } from "./cert_reloader.ts";
import { memberCredentials, type ServerTlsOptions } from "./credentials.ts";
import type { TlsFiles, TlsMaterial } from "./tls_material.ts";

export interface MemberTls {
  /** The peer transport's credentials (GrpcPeerTransportOptions.credentials). */
  readonly peer: { readonly server: grpc.ServerCredentials; readonly channel: grpc.ChannelCredentials };
  /** The client port's. */
  readonly client: grpc.ServerCredentials;
  /**
   * The material in force and its reloads, for listeners that are not gRPC (the HTTPS metrics and
   * health port, server/health/http_endpoints.ts); null with --insecure.
   */
  readonly material: TlsMaterialSource | null;
  /** Plaintext (--insecure): Cluster.Status says so. */
  readonly insecure: boolean;
  /** For the started line: "mutual TLS (TLSv1.3 minimum)" or "PLAINTEXT (--insecure)". */
  readonly transport: string;
  /** Stops the file watch and the SIGHUP handler. */
  close(): void;
}

/** The current TLS material and a subscription to each newly loaded one (CertificateReloader). */
export interface TlsMaterialSource {
  current(): TlsMaterial;
  /** Returns the unsubscribe. */
  subscribe(onMaterial: (m: TlsMaterial) => void): () => void;
}

export const INSECURE_WARNING =
  "--insecure: both ports are PLAINTEXT and UNAUTHENTICATED; anyone who can reach them can read every lock and token and act as a member or a client. For tests and local experiments only.";

export function startMemberTls(
  tls: TlsFiles | null,
  log: (fields: Record<string, unknown>) => void,
  clientPort: ServerTlsOptions = {},
): MemberTls {
  if (tls === null) {
    log({ event: "insecure", level: "warn", warning: INSECURE_WARNING });
    // SIGHUP is the reload signal of every member; without TLS it has nothing to do, and must not
    // stop the process as its default action would.
    const onHangup = (): void => log({ event: "tls_unchanged", why: "SIGHUP", insecure: true });
    process.on("SIGHUP", onHangup);
    const server = grpc.ServerCredentials.createInsecure();
    return {
      peer: { server, channel: grpc.credentials.createInsecure() },
      client: server,
      material: null,
      insecure: true,
      transport: "PLAINTEXT (--insecure)",
      close: () => process.off("SIGHUP", onHangup),
    };
  }
  let reloader: CertificateReloader;
  try {
    reloader = new CertificateReloader({ files: tls, log: (f) => log({ component: "tls", ...f }) });
  } catch (e) {
    if (e instanceof TlsLoadError) throw new ConfigError(e.message);
    throw e;
  }
  reloader.watch();
  const onHangup = (): void => void reloader.reload("SIGHUP");
  process.on("SIGHUP", onHangup);
  const creds = memberCredentials(reloader, clientPort);
  log({ event: "tls", minVersion: tls.minVersion, caFile: tls.caFile, certFile: tls.certFile, ...reloader.material().summary });
  return {
    peer: { server: creds.peerServer, channel: creds.peerChannel },
    client: creds.clientServer,
    material: { current: () => reloader.material(), subscribe: (onMaterial) => reloader.subscribe(onMaterial) },
    insecure: false,
    transport: `mutual TLS (${tls.minVersion} minimum)`,
    close: () => {
      process.off("SIGHUP", onHangup);
      reloader.close();
      creds.detach();
    },
  };
}
