// The digest of a client command's request: what a retry under the same (clientId, seq) must
// repeat exactly to get the stored result back (session_table.ts). PURE.
//
// "The request" is every field of the command except those that name the session or that the
// server fills in:
//   - clientId, seq: the session and its position (the digest is kept per session, per seq);
//   - identity: the server's, from the credential; it is part of the session key (caller.ts), so
//     another identity under the same client id has a session of its own and never sees this one;
//   - admin: the server's authorization of that identity, which may change between a request and
//     its retry (a role granted or taken away) without making it another request;
//   - LeaseGrant.leaseId: drawn by the leader, again for each attempt (server/api/lease_ids.ts).
// Every other field is the request: the kind, names, lease ids, tokens, TTLs, values, the wait
// flag, a KeepAlive's ids in their order. A field added to a command is part of the request
// unless it is listed here, so a new argument can never be left out of the comparison by mistake.
// Fields that only steer the api call (a blocking call's timeout_ms) are not in the command.
//
// Encoding: JSON of [kind, [[field, value], ...] with the fields sorted by name]; JSON.stringify
// writes strings, safe integers, booleans and number lists one way only, so replicas agree.
//
// The digest is the first 128 bits of SHA-256 (hash.ts), 32 hex digits, stored per session
// (limits.ts counts them). A client can only compare against its own session's digest (the key
// holds its authenticated identity), so a collision would fool only the client that found it;
// finding one at all takes about 2^64 SHA-256 evaluations, and an accidental one among requests
// is 2^-128 per comparison. The full canonical text is not stored: with a 4 KiB value it is up to
// 24 KiB, times sessionsMax.

import type { ClientCommand } from "./commands.ts";
import { sha256Hex } from "./hash.ts";

/** Hex digits kept of the SHA-256: 128 bits. */
export const REQUEST_DIGEST_HEX_DIGITS = 32;
export const REQUEST_DIGEST_PATTERN = /^[0-9a-f]{32}$/;

/** Fields of every client command that are not the request (see above). */
const SESSION_FIELDS: ReadonlySet<string> = new Set(["kind", "clientId", "seq", "identity", "admin"]);
/** Fields the leader fills in per attempt, by command kind. */
const SERVER_FILLED: Readonly<Partial<Record<ClientCommand["kind"], ReadonlySet<string>>>> = {
  LeaseGrant: new Set(["leaseId"]),
};

/** The canonical text of the request (exported for tests and diagnostics). */
export function canonicalRequest(command: ClientCommand): string {
  const filled = SERVER_FILLED[command.kind];
  const fields = Object.entries(command)
    .filter(([field]) => !SESSION_FIELDS.has(field) && filled?.has(field) !== true)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([command.kind, fields]);
}

export function requestDigest(command: ClientCommand): string {
  return sha256Hex(new TextEncoder().encode(canonicalRequest(command))).slice(0, REQUEST_DIGEST_HEX_DIGITS);
}
