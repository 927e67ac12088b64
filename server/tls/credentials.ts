// grpc-js credentials over a CertificateReloader, for both of a member's ports and for dialing its
// peers: mutual TLS, TLS 1.3 only unless --tls-min-version TLSv1.2, and a rotated certificate or CA
// bundle in force for every new connection without a restart.
//
// Why not grpc-js's own certificate providers (experimental.FileWatcherCertificateProvider with
// createCertificateProvider{Server,Channel}Credentials): both build their secure contexts from
// ca/cert/key alone, so no minimum TLS version can be set (Node's default minimum is TLSv1.2), and
// the file watcher reads the certificate and the key independently (a rotation between the two
// reads pairs a new certificate with the old key). So:
//   server  a ServerCredentials subclass: requestCert + rejectUnauthorized + minVersion go into the
//           http2 server's constructor options, the material into its context options, and each
//           reload into updateSecureContextOptions, which grpc-js applies to every bound port with
//           http2.Server.setSecureContext (the same path its provider credentials take);
//   channel a ChannelCredentials subclass whose connector asks, at every connection attempt, for
//           grpc-js's own secure connector over the current context (createFromSecureContext):
//           the handshake, ALPN, SNI and server-identity check (grpc.ssl_target_name_override
//           included) stay grpc-js's. The connector has to be resolved per attempt, not per
//           subchannel: grpc-js creates a subchannel's connector once and reuses it on reconnects.

import * as grpc from "@grpc/grpc-js";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import type { Socket } from "node:net";
import type { CertificateReloader } from "./cert_reloader.ts";
import { installPeerCertificateMemo } from "./peer_certificate_memo.ts";
import { secureContextOptionsOf, type TlsMaterial } from "./tls_material.ts";

export interface ServerTlsOptions {
  /**
   * Refuse a connection that presents no certificate signed by the CA (the default, and always on
   * the peer port). false only where another credential is accepted instead (client-port bearer
   * tokens): a certificate is still asked for, and one the CA did not sign does not identify the
   * caller (grpc-js's call.getAuthContext() is empty unless the socket is authorized).
   */
  readonly requireClientCertificate?: boolean;
}

export class ReloadingServerCredentials extends grpc.ServerCredentials {
  private readonly unsubscribe: () => void;

  constructor(reloader: CertificateReloader, options: ServerTlsOptions = {}) {
    installPeerCertificateMemo(); // grpc-js asks for the peer certificate on every call
    const m = reloader.material();
    const require = options.requireClientCertificate ?? true;
    super(
      // Server-level options: Node keeps these across setSecureContext (only the context changes).
      { requestCert: true, rejectUnauthorized: require, minVersion: m.minVersion },
      serverContextOf(m),
    );
    this.unsubscribe = reloader.subscribe((next) => this.updateSecureContextOptions(serverContextOf(next)));
  }

  /** Stops following the reloader (the server is closed). */
  detach(): void {
    this.unsubscribe();
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

function serverContextOf(m: TlsMaterial): SecureContextOptions {
  // minVersion again here: setSecureContext builds the new context from these options.
  return secureContextOptionsOf(m);
}

export class ReloadingChannelCredentials extends grpc.ChannelCredentials {
  private inner: grpc.ChannelCredentials;
  private readonly unsubscribe: () => void;

  constructor(reloader: CertificateReloader) {
    super();
    this.inner = channelOf(reloader.material());
    this.unsubscribe = reloader.subscribe((next) => {
      this.inner = channelOf(next);
    });
  }

  detach(): void {
    this.unsubscribe();
  }

  override _isSecure(): boolean {
    return true;
  }

  /** Subchannels are pooled by credentials: only this very object shares them. */
  override _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    target: grpc.experimental.GrpcUri,
    options: grpc.ChannelOptions,
    callCredentials?: grpc.CallCredentials,
  ): grpc.experimental.SecureConnector {
    const creds = callCredentials ?? grpc.credentials.createEmpty();
    return {
      connect: (socket: Socket) => this.inner._createSecureConnector(target, options, creds).connect(socket),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => creds,
      destroy: () => undefined,
    };
  }
}

function channelOf(m: TlsMaterial): grpc.ChannelCredentials {
  return grpc.ChannelCredentials.createFromSecureContext(createSecureContext(secureContextOptionsOf(m)));
}

/** Both sides of a member's mutual TLS over one reloader: what the peer transport and the client
 *  port are given. */
export interface MemberCredentials {
  /** The peer port: a certificate from the CA is always required. */
  readonly peerServer: ReloadingServerCredentials;
  /** Dialing the peers with this member's certificate. */
  readonly peerChannel: ReloadingChannelCredentials;
  /** The client port. */
  readonly clientServer: ReloadingServerCredentials;
  detach(): void;
}

export function memberCredentials(reloader: CertificateReloader, client: ServerTlsOptions = {}): MemberCredentials {
  const peerServer = new ReloadingServerCredentials(reloader);
  const peerChannel = new ReloadingChannelCredentials(reloader);
  const clientServer = new ReloadingServerCredentials(reloader, client);
  return {
    peerServer,
    peerChannel,
    clientServer,
    detach: () => {
      peerServer.detach();
      peerChannel.detach();
      clientServer.detach();
    },
  };
}
