// Who a client is, from its TLS certificate or its bearer token (the shared convention, issue 12):
//   - a client certificate names its identity in the URI SAN urn:tenure:client:<identity>, else
//     in its subject CN;
//   - a member certificate (URI SAN urn:tenure:member:<id>) used on the client port is the
//     identity "member:<id>", which has no roles unless an auth config binds it;
//   - a bearer token arrives as call metadata `authorization: Bearer <token>`.
// Identities follow server/state/caller.ts (1..64 of [A-Za-z0-9._:@/+=-]): a certificate whose
// name does not fit identifies nobody, with a message that says why.

import type { PeerCertificate } from "node:tls";
import { isIdentity } from "../state/caller.ts";

export const CLIENT_URI_PREFIX = "urn:tenure:client:";
export const MEMBER_URI_PREFIX = "urn:tenure:member:";
/** Bearer tokens beyond this length are refused before hashing. */
export const BEARER_TOKEN_CHARS_MAX = 4_096;

export type IdentityResult = { readonly ok: true; readonly identity: string } | { readonly ok: false; readonly message: string };

/** The URI entries of a certificate's subjectAltName ("URI:a, DNS:b" as Node formats it). */
function uriSans(cert: PeerCertificate): string[] {
  const san = typeof cert.subjectaltname === "string" ? cert.subjectaltname : "";
  return san
    .split(", ")
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => entry.slice("URI:".length));
}

function commonName(cert: PeerCertificate): string | null {
  const cn: unknown = cert.subject?.CN;
  if (typeof cn === "string") return cn;
  // A subject with two CNs: Node gives an array; which one is meant is not ours to guess.
  return null;
}

/** Identities already read, per certificate object (one per TLS 1.3 connection: tls/peer_certificate_memo.ts). */
const identities = new WeakMap<PeerCertificate, IdentityResult>();

/** The identity a verified client certificate names. */
export function certificateIdentity(cert: PeerCertificate): IdentityResult {
  const known = identities.get(cert);
  if (known !== undefined) return known;
  const result = readIdentity(cert);
  identities.set(cert, result);
  return result;
}

function readIdentity(cert: PeerCertificate): IdentityResult {
  const uris = uriSans(cert);
  const clients = uris.filter((u) => u.startsWith(CLIENT_URI_PREFIX)).map((u) => u.slice(CLIENT_URI_PREFIX.length));
  const members = uris.filter((u) => u.startsWith(MEMBER_URI_PREFIX)).map((u) => `member:${u.slice(MEMBER_URI_PREFIX.length)}`);
  const named = [...clients, ...members];
  if (named.length > 1)
    return { ok: false, message: `the client certificate names ${named.length} identities (${named.join(", ")}); it must name one` };
  const candidate = named[0] ?? commonName(cert);
  if (candidate === null)
    return { ok: false, message: `the client certificate names no identity (no ${CLIENT_URI_PREFIX}<identity> URI SAN, no CN)` };
  if (!isIdentity(candidate)) {
    return {
      ok: false,
      message: `the client certificate's identity ${JSON.stringify(candidate.slice(0, 80))} is not 1..64 characters of [A-Za-z0-9._:@/+=-]`,
    };
  }
  return { ok: true, identity: candidate };
}

export type BearerResult =
  | { readonly kind: "none" }
  | { readonly kind: "token"; readonly token: string }
  | { readonly kind: "malformed"; readonly message: string };

/** The bearer token of a call's `authorization` metadata values. */
export function bearerToken(values: readonly unknown[]): BearerResult {
  if (values.length === 0) return { kind: "none" };
  if (values.length > 1) return { kind: "malformed", message: "more than one authorization header" };
  const value = values[0];
  if (typeof value !== "string") return { kind: "malformed", message: "the authorization header is not text" };
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(value);
  if (match === null) return { kind: "malformed", message: 'the authorization header must be "Bearer <token>"' };
  const token = match[1] ?? "";
  if (token.length > BEARER_TOKEN_CHARS_MAX)
    return { kind: "malformed", message: `the bearer token is longer than ${BEARER_TOKEN_CHARS_MAX} characters` };
  return { kind: "token", token };
}
