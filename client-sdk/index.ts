// Public surface of the Tenure client SDK. Everything else in client-sdk/ is internal.

export { TenureClient, type TenureClientOptions, type GrantLeaseOptions, type LockState, type LockStatus } from "./client.ts";
export { TenureError, ERROR_CODES, type TenureErrorCode } from "./errors.ts";
export { Lease, type LeaseState, type LeaseEvent } from "./lease.ts";
export { Lock, type LockOptions, type LockScope } from "./lock.ts";
export { Election, Leadership, LeaderLatch, type LeaderInfo, type CampaignOptions, type RunOptions } from "./election.ts";
export type { CallOptions } from "./signals.ts";
export type { TlsOptions } from "./transport.ts";
export type { BearerTokenOptions } from "./bearer_token.ts";
export type { BackoffOptions, RandomSource, MonotonicClock } from "./backoff.ts";
