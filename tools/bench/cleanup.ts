// Synchronous clean-up on the way out (temp data directories, the build, the certificates),
// also when the run is cut short by Ctrl-C, SIGTERM or an exception: cli.ts runs every
// registered function after killing the processes that might still write there.

const cleanups = new Set<() => void>();

/** Registers `fn`; the returned function runs it now and unregisters it. */
export function registerCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => {
    if (!cleanups.delete(fn)) return;
    fn();
  };
}

export function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort on the way out
    }
  }
}
