// Bearer tokens (--auth-tokens FILE), for clients without certificates. The file holds no token,
// only the SHA-256 of each, with the identity it stands for:
//
//   tokens:
//     - identity: ci-runner
//       sha256: 3b5d...  # 64 hex digits: sha256 of the token's UTF-8 bytes (tools/auth_token.ts)
//
// Why a plain SHA-256 and not a password hash (bcrypt, scrypt, argon2): those slow a guess at a
// LOW-entropy secret that a stolen file exposes. Tokens here are random, at least 128 bits
// (tools/auth_token.ts makes 256), so inverting the hash of one is out of reach at any speed, and
// a fast hash keeps the check cheap on every call. The presented token is hashed and compared
// with EVERY entry in constant time (crypto.timingSafeEqual), so the time taken says nothing
// about which entry, if any, is close.

import { createHash, timingSafeEqual } from "node:crypto";
import { parseYaml } from "../yaml.ts";
import { isIdentity } from "../state/caller.ts";

export interface TokenEntry {
  readonly identity: string;
  readonly sha256: Buffer;
}

/** Tokens shorter than this are refused outright: they cannot be the random tokens we ask for. */
export const BEARER_TOKEN_CHARS_MIN = 22;
const ENTRIES_MAX = 100_000;

export class AuthFileError extends Error {
  override readonly name = "AuthFileError";
}

export function sha256Hex(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export function parseTokenFile(text: string, path: string): readonly TokenEntry[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new AuthFileError(`${path}: not YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const top = raw === null || raw === undefined ? {} : raw;
  if (typeof top !== "object" || Array.isArray(top)) throw new AuthFileError(`${path}: the top level must be a mapping with "tokens"`);
  const extra = Object.keys(top).filter((k) => k !== "tokens");
  if (extra.length > 0) throw new AuthFileError(`${path}: unknown key ${JSON.stringify(extra[0])} (only "tokens")`);
  const list: unknown = (top as Record<string, unknown>)["tokens"] ?? [];
  if (!Array.isArray(list)) throw new AuthFileError(`${path}: tokens must be a list of {identity, sha256}`);
  if (list.length > ENTRIES_MAX) throw new AuthFileError(`${path}: more than ${ENTRIES_MAX} tokens`);
  const seen = new Set<string>();
  return list.map((item: unknown, i) => {
    const where = `${path}: tokens[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) throw new AuthFileError(`${where} must be a mapping`);
    const r = item as Record<string, unknown>;
    const unknownKey = Object.keys(r).find((k) => k !== "identity" && k !== "sha256");
    if (unknownKey !== undefined) throw new AuthFileError(`${where}: unknown key ${JSON.stringify(unknownKey)}`);
    const identity = r["identity"];
    const hash = r["sha256"];
    if (typeof identity !== "string" || !isIdentity(identity)) {
      throw new AuthFileError(`${where}.identity must be 1..64 characters of [A-Za-z0-9._:@/+=-], got ${JSON.stringify(identity)}`);
    }
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/i.test(hash)) {
      throw new AuthFileError(`${where}.sha256 must be 64 hex digits (the SHA-256 of the token, never the token)`);
    }
    const key = hash.toLowerCase();
    if (seen.has(key)) throw new AuthFileError(`${where}: the same token hash appears twice`);
    seen.add(key);
    return { identity, sha256: Buffer.from(key, "hex") };
  });
}

/** The identity of a presented token, or null; every entry is compared, in constant time each. */
export function identityOfToken(entries: readonly TokenEntry[], token: string): string | null {
  if (token.length < BEARER_TOKEN_CHARS_MIN) return null;
  const presented = createHash("sha256").update(token, "utf8").digest();
  let found: string | null = null;
  for (const entry of entries) {
    if (timingSafeEqual(presented, entry.sha256) && found === null) found = entry.identity;
  }
  return found;
}
