// A new bearer token for tenured's --auth-tokens file: 256 random bits, base64url. Prints the
// token (give it to the client, e.g. in a file for the SDK's bearerToken.tokenFile) on stdout and
// the entry for the token file (its SHA-256 only) on stderr, so `> token` keeps them apart:
//
//   node --import tsx tools/auth_token.ts ci-runner > ci-runner.token 2>> tokens.yaml
//
// (tokens.yaml starts with a line "tokens:"; tenured picks up the new entry without a restart.)

import { randomBytes } from "node:crypto";
import { sha256Hex } from "../server/auth/token_file.ts";
import { isIdentity } from "../server/state/caller.ts";

const identity = process.argv[2] ?? "";
if (!isIdentity(identity)) {
  process.stderr.write("usage: auth_token.ts IDENTITY   (1..64 characters of [A-Za-z0-9._:@/+=-])\n");
  process.exit(2);
}
const token = randomBytes(32).toString("base64url");
process.stdout.write(`${token}\n`);
process.stderr.write(`  - identity: ${identity}\n    sha256: ${sha256Hex(token)}\n`);
