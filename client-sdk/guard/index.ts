// Public surface of the storage guard (package subpath "@tenure/client/guard"). The SQLite guard
// is its own subpath, "@tenure/client/guard/sqlite", so that only its users need better-sqlite3.

export { StaleFencingTokenError, InvalidFencingTokenError, STALE_FENCING_TOKEN, INVALID_FENCING_TOKEN } from "./errors.ts";
export { MemoryGuard, type MemoryGuardOptions } from "./memory_guard.ts";
export { parseFencingToken, MAX_TOKEN, type FencingToken, type FencingGuard, type RunResult, type TokenStore } from "./token_store.ts";
export {
  fencing,
  withFencing as withHttpFencing,
  isFenced,
  sendStale,
  sendError,
  DEFAULT_TOKEN_HEADER,
  type Fenced,
  type FencedRequest,
  type FencingHttpOptions,
} from "./http_middleware.ts";
export {
  withFencing as withGrpcFencing,
  fencedCall,
  DEFAULT_TOKEN_METADATA_KEY,
  ERROR_REASON_METADATA_KEY,
  type GrpcFencingOptions,
} from "./grpc_interceptor.ts";
export { validateToken, type ValidateTokenOptions, type ValidateTokenResult } from "./validate_token.ts";
export { REJECTIONS_METRIC, rejectionsCounter, type GuardMetricsOptions } from "./metrics.ts";
