// Authentication of one client call: a bearer token when the call sends one (a bad token is
// refused even if a good certificate came with it: no silent fallback), else the verified client
// certificate (grpc-js gives call.getAuthContext().sslPeerCertificate only for a socket the CA
// authorized), else UNAUTHENTICATED. Then principal.ts decides what the identity may do, from the
// auth config (reloaded when its file changes) or, without one, every name.
//
//   const auth = Authenticator.start({ authConfigFile, tokenFile, adminIdentities, tls: true, log });
//   const result = auth.authenticate(call);   // { ok, principal } | { ok: false, message }

import type { PeerCertificate } from "node:tls";
import { parseAuthConfig, type AuthConfig } from "./auth_config.ts";
import { bearerToken, certificateIdentity } from "./identity.ts";
import { OPEN_PRINCIPAL, principalOf, type AuthMode, type Principal } from "./principal.ts";
import { ReloadingFile } from "./reloading_file.ts";
import { identityOfToken, parseTokenFile, type TokenEntry } from "./token_file.ts";

/** What authenticate() reads of a grpc-js server call (the simulator's fake calls have neither). */
export interface AuthenticatedCall {
  readonly metadata?: { get(key: string): unknown[] };
  getAuthContext?(): { readonly sslPeerCertificate?: PeerCertificate | undefined };
}

export type AuthResult = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly message: string };

export interface AuthenticatorOptions {
  readonly authConfigFile: string | null;
  readonly tokenFile: string | null;
  readonly adminIdentities: readonly string[];
  /** Client certificates are possible (TLS on the client port). */
  readonly tls: boolean;
  readonly log: (fields: Record<string, unknown>) => void;
  readonly checkIntervalMs?: number;
}

export const OPEN_MODE_WARNING =
  "auth mode open (--insecure, no --auth-config or --auth-tokens): no client is identified; every caller may release any lock, revoke any lease and change membership. For tests and local experiments only.";

export const TOKENS_OVER_PLAINTEXT_WARNING =
  "--insecure with bearer tokens: tokens cross the network in PLAINTEXT; anyone on the path can read one and act as its identity. For tests only.";

export class Authenticator {
  private constructor(
    readonly mode: AuthMode,
    private readonly tls: boolean,
    private readonly config: ReloadingFile<AuthConfig> | null,
    private readonly tokens: ReloadingFile<readonly TokenEntry[]> | null,
    private readonly adminIdentities: ReadonlySet<string>,
  ) {}

  /** The open mode: no authentication (tests, and --insecure without auth options). */
  static open(): Authenticator {
    return new Authenticator("open", false, null, null, new Set());
  }

  /** Loads the files (a bad one throws AuthFileError: a configuration error at start). */
  static start(o: AuthenticatorOptions): Authenticator {
    const files = { log: o.log, ...(o.checkIntervalMs === undefined ? {} : { checkIntervalMs: o.checkIntervalMs }) };
    const config =
      o.authConfigFile === null
        ? null
        : new ReloadingFile({ ...files, path: o.authConfigFile, what: "auth config", parse: parseAuthConfig });
    const tokens =
      o.tokenFile === null ? null : new ReloadingFile({ ...files, path: o.tokenFile, what: "auth tokens", parse: parseTokenFile });
    if (!o.tls && config === null && tokens === null) {
      if (o.adminIdentities.length > 0)
        throw new Error("--admin-identities needs TLS client certificates or --auth-tokens: in open mode nobody is identified");
      return Authenticator.open();
    }
    if (!o.tls && tokens === null)
      throw new Error("--auth-config with --insecure needs --auth-tokens: without certificates, tokens are the only way to tell who calls");
    if (!o.tls) o.log({ level: "warn", event: "auth_tokens_plaintext", warning: TOKENS_OVER_PLAINTEXT_WARNING });
    return new Authenticator(config === null ? "identities" : "roles", o.tls, config, tokens, new Set(o.adminIdentities));
  }

  /** Whether connections without a client certificate must be let through (tokens are accepted). */
  get acceptsTokens(): boolean {
    return this.tokens !== null;
  }

  authenticate(call: AuthenticatedCall): AuthResult {
    if (this.mode === "open") return { ok: true, principal: OPEN_PRINCIPAL };
    const bearer = bearerToken(call.metadata?.get("authorization") ?? []);
    if (bearer.kind === "malformed") return { ok: false, message: bearer.message };
    if (bearer.kind === "token") {
      if (this.tokens === null)
        return { ok: false, message: "this cluster accepts no bearer tokens (no --auth-tokens); use a client certificate" };
      const identity = identityOfToken(this.tokens.current(), bearer.token);
      if (identity === null) return { ok: false, message: "the bearer token is not recognized" };
      return { ok: true, principal: this.principal(identity, "token") };
    }
    const cert = this.tls ? call.getAuthContext?.().sslPeerCertificate : undefined;
    if (cert === undefined) return { ok: false, message: this.noCredentialsMessage() };
    const named = certificateIdentity(cert);
    if (!named.ok) return { ok: false, message: named.message };
    return { ok: true, principal: this.principal(named.identity, "certificate") };
  }

  /** SIGHUP: re-read the auth config and the token file now. */
  reload(): void {
    this.config?.reload();
    this.tokens?.reload();
  }

  private principal(identity: string, via: "certificate" | "token"): Principal {
    return principalOf({ identity, via, config: this.config?.current() ?? null, adminIdentities: this.adminIdentities });
  }

  private noCredentialsMessage(): string {
    const ways = [
      this.tls ? "a client certificate signed by the cluster's CA" : null,
      this.tokens !== null ? "an authorization: Bearer <token> header" : null,
    ];
    return `no credentials: this cluster authenticates every call; send ${ways.filter((w) => w !== null).join(" or ")}`;
  }
}
