// The SDK's TLS: channel credentials for mutual TLS whose certificate material is read anew for
// every new connection when it comes from files, so a certificate rotated on disk is presented
// (and a rotated CA trusted) by the next connection without a restart, while connections already
// open keep theirs. grpc-js's own options fall short twice: createSsl/createFromSecureContext fix
// one context for the channel's life, and its file-watching provider reads the certificate and
// the key separately (a rotation between the two reads pairs a new certificate with the old key)
// and cannot set a minimum TLS version. So this file implements grpc-js's ChannelCredentials
// connector (the same handshake grpc-js does: ALPN h2, server identity checked against the
// endpoint's host or the configured name) over a context it builds itself, TLS 1.3 by default.

import { readFileSync, statSync } from "node:fs";
import { isIP, type Socket } from "node:net";
import * as tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { TenureError } from "./errors.ts";

export type Pem = Buffer | string;
export type TlsMinVersion = "TLSv1.3" | "TLSv1.2";

/**
 * Mutual TLS to the members. Each of the CA, the certificate and the key is given either as PEM
 * (string or Buffer) or as a file path; files are re-read when they change, for new connections.
 * The certificate and key are both given or both left out (a client certificate is what the
 * members authenticate by, unless the deployment uses bearer tokens).
 */
export interface TlsOptions {
  /** PEM CA bundle that signs the members' certificates. */
  readonly ca?: Pem;
  readonly caFile?: string;
  /** This client's certificate (PEM chain), presented to the members. */
  readonly cert?: Pem;
  readonly certFile?: string;
  readonly key?: Pem;
  readonly keyFile?: string;
  /** Lowest TLS version accepted (default TLSv1.3). */
  readonly minVersion?: TlsMinVersion;
  /** Name the members' certificates are checked against, instead of each endpoint's host (an IP
   *  is matched against IP SANs, a name against DNS SANs). */
  readonly serverName?: string;
}

type Item = { readonly kind: "pem"; readonly pem: Buffer } | { readonly kind: "file"; readonly path: string };

function itemOf(what: string, pem: Pem | undefined, file: string | undefined): Item | null {
  if (pem !== undefined && file !== undefined) throw new TenureError("INVALID_ARGUMENT", `tls: give ${what} or ${what}File, not both`);
  if (pem !== undefined) return { kind: "pem", pem: typeof pem === "string" ? Buffer.from(pem) : pem };
  if (file !== undefined) return { kind: "file", path: file };
  return null;
}

/** What identifies one version of a file: a rotation by rename changes the inode, one in place
 *  the mtime or size. */
function signatureOf(item: Item): string {
  if (item.kind === "pem") return "pem";
  const s = statSync(item.path);
  return `${s.ino}:${s.mtimeMs}:${s.size}`;
}

function read(item: Item): Buffer {
  return item.kind === "pem" ? item.pem : readFileSync(item.path);
}

/**
 * The current secure context, rebuilt when a file behind it changed. A rebuild that fails (a
 * certificate written before its key, a file mid-write) keeps the last good context and tries
 * again at the next connection; only the first build's failure is the caller's (at construction).
 */
export class TlsMaterial {
  private readonly items: readonly (Item | null)[];
  private context: tls.SecureContext;
  private signatures: string;

  constructor(readonly options: TlsOptions) {
    const ca = itemOf("ca", options.ca, options.caFile);
    const cert = itemOf("cert", options.cert, options.certFile);
    const key = itemOf("key", options.key, options.keyFile);
    if (ca === null)
      throw new TenureError("INVALID_ARGUMENT", "tls: ca or caFile is required (the CA that signs the members' certificates)");
    if ((cert === null) !== (key === null)) throw new TenureError("INVALID_ARGUMENT", "tls: give a certificate and its key, or neither");
    const min = options.minVersion ?? "TLSv1.3";
    if (min !== "TLSv1.3" && min !== "TLSv1.2")
      throw new TenureError("INVALID_ARGUMENT", `tls: minVersion must be TLSv1.3 or TLSv1.2, got ${String(min)}`);
    this.items = [ca, cert, key];
    try {
      this.signatures = this.currentSignatures();
      this.context = this.build();
    } catch (e) {
      throw new TenureError("INVALID_ARGUMENT", `tls: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  /** The context for a new connection. */
  current(): tls.SecureContext {
    try {
      const now = this.currentSignatures();
      if (now !== this.signatures) {
        this.context = this.build();
        this.signatures = now; // only after a good build: a failed one is retried next time
      }
    } catch {
      // Mid-rotation or unreadable: the last good context still authenticates (same CA).
    }
    return this.context;
  }

  private currentSignatures(): string {
    return this.items.map((i) => (i === null ? "-" : signatureOf(i))).join("|");
  }

  private build(): tls.SecureContext {
    const [ca, cert, key] = this.items.map((i) => (i === null ? undefined : read(i)));
    return tls.createSecureContext({
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      minVersion: this.options.minVersion ?? "TLSv1.3",
    });
  }
}

/** The host part of a channel target's authority ("127.0.0.1:7001" -> "127.0.0.1"). */
function hostOf(target: grpc.experimental.GrpcUri): string {
  return grpc.experimental.splitHostPort(target.path)?.host ?? target.path;
}

/** One TLS handshake on a connected socket, as grpc-js's own secure connector does it. */
function handshake(socket: Socket, context: tls.SecureContext, host: string, name: string): Promise<grpc.experimental.SecureConnectResult> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect(
      {
        socket,
        secureContext: context,
        host,
        // SNI may not carry an IP address (RFC 6066); the identity check below still covers it.
        ...(isIP(name) === 0 ? { servername: name } : {}),
        ALPNProtocols: ["h2"],
        checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
      },
      () => {
        secure.removeListener("error", reject);
        secure.removeListener("close", onClose);
        if (!secure.authorized) reject(secure.authorizationError ?? new Error("server certificate not authorized"));
        else resolve({ socket: secure, secure: true });
      },
    );
    const onClose = (): void => reject(new Error("socket closed during the TLS handshake"));
    secure.once("error", reject);
    secure.once("close", onClose);
  });
}

/** grpc-js channel credentials over TlsMaterial: each new connection takes material.current(). */
export class TlsChannelCredentials extends grpc.ChannelCredentials {
  constructor(readonly material: TlsMaterial) {
    super();
  }

  override _isSecure(): boolean {
    return true;
  }

  /** Channels share connections only when their credentials are the same object. */
  override _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    target: grpc.experimental.GrpcUri,
    options: grpc.ChannelOptions,
    callCredentials?: grpc.CallCredentials,
  ): grpc.experimental.SecureConnector {
    const host = hostOf(target);
    const override = options["grpc.ssl_target_name_override"];
    const name = typeof override === "string" && override !== "" ? override : (this.material.options.serverName ?? host);
    const creds = callCredentials ?? grpc.credentials.createEmpty();
    return {
      connect: (socket) => handshake(socket, this.material.current(), host, name),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => creds,
      destroy: () => undefined,
    };
  }
}

/** How the SDK talks to the members: TLS (the default a deployment must choose) or, explicitly,
 *  plaintext. */
export interface TransportSecurity {
  readonly tls?: TlsOptions;
  /** Plaintext: only for a cluster started with --insecure (tests, a local experiment). */
  readonly insecure?: boolean;
}

/** The channel credentials for `security`: exactly one of `tls` and `insecure: true`. */
export function channelCredentials(security: TransportSecurity): grpc.ChannelCredentials {
  if (security.tls !== undefined && security.insecure === true)
    throw new TenureError("INVALID_ARGUMENT", "give tls or insecure: true, not both");
  if (security.tls !== undefined) return new TlsChannelCredentials(new TlsMaterial(security.tls));
  if (security.insecure === true) return grpc.credentials.createInsecure();
  throw new TenureError(
    "INVALID_ARGUMENT",
    "no transport security: give tls: { ca, cert, key } (or caFile, certFile, keyFile), or insecure: true for a cluster started with --insecure",
  );
}
