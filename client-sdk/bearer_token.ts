// Bearer-token credentials: `authorization: Bearer <token>` on every call and stream the SDK
// makes, for clusters that authenticate clients by token instead of (or besides) a client
// certificate (server/auth/token_file.ts). The token is given as text or as a file; a file is
// re-read when it changes (checked at most once a second), so a rotated token is used by the next
// call without a restart. A token over a plaintext channel (insecure: true) is readable by anyone
// on the path: for tests only.

import { readFileSync, statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { TenureError } from "./errors.ts";

export interface BearerTokenOptions {
  /** The token itself. */
  readonly token?: string;
  /** A file holding the token (surrounding whitespace ignored). */
  readonly tokenFile?: string;
}

const TOKEN_RE = /^[\x21-\x7e]{1,4096}$/;
const FILE_CHECK_INTERVAL_MS = 1_000;

function checked(token: string, from: string): string {
  if (!TOKEN_RE.test(token)) throw new TenureError("INVALID_ARGUMENT", `bearer token ${from} must be 1..4096 visible ASCII characters`);
  return token;
}

/** The current token: fixed, or the file's content as last read. */
export class BearerToken {
  private value: string;
  private signature = "";
  private checkedAtMs = 0;

  constructor(private readonly options: BearerTokenOptions) {
    if ((options.token === undefined) === (options.tokenFile === undefined)) {
      throw new TenureError("INVALID_ARGUMENT", "give token or tokenFile (one of them)");
    }
    this.value = options.token === undefined ? this.readFile() : checked(options.token, "(token)");
  }

  current(): string {
    const file = this.options.tokenFile;
    if (file === undefined) return this.value;
    const now = performance.now();
    if (now - this.checkedAtMs < FILE_CHECK_INTERVAL_MS) return this.value;
    this.checkedAtMs = now;
    try {
      this.value = this.readFile();
    } catch {
      // Mid-rotation or unreadable: keep the last good token; the server says if it is stale.
    }
    return this.value;
  }

  private readFile(): string {
    const file = this.options.tokenFile ?? "";
    const s = statSync(file);
    const signature = `${s.ino}:${s.mtimeMs}:${s.size}`;
    if (signature === this.signature) return this.value;
    const token = checked(readFileSync(file, "utf8").trim(), `in ${file}`);
    this.signature = signature;
    return token;
  }
}

/** A grpc-js client interceptor that adds the bearer token to every call's metadata. */
export function bearerInterceptor(token: BearerToken): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set("authorization", `Bearer ${token.current()}`);
        next(metadata, listener);
      },
    });
}
