import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { PeerCertificate } from "node:tls";
import { parseAuthConfig } from "./auth_config.ts";
import { Authenticator } from "./authenticator.ts";
import { bearerToken, certificateIdentity } from "./identity.ts";
import { permissionDenied, principalOf } from "./principal.ts";
import { AuthFileError, identityOfToken, parseTokenFile, sha256Hex } from "./token_file.ts";

const dir = mkdtempSync(join(tmpdir(), "tenure-auth-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function cert(subjectaltname: string | undefined, cn?: string): PeerCertificate {
  return {
    subject: cn === undefined ? {} : { CN: cn },
    ...(subjectaltname === undefined ? {} : { subjectaltname }),
  } as unknown as PeerCertificate;
}

const TOKEN_A = "tok-alice-0123456789abcdefghijklmnop";
const TOKEN_B = "tok-bob-0123456789abcdefghijklmnopqr";

describe("auth: identities", () => {
  it("a client certificate names its identity by URI SAN, else CN; a member certificate is member:<id>", () => {
    assert.deepEqual(certificateIdentity(cert("DNS:x, URI:urn:tenure:client:alice", "ignored")), { ok: true, identity: "alice" });
    assert.deepEqual(certificateIdentity(cert(undefined, "bob")), { ok: true, identity: "bob" });
    assert.deepEqual(certificateIdentity(cert("URI:urn:tenure:member:b")), { ok: true, identity: "member:b" });
    const two = certificateIdentity(cert("URI:urn:tenure:client:a, URI:urn:tenure:client:b"));
    assert.ok(!two.ok && /names 2 identities/.test(two.message));
    const none = certificateIdentity(cert("DNS:x"));
    assert.ok(!none.ok && /names no identity/.test(none.message));
    const spaced = certificateIdentity(cert(undefined, "Alice Smith"));
    assert.ok(!spaced.ok && /"Alice Smith" is not 1\.\.64 characters/.test(spaced.message));
  });

  it("bearer tokens come from one authorization header", () => {
    assert.deepEqual(bearerToken([]), { kind: "none" });
    assert.deepEqual(bearerToken(["Bearer abc"]), { kind: "token", token: "abc" });
    assert.equal(bearerToken(["Basic abc"]).kind, "malformed");
    assert.equal(bearerToken(["Bearer a", "Bearer b"]).kind, "malformed");
    assert.equal(bearerToken([`Bearer ${"x".repeat(5000)}`]).kind, "malformed");
  });
});

describe("auth: token file", () => {
  it("holds hashes only and finds the identity of a token; short, unknown or malformed entries fail", () => {
    const entries = parseTokenFile(
      `tokens:\n  - identity: alice\n    sha256: ${sha256Hex(TOKEN_A)}\n  - identity: bob\n    sha256: ${sha256Hex(TOKEN_B).toUpperCase()}\n`,
      "t.yaml",
    );
    assert.equal(identityOfToken(entries, TOKEN_A), "alice");
    assert.equal(identityOfToken(entries, TOKEN_B), "bob");
    assert.equal(identityOfToken(entries, `${TOKEN_A}x`), null);
    assert.equal(identityOfToken(entries, "short"), null);
    assert.throws(() => parseTokenFile("tokens:\n  - identity: alice\n    sha256: abc\n", "t.yaml"), /sha256 must be 64 hex digits/);
    assert.throws(() => parseTokenFile("tokens:\n  - identity: a b\n    sha256: x\n", "t.yaml"), /identity must be/);
    assert.throws(() => parseTokenFile("tokens:\n  - identity: a\n    token: x\n", "t.yaml"), /unknown key "token"/);
    assert.throws(
      () =>
        parseTokenFile(
          `tokens:\n  - {identity: a, sha256: ${sha256Hex(TOKEN_A)}}\n  - {identity: b, sha256: ${sha256Hex(TOKEN_A)}}\n`,
          "t.yaml",
        ),
      AuthFileError,
    );
  });
});

describe("auth: roles and permissions", () => {
  const config = parseAuthConfig(
    [
      "roles:",
      "  worker:",
      "    - prefix: jobs/",
      "      permissions: [lock, elect, read]",
      "    - permissions: [lease]",
      "  viewer:",
      "    - permissions: [read]",
      "bindings:",
      "  alice: [worker]",
      "  ops: [admin]",
      '  "*": [viewer]',
    ].join("\n"),
    "auth.yaml",
  );

  it("grants per name prefix; lease is not per name; * applies to everyone; admin has everything", () => {
    const alice = principalOf({ identity: "alice", via: "token", config, adminIdentities: new Set() });
    assert.equal(alice.admin, false);
    assert.equal(alice.can("lock", "jobs/a"), true);
    assert.equal(alice.can("lock", "db/a"), false);
    assert.equal(alice.can("read", "db/a"), true, "viewer via *");
    assert.equal(alice.can("lease", null), true);
    const carol = principalOf({ identity: "carol", via: "certificate", config, adminIdentities: new Set() });
    assert.equal(carol.can("lease", null), false);
    assert.equal(permissionDenied(carol, "lock", "jobs/x"), 'identity "carol" lacks permission lock on "jobs/x" (roles: viewer)');
    const ops = principalOf({ identity: "ops", via: "certificate", config, adminIdentities: new Set() });
    assert.equal(ops.admin && ops.can("elect", "anything"), true);
    const listed = principalOf({ identity: "carol", via: "certificate", config, adminIdentities: new Set(["carol"]) });
    assert.equal(listed.admin, true);
  });

  it("without an auth config every identity may use every name; only listed identities are admin", () => {
    const p = principalOf({ identity: "x", via: "certificate", config: null, adminIdentities: new Set(["root"]) });
    assert.equal(p.can("lock", "any") && !p.admin, true);
    assert.equal(principalOf({ identity: "root", via: "certificate", config: null, adminIdentities: new Set(["root"]) }).admin, true);
    const member = principalOf({ identity: "member:b", via: "certificate", config: null, adminIdentities: new Set() });
    assert.equal(member.can("read", "x") || member.can("lease", null), false, "a member certificate is no client");
  });

  it("the deploy example parses", () => {
    const path = new URL("../../deploy/config/auth.yaml", import.meta.url).pathname;
    const example = parseAuthConfig(readFileSync(path, "utf8"), path);
    const runner = principalOf({ identity: "batch-runner", via: "certificate", config: example, adminIdentities: new Set() });
    assert.equal(runner.can("lock", "jobs/nightly") && !runner.can("lock", "scheduler/x") && runner.can("read", "anything"), true);
  });

  it("refuses a config with unknown keys, permissions, roles, or admin redefined", () => {
    assert.throws(() => parseAuthConfig("roles:\n  r:\n    - permissions: [write]\n", "a.yaml"), /unknown permission "write"/);
    assert.throws(() => parseAuthConfig("bindings:\n  alice: [nope]\n", "a.yaml"), /unknown role "nope"/);
    assert.throws(() => parseAuthConfig("roles:\n  admin:\n    - permissions: [read]\n", "a.yaml"), /built in/);
    assert.throws(() => parseAuthConfig("users: {}\n", "a.yaml"), /unknown key "users"/);
    assert.throws(() => parseAuthConfig('bindings:\n  "*": [admin]\n', "a.yaml"), /cannot be bound to admin/);
  });
});

describe("auth: Authenticator", () => {
  const tokenFile = join(dir, "tokens.yaml");
  const configFile = join(dir, "auth.yaml");
  writeFileSync(tokenFile, `tokens:\n  - identity: alice\n    sha256: ${sha256Hex(TOKEN_A)}\n`);
  writeFileSync(configFile, "roles:\n  worker:\n    - permissions: [lease, lock]\nbindings:\n  alice: [worker]\n");
  const call = (token?: string, peer?: PeerCertificate) => ({
    metadata: { get: (key: string) => (key === "authorization" && token !== undefined ? [`Bearer ${token}`] : []) },
    getAuthContext: () => (peer === undefined ? {} : { sslPeerCertificate: peer }),
  });
  const logs: Record<string, unknown>[] = [];

  it("a token decides the identity; a bad token is refused even with a good certificate; nothing is UNAUTHENTICATED", () => {
    const auth = Authenticator.start({ authConfigFile: configFile, tokenFile, adminIdentities: [], tls: true, log: (f) => logs.push(f) });
    assert.equal(auth.mode, "roles");
    const byToken = auth.authenticate(call(TOKEN_A));
    assert.ok(byToken.ok && byToken.principal.identity === "alice" && byToken.principal.via === "token");
    const byCert = auth.authenticate(call(undefined, cert("URI:urn:tenure:client:bob")));
    assert.ok(byCert.ok && byCert.principal.identity === "bob" && !byCert.principal.can("lock", "x"));
    const bad = auth.authenticate(call(TOKEN_B, cert("URI:urn:tenure:client:bob")));
    assert.deepEqual(bad, { ok: false, message: "the bearer token is not recognized" });
    const none = auth.authenticate(call());
    assert.ok(!none.ok && /no credentials: .*client certificate .* or an authorization: Bearer <token> header/.test(none.message));
  });

  it("over plaintext only tokens identify, with a warning; without auth options it is the open mode", () => {
    const before = logs.length;
    const auth = Authenticator.start({ authConfigFile: null, tokenFile, adminIdentities: ["alice"], tls: false, log: (f) => logs.push(f) });
    assert.equal(auth.mode, "identities");
    assert.ok(logs.slice(before).some((l) => l["event"] === "auth_tokens_plaintext"));
    const r = auth.authenticate(call(undefined, cert("URI:urn:tenure:client:bob")));
    assert.ok(!r.ok && /send an authorization: Bearer <token> header$/.test(r.message));
    const alice = auth.authenticate(call(TOKEN_A));
    assert.ok(alice.ok && alice.principal.admin);
    const open = Authenticator.start({ authConfigFile: null, tokenFile: null, adminIdentities: [], tls: false, log: () => {} });
    assert.equal(open.mode, "open");
    assert.throws(
      () => Authenticator.start({ authConfigFile: configFile, tokenFile: null, adminIdentities: [], tls: false, log: () => {} }),
      /needs --auth-tokens/,
    );
  });

  it("follows its files: a new token file is used, a broken one keeps the last good version", () => {
    const auth = Authenticator.start({
      authConfigFile: null,
      tokenFile,
      adminIdentities: [],
      tls: true,
      log: (f) => logs.push(f),
      checkIntervalMs: 0,
    });
    const next = join(dir, "tokens.next");
    writeFileSync(next, `tokens:\n  - identity: bob\n    sha256: ${sha256Hex(TOKEN_B)}\n`);
    renameSync(next, tokenFile);
    const bob = auth.authenticate(call(TOKEN_B));
    assert.ok(bob.ok && bob.principal.identity === "bob");
    assert.equal(auth.authenticate(call(TOKEN_A)).ok, false, "the old token is gone");
    writeFileSync(tokenFile, "tokens: [");
    assert.ok(auth.authenticate(call(TOKEN_B)).ok, "kept the last good version");
    assert.ok(logs.some((l) => l["event"] === "auth_reload_failed"));
  });
});
