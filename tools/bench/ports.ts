// Fixed ports on 127.0.0.1 for the clusters under test (a member's address must be known before
// it starts, and the bench keeps no proxy in front of it: a proxy in this process would take CPU
// from the load generator). They sit below Linux's ephemeral range (32768-60999), so no other
// process's port-0 listener can be handed one; a port some other program holds is refused before
// the cluster starts, with its number.

import { createServer } from "node:net";

export const HOST = "127.0.0.1";

/** Resolves if `port` can be bound on 127.0.0.1 now, rejects with a clear error otherwise. */
function assertFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new Error(`port ${HOST}:${port} is in use (${e.code ?? e.message}): stop what holds it, or another bench run`)),
    );
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

export async function assertPortsFree(ports: readonly number[]): Promise<void> {
  for (const p of ports) await assertFree(p);
}

/** Waits until `check` resolves true, polling every `stepMs`, or throws after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, stepMs = 50): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
