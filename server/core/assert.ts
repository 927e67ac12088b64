// Assertions for bugs. They stay on in production: a broken invariant stops the process
// (the supervisor restarts it, the simulator prints the seed) instead of serving wrong data.
// PURE: no imports.

export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertNever(value: never, what: string): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}

export function assertSafeInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AssertionError(`${what} must be a non-negative safe integer, got ${value}`);
  }
}

/**
 * The pure core throws only through assert(); anything else it throws (a TypeError, a
 * RangeError) is a bug that may have left it half-updated, so the node loop treats it as a
 * broken invariant too: the process must stop rather than go on serving (server/fatal.ts).
 */
export function asInvariantViolation(error: unknown, what: string): AssertionError {
  if (error instanceof AssertionError) return error;
  const described = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new AssertionError(`${what} threw ${described}`, { cause: error });
}
