// Member identity on the peer port (DESIGN §6): which member a TLS peer is, read from its
// certificate, and whether it may send as the member id it claims. Pure: the transport hands in
// the certificate gRPC verified (signed by the cluster's CA) and maps the codes to gRPC statuses.
//
// The convention every issue-12 part builds to: a member's certificate carries the URI SAN
// urn:tenure:member:<id> (plus CN and DNS:<id>); a client's carries urn:tenure:client:<identity>
// only. The URI SAN, not the CN, is the identity: a client certificate never passes as a member,
// whatever its CN says.

import type { PeerCertificate } from "node:tls";
import type { NodeId } from "../core/types.ts";
import { NODE_ID_LENGTH_MAX } from "../limits.ts";

export const MEMBER_URI_PREFIX = "urn:tenure:member:";

export interface SubjectAltName {
  readonly type: string;
  readonly value: string;
}

/**
 * The entries of Node's `subjectaltname` text ("DNS:a, URI:urn:tenure:member:a"). Node quotes a
 * value holding a comma or another special character as a JSON string (URI:"a, b"), so a forged
 * value cannot smuggle in a second entry; quoted values are unquoted here.
 */
export function subjectAltNames(text: string): SubjectAltName[] {
  const out: SubjectAltName[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = closingQuote(text, colon + 2);
      if (end < 0) break; // malformed: keep what was read before it
      try {
        value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      } catch {
        break;
      }
      end += 1;
    } else {
      const sep = text.indexOf(", ", colon + 1);
      end = sep < 0 ? text.length : sep;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    i = end + 2; // past ", "
  }
  return out;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === '"') return i;
  }
  return -1;
}

/** Every member id the certificate names in a urn:tenure:member: URI SAN (normally one). */
export function memberIdsOf(cert: PeerCertificate | undefined): string[] {
  const text = cert?.subjectaltname;
  if (typeof text !== "string") return [];
  return subjectAltNames(text)
    .filter((s) => s.type === "URI" && s.value.startsWith(MEMBER_URI_PREFIX))
    .map((s) => s.value.slice(MEMBER_URI_PREFIX.length));
}

/** The certificate's subject CN, for log lines only (never an identity). */
export function commonNameOf(cert: PeerCertificate | undefined): string | null {
  const cn = cert?.subject?.CN;
  if (typeof cn === "string") return cn;
  if (Array.isArray(cn)) return cn.join(",");
  return null;
}

export type IdentityRefusalCode = "UNAUTHENTICATED" | "PERMISSION_DENIED";

export interface IdentityRefusal {
  readonly code: IdentityRefusalCode;
  readonly reason: string;
  /** What the certificate says, for the log line. */
  readonly certificateIds: readonly string[];
}

/** The one member a verified certificate names, or why it names none. */
export function memberOfCertificate(cert: PeerCertificate | undefined): { readonly memberId: NodeId } | IdentityRefusal {
  if (cert === undefined) return { code: "UNAUTHENTICATED", reason: "no verified client certificate", certificateIds: [] };
  const ids = memberIdsOf(cert);
  if (ids.length === 0) {
    return {
      code: "UNAUTHENTICATED",
      reason: `certificate (CN ${JSON.stringify(commonNameOf(cert))}) names no member (${MEMBER_URI_PREFIX}<id>): only a member may use the peer port`,
      certificateIds: [],
    };
  }
  if (ids.length > 1) return { code: "UNAUTHENTICATED", reason: `certificate names ${ids.length} members`, certificateIds: ids };
  const id = ids[0] ?? "";
  if (id.length === 0 || id.length > NODE_ID_LENGTH_MAX) {
    return { code: "UNAUTHENTICATED", reason: "certificate names an invalid member id", certificateIds: ids };
  }
  return { memberId: id };
}

/**
 * Whether the certified member may send as `claimed` now. `claimed` null: the stream's first
 * check, before any frame (the certificate's own member must be admissible).
 */
export function checkClaim(x: {
  readonly memberId: NodeId;
  readonly claimed: NodeId | null;
  readonly isAdmissible: (memberId: NodeId) => boolean;
}): IdentityRefusal | null {
  const certificateIds = [x.memberId];
  if (x.claimed !== null && x.claimed !== x.memberId) {
    return {
      code: "PERMISSION_DENIED",
      reason: `sender claims member ${JSON.stringify(x.claimed.slice(0, 64))} with a certificate of member ${JSON.stringify(x.memberId)}`,
      certificateIds,
    };
  }
  if (!x.isAdmissible(x.memberId)) {
    return {
      code: "PERMISSION_DENIED",
      reason: `member ${JSON.stringify(x.memberId)} is not in this member's configuration (nor joining it)`,
      certificateIds,
    };
  }
  return null;
}
