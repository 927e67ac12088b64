// The guard in front of an HTTP resource server (Node's `http` or Express-style apps). The lock
// holder sends its fencing token in a header; the middleware rejects a missing or malformed token
// (400) and a stale one (409) BEFORE the handler runs, and raises the resource's mark to the
// token it let through. That early check is NOT atomic with whatever the handler writes later
// (a newer holder may arrive in between), so a handler whose write must be fenced does it via
// `req.fenced.run(write)`, which re-checks inside the guard's transaction.

import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidFencingTokenError, StaleFencingTokenError } from "./errors.ts";
import { tryParseFencingToken } from "./token_store.ts";
import type { FencingGuard, RunResult } from "./token_store.ts";

export const DEFAULT_TOKEN_HEADER = "tenure-fencing-token";

/** What the middleware attaches to an admitted request. */
export interface Fenced<C> {
  readonly resource: string;
  readonly token: bigint;
  /** The protected write, atomic with a fresh check of the token (throws StaleFencingTokenError). */
  run<T>(write: (ctx: C) => T): T;
}

export type FencedRequest<C, R extends IncomingMessage = IncomingMessage> = R & { fenced: Fenced<C> };

export interface FencingHttpOptions<R extends IncomingMessage> {
  /** The resource a request writes to; null/undefined answers 400. */
  readonly resourceOf: (req: R) => string | null | undefined;
  /** Header carrying the token (default tenure-fencing-token). */
  readonly header?: string;
  /** Which requests to fence (default: all but GET, HEAD and OPTIONS, which must not write). */
  readonly shouldFence?: (req: R) => boolean;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Express-style middleware: `app.use(fencing(guard, { resourceOf }))`. */
export function fencing<C, R extends IncomingMessage = IncomingMessage>(
  guard: FencingGuard<C>,
  options: FencingHttpOptions<R>,
): (req: R, res: ServerResponse, next: (err?: unknown) => void) => void {
  const header = (options.header ?? DEFAULT_TOKEN_HEADER).toLowerCase();
  const shouldFence = options.shouldFence ?? ((req: R) => !SAFE_METHODS.has(req.method ?? "GET"));
  return (req, res, next) => {
    if (!shouldFence(req)) return next();
    const resource = options.resourceOf(req);
    if (resource === null || resource === undefined || resource === "") {
      return sendJson(res, 400, { code: "INVALID_RESOURCE", message: "the request names no fenced resource" });
    }
    const raw = req.headers[header];
    const token = Array.isArray(raw)
      ? new InvalidFencingTokenError(raw, `${header} given more than once`)
      : tryParseFencingToken(raw === undefined ? undefined : raw.trim());
    if (token instanceof InvalidFencingTokenError) {
      return sendJson(res, 400, { code: token.code, message: `${token.message} (header ${header})` });
    }
    let admitted: RunResult<undefined>;
    try {
      // An empty write: check and raise the mark, so a stale holder is turned away before the
      // handler starts, and every older holder is turned away from now on.
      admitted = guard.tryRun(resource, token, () => undefined);
    } catch (e) {
      return next(e);
    }
    if (!admitted.ok) return sendStale(res, admitted.error);
    (req as FencedRequest<C, R>).fenced = {
      resource,
      token,
      run: (write) => guard.run(resource, token, write),
    };
    next();
  };
}

/** For a plain `http.createServer`: fences, then calls `handler` with the admitted request. */
export function withFencing<C>(
  guard: FencingGuard<C>,
  options: FencingHttpOptions<IncomingMessage>,
  handler: (req: IncomingMessage & { fenced?: Fenced<C> }, res: ServerResponse) => void | Promise<void>,
): (req: IncomingMessage, res: ServerResponse) => void {
  const mw = fencing(guard, options);
  return (req, res) => {
    mw(req, res, (err) => {
      if (err !== undefined) return sendError(res, err);
      Promise.resolve()
        .then(() => handler(req, res))
        .catch((e: unknown) => sendError(res, e));
    });
  };
}

/** True when the middleware admitted `req` (fenced requests only). */
export function isFenced<C>(req: IncomingMessage): req is FencedRequest<C> {
  return typeof (req as Partial<FencedRequest<C>>).fenced === "object";
}

/** 409 with the STALE_FENCING_TOKEN body; for handlers whose `req.fenced.run` lost a race. */
export function sendStale(res: ServerResponse, e: StaleFencingTokenError): void {
  sendJson(res, 409, e.toJSON());
}

/** Maps a guard error to its status (409 stale, 400 invalid token), anything else to 500. */
export function sendError(res: ServerResponse, e: unknown): void {
  if (e instanceof StaleFencingTokenError) return sendStale(res, e);
  if (e instanceof InvalidFencingTokenError) return sendJson(res, 400, { code: e.code, message: e.message });
  sendJson(res, 500, { code: "INTERNAL", message: "internal error" });
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}
