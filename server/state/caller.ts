// Who sent a client command, and what belongs to whom. PURE.
//
// The leader's api handler puts the caller's authenticated identity into every client command
// (never a field of the request: server/auth decides it from the certificate or bearer token),
// and whether its authorization grants admin. The machine trusts both: they come from the
// leader's log entry, like the leader's time. It records the identity as the owner of each lease
// it grants; a lock or election belongs to the owner of the lease that holds it. Only the owner,
// or an admin, may renew, revoke, release, proclaim, resign or wait with what it owns.
//
// The anonymous identity "" is the open mode (--insecure without auth, and every entry written
// before identities existed, command codec v1): all its callers are one owner, as before.
//
// Exactly-once sessions are per identity: the session key joins identity and client id, so one
// identity can never replay into, or advance, another's sequence under the same client id. A
// client id is visible ASCII without spaces and an identity has no space, so the key
// "<identity> <clientId>" is unambiguous, and for "" it is the bare client id (the v1 sessions).

export interface Caller {
  /** The authenticated identity; "" is the anonymous owner of the open mode. */
  readonly identity: string;
  /** The leader's authorization let this caller act on objects of other identities. */
  readonly admin: boolean;
}

export const ANONYMOUS: Caller = { identity: "", admin: false };

/** Identities: 1..64 bytes, letters, digits and ._:@/+=- (no space, no JSON escape). */
export const IDENTITY_BYTES_MAX = 64;
export const IDENTITY_PATTERN = /^[A-Za-z0-9._:@/+=-]{1,64}$/;

export function isIdentity(value: string): boolean {
  return IDENTITY_PATTERN.test(value);
}

/** The caller of a client command: the fields the leader stamped (absent: anonymous, not admin). */
export function callerOf(command: { readonly identity?: string; readonly admin?: boolean }): Caller {
  return { identity: command.identity ?? "", admin: command.admin ?? false };
}

/** The exactly-once session of (identity, clientId). */
export function sessionKey(identity: string, clientId: string): string {
  return identity === "" ? clientId : `${identity} ${clientId}`;
}

/** What a caller may do to an object of `owner`: as its owner, as an admin for another, or not at all. */
export function accessOf(caller: Caller, owner: string): "owner" | "admin" | "denied" {
  if (caller.identity === owner) return "owner";
  return caller.admin ? "admin" : "denied";
}
