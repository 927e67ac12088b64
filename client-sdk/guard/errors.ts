// Errors raised by the storage guard. Standalone on purpose: the guard is meant to be copied or
// imported into resource servers that do not use the rest of the SDK, so it depends on nothing
// but npm packages. client-sdk/errors.ts may wrap these later; the `code` strings are the contract.

export const STALE_FENCING_TOKEN = "STALE_FENCING_TOKEN";
export const INVALID_FENCING_TOKEN = "INVALID_FENCING_TOKEN";

/**
 * A write carried a fencing token lower than one the guard already accepted for the resource:
 * a newer lock holder exists, so this writer (perhaps paused past its lease) must stop.
 * Retrying with the same token can never succeed.
 */
export class StaleFencingTokenError extends Error {
  readonly code = STALE_FENCING_TOKEN;
  readonly resource: string;
  readonly token: bigint;
  readonly highestToken: bigint;

  constructor(resource: string, token: bigint, highestToken: bigint) {
    super(
      `stale fencing token ${token} for resource ${JSON.stringify(resource)}: ` +
        `token ${highestToken} was already accepted (a newer lock holder exists)`,
    );
    this.name = "StaleFencingTokenError";
    this.resource = resource;
    this.token = token;
    this.highestToken = highestToken;
  }

  /** Tokens are uint64, so they travel as decimal strings (JSON numbers lose precision past 2^53). */
  toJSON(): { code: string; resource: string; token: string; highest: string; message: string } {
    return {
      code: this.code,
      resource: this.resource,
      token: this.token.toString(),
      highest: this.highestToken.toString(),
      message: this.message,
    };
  }
}

/** A token that is missing, not a decimal integer, zero, or beyond uint64. */
export class InvalidFencingTokenError extends Error {
  readonly code = INVALID_FENCING_TOKEN;
  readonly value: unknown;

  constructor(value: unknown, why: string) {
    super(`invalid fencing token: ${why}`);
    this.name = "InvalidFencingTokenError";
    this.value = value;
  }
}
