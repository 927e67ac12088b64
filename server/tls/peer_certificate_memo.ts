// One peer certificate object per TLS 1.3 connection, instead of one per call.
//
// grpc-js's call.getAuthContext() calls socket.getPeerCertificate() for every call, and Node
// builds the whole certificate object each time: subject, issuer, SANs, the SHA-1/256/512
// fingerprints and a copy of the DER. On a member's client port that was about 0.15 ms of the
// leader's CPU per request (issue 14's lock-cycle profile: 2.5% of the leader at one client, more
// under load), for an answer that cannot change while the connection lasts: TLS 1.3 has no
// renegotiation, so the certificate the handshake verified is the connection's for its life.
//
// So getPeerCertificate(), asked without `detailed`, is remembered per socket once the socket is
// authorized on TLS 1.3 (a WeakMap: it goes with the socket). TLS 1.2 (--tls-min-version TLSv1.2)
// could renegotiate to another certificate, so it is never remembered there; nor is a detailed
// chain, nor an answer before the handshake verified the peer. The object handed back is the
// same one each time: callers only read it (authenticator.ts, peer_inbound.ts).

import { TLSSocket, type PeerCertificate } from "node:tls";

const remembered = new WeakMap<TLSSocket, PeerCertificate>();
let installed = false;

/** Installs the memo on TLSSocket (idempotent; every TLS server of the process shares it). */
export function installPeerCertificateMemo(): void {
  if (installed) return;
  installed = true;
  const original = TLSSocket.prototype.getPeerCertificate;
  // The prototype's own overloads (detailed true / false / none) are kept: only the plain call is remembered.
  TLSSocket.prototype.getPeerCertificate = function getPeerCertificate(this: TLSSocket, detailed?: boolean): PeerCertificate {
    if (detailed === true) return original.call(this, true);
    const known = remembered.get(this);
    if (known !== undefined) return known;
    const cert = original.call(this, false);
    if (this.authorized && this.getProtocol() === "TLSv1.3" && cert.raw !== undefined) remembered.set(this, cert);
    return cert;
  } as typeof original;
}
