// An authenticated caller and what it may do (the modes are README's "Authentication and
// permissions"):
//   open        --insecure without auth: nobody is identified; every caller is the anonymous
//               identity "" and may do everything (the legacy mode, flagged in Cluster.Status);
//   identities  no auth config: every client identity the CA (or the token file) vouches for
//               may use every name (member:<id>, a member's certificate, none); admin only for
//               --admin-identities;
//   roles       an auth config: what the identity's roles (and those of "*") grant; admin for an
//               identity bound to the built-in admin role or listed in --admin-identities.

import { ADMIN_ROLE, EVERY_IDENTITY, type AuthConfig, type Permission } from "./auth_config.ts";

export type AuthMode = "open" | "identities" | "roles";

/** The identity of a member certificate used on the client port: member:<id> (identity.ts). */
export const MEMBER_IDENTITY_PREFIX = "member:";

export interface Principal {
  /** "" only in open mode. */
  readonly identity: string;
  readonly admin: boolean;
  /** How it was authenticated: for log lines. */
  readonly via: "open" | "certificate" | "token";
  /** Roles it holds (roles mode), for messages. */
  readonly roles: readonly string[];
  /** Permission on a lock or election name (lease: name is null). */
  can(permission: Permission, name: string | null): boolean;
}

export const OPEN_PRINCIPAL: Principal = { identity: "", admin: true, via: "open", roles: [], can: () => true };

export function principalOf(options: {
  readonly identity: string;
  readonly via: "certificate" | "token";
  readonly config: AuthConfig | null;
  readonly adminIdentities: ReadonlySet<string>;
}): Principal {
  const { identity, via, config } = options;
  const listedAdmin = options.adminIdentities.has(identity);
  if (config === null) {
    // A member's certificate is for the peer port: on the client port it may read the cluster's
    // status, nothing more, unless it is listed as an admin (or bound in an auth config).
    const member = identity.startsWith(MEMBER_IDENTITY_PREFIX) && !listedAdmin;
    return { identity, via, admin: listedAdmin, roles: listedAdmin ? [ADMIN_ROLE] : [], can: () => !member };
  }
  const roles = [...new Set([...(config.bindings.get(identity) ?? []), ...(config.bindings.get(EVERY_IDENTITY) ?? [])])];
  const admin = listedAdmin || roles.includes(ADMIN_ROLE);
  const grants = roles.flatMap((role) => config.roles.get(role) ?? []);
  const can = (permission: Permission, name: string | null): boolean =>
    admin || grants.some((g) => g.permissions.has(permission) && (name === null || permission === "lease" || name.startsWith(g.prefix)));
  return { identity, via, admin, roles: admin && !roles.includes(ADMIN_ROLE) ? [...roles, ADMIN_ROLE] : roles, can };
}

/** Null when allowed, else the PERMISSION_DENIED message (names identity, permission and name). */
export function permissionDenied(principal: Principal, permission: Permission, name: string | null): string | null {
  if (principal.can(permission, name)) return null;
  const on = name === null ? "" : ` on ${JSON.stringify(name)}`;
  const roles = principal.roles.length === 0 ? "no roles" : `roles: ${principal.roles.join(", ")}`;
  return `identity ${JSON.stringify(principal.identity)} lacks permission ${permission}${on} (${roles})`;
}

/** Null when admin, else the PERMISSION_DENIED message for `what`. */
export function adminDenied(principal: Principal, what: string): string | null {
  if (principal.admin) return null;
  return `identity ${JSON.stringify(principal.identity)} lacks permission admin: ${what} needs the admin role`;
}
