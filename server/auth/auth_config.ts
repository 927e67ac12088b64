// The auth config (--auth-config FILE, YAML): roles that grant permissions on name prefixes, and
// bindings of identities to roles (etcd's RBAC, with identities from certificates or tokens):
//
//   roles:
//     worker:
//       - prefix: jobs/           # lock and election names starting with "jobs/"
//         permissions: [lock, elect, read]
//       - permissions: [lease]    # no prefix: every name
//     viewer:
//       - permissions: [read]
//   bindings:
//     alice: [worker]
//     ops: [admin]                # built in: every permission on every name, and admin
//     "*": [viewer]               # every authenticated identity
//
// Permissions: lock (Lock.Acquire/Release), elect (Election.Campaign/Proclaim/Resign), read
// (Lock.Status/ValidateToken, Election.Leader/Observe), lease (Lease.*: leases have no name, so a
// rule granting lease grants it whatever its prefix). admin (the built-in role) is needed for
// membership changes, leadership transfer, and leases of other identities (List shows them,
// Revoke and KeepAlive act on them). An identity with no binding has no permission.

import { parseYaml } from "../yaml.ts";
import { isIdentity } from "../state/caller.ts";
import { AuthFileError } from "./token_file.ts";

export const PERMISSIONS = ["lock", "elect", "lease", "read"] as const;
export type Permission = (typeof PERMISSIONS)[number];
export const ADMIN_ROLE = "admin";
export const EVERY_IDENTITY = "*";

export interface Grant {
  readonly prefix: string;
  readonly permissions: ReadonlySet<Permission>;
}

export interface AuthConfig {
  readonly roles: ReadonlyMap<string, readonly Grant[]>;
  readonly bindings: ReadonlyMap<string, readonly string[]>;
}

const ROLE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const PREFIX_BYTES_MAX = 256;

type Raw = Record<string, unknown>;

function mapping(value: unknown, where: string): Raw {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new AuthFileError(`${where} must be a mapping`);
  return value as Raw;
}

function onlyKeys(r: Raw, keys: readonly string[], where: string): void {
  const extra = Object.keys(r).find((k) => !keys.includes(k));
  if (extra !== undefined) throw new AuthFileError(`${where}: unknown key ${JSON.stringify(extra)} (known: ${keys.join(", ")})`);
}

function parseGrant(value: unknown, where: string): Grant {
  const r = mapping(value, where);
  onlyKeys(r, ["prefix", "permissions"], where);
  const prefix = r["prefix"] ?? "";
  if (typeof prefix !== "string" || Buffer.byteLength(prefix) > PREFIX_BYTES_MAX) {
    throw new AuthFileError(`${where}.prefix must be a string of at most ${PREFIX_BYTES_MAX} bytes`);
  }
  const list = r["permissions"];
  if (!Array.isArray(list) || list.length === 0)
    throw new AuthFileError(`${where}.permissions must be a non-empty list of ${PERMISSIONS.join(", ")}`);
  const permissions = new Set<Permission>();
  for (const p of list) {
    const known = PERMISSIONS.find((k) => k === p);
    if (known === undefined)
      throw new AuthFileError(`${where}.permissions: unknown permission ${JSON.stringify(p)} (known: ${PERMISSIONS.join(", ")})`);
    permissions.add(known);
  }
  return { prefix, permissions };
}

export function parseAuthConfig(text: string, path: string): AuthConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new AuthFileError(`${path}: not YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const top = mapping(raw, path);
  onlyKeys(top, ["roles", "bindings"], path);
  const roles = new Map<string, readonly Grant[]>();
  for (const [name, grants] of Object.entries(mapping(top["roles"], `${path}: roles`))) {
    const where = `${path}: roles.${name}`;
    if (!ROLE_NAME.test(name)) throw new AuthFileError(`${where}: a role name is 1..64 characters of [A-Za-z0-9._-]`);
    if (name === ADMIN_ROLE)
      throw new AuthFileError(`${where}: "admin" is built in (every permission and admin); bind it, do not define it`);
    if (!Array.isArray(grants)) throw new AuthFileError(`${where} must be a list of {prefix, permissions}`);
    roles.set(
      name,
      grants.map((g: unknown, i) => parseGrant(g, `${where}[${i}]`)),
    );
  }
  const bindings = new Map<string, readonly string[]>();
  for (const [identity, list] of Object.entries(mapping(top["bindings"], `${path}: bindings`))) {
    const where = `${path}: bindings.${identity}`;
    if (identity !== EVERY_IDENTITY && !isIdentity(identity)) {
      throw new AuthFileError(`${where}: an identity is 1..64 characters of [A-Za-z0-9._:@/+=-], or "*" for every identity`);
    }
    if (!Array.isArray(list)) throw new AuthFileError(`${where} must be a list of role names`);
    for (const role of list) {
      if (role !== ADMIN_ROLE && (typeof role !== "string" || !roles.has(role))) {
        throw new AuthFileError(`${where}: unknown role ${JSON.stringify(role)} (defined: ${[ADMIN_ROLE, ...roles.keys()].join(", ")})`);
      }
    }
    if (identity === EVERY_IDENTITY && list.includes(ADMIN_ROLE)) throw new AuthFileError(`${where}: "*" cannot be bound to admin`);
    bindings.set(identity, list as string[]);
  }
  return { roles, bindings };
}
