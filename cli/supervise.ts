// `lock NAME -- cmd`: runs the child while the lock is held and makes sure it is gone before the
// lock may be lost. The lock's validity is the SDK's conservative client deadline (lease.ts,
// validity.ts: t0 + ttl * (1 - rho) - margin on our own monotonic clock), which renewals move
// forward. When it comes within `killGraceMs + killMarginMs` without a renewal having moved it,
// the child's process group gets SIGTERM; SIGKILL follows `killGraceMs` later, and never later
// than `killMarginMs` before the validity ends, so the child is dead while the server still holds
// the lease (the server keeps it at least ttl * (1 + rho) after the same renewal). Once SIGTERM is
// sent the kill goes through even if a renewal arrives: a half-stopped child is not resumed.
// The child runs in its own process group (detached), so `sh -c 'a | b'` dies as a whole.

import { spawn } from "node:child_process";
import { constants } from "node:os";

export interface Validity {
  /** Monotonic ms until which the holder may act (a renewal moves it forward). */
  validUntilMs(): number;
  /** Aborts when the lock may no longer be held (jeopardy, loss, revoke). */
  readonly lost: AbortSignal;
}

export interface SuperviseOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly validity: Validity;
  /** Between SIGTERM and SIGKILL. */
  readonly killGraceMs: number;
  /** SIGKILL at the latest this long before the validity ends (covers the poll interval). */
  readonly killMarginMs: number;
  readonly clock: () => number;
  readonly pollMs: number;
  /** tenurectl itself was asked to stop: the child gets the same SIGTERM-then-SIGKILL. */
  readonly interrupted: AbortSignal;
  readonly onEvent: (event: string, fields: Readonly<Record<string, unknown>>, text: string) => void;
}

export type StopReason = "validity" | "lost" | "interrupted";

export interface ChildOutcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Why tenurectl signalled the child (null: it exited on its own). */
  readonly stoppedFor: StopReason | null;
  /** The exit status a shell would report: the code, or 128 + the signal number. */
  readonly status: number;
}

export function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}

export function superviseChild(o: SuperviseOptions): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const child = spawn(o.command, [...o.args], { stdio: "inherit", env: o.env, detached: true });
    let stoppedFor: StopReason | null = null;
    let killAt = Number.POSITIVE_INFINITY;
    let killed = false;
    let exited = false;
    const group = (signal: NodeJS.Signals): void => {
      if (exited || child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    const kill = (): void => {
      if (killed) return;
      killed = true;
      o.onEvent("child-sigkill", { pid: child.pid }, `SIGKILL to child ${child.pid}`);
      group("SIGKILL");
    };
    const stop = (why: StopReason): void => {
      if (stoppedFor !== null) return;
      stoppedFor = why;
      const now = o.clock();
      const leftMs = Math.round(o.validity.validUntilMs() - now);
      // Lost already (jeopardy, expiry): no time for a grace, the lock may be someone else's.
      if (why === "lost") return kill();
      o.onEvent(
        "child-sigterm",
        { pid: child.pid, reason: why, validityLeftMs: leftMs },
        `${why === "interrupted" ? "interrupted" : "the lock may be lost"}: SIGTERM to child ${child.pid} (validity left ${leftMs} ms)`,
      );
      group("SIGTERM");
      killAt = Math.min(now + o.killGraceMs, o.validity.validUntilMs() - o.killMarginMs);
    };
    const tick = setInterval(() => {
      const now = o.clock();
      if (o.validity.lost.aborted) {
        stop("lost");
        kill();
      } else if (stoppedFor === null && now >= o.validity.validUntilMs() - o.killGraceMs - o.killMarginMs) stop("validity");
      if (stoppedFor !== null && now >= killAt) kill();
    }, o.pollMs);
    const onInterrupt = (): void => stop("interrupted");
    o.interrupted.addEventListener("abort", onInterrupt, { once: true });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      // Whatever else of the child's group ignored SIGTERM must not outlive the lock either.
      if (stoppedFor !== null && !killed) group("SIGKILL");
      exited = true;
      clearInterval(tick);
      o.interrupted.removeEventListener("abort", onInterrupt);
      const status = code !== null ? code : signal !== null ? 128 + signalNumber(signal) : 1;
      resolve({ code, signal, stoppedFor, status });
    };
    child.once("error", (error) => {
      o.onEvent("child-error", { message: error.message }, `cannot run ${o.command}: ${error.message}`);
      finish(127, null);
    });
    child.once("exit", (code, signal) => {
      o.onEvent("child-exited", { pid: child.pid, code, signal }, `child ${child.pid} exited (${signal ?? `code ${code}`})`);
      finish(code, signal);
    });
    o.onEvent("child-started", { pid: child.pid }, `child ${child.pid} started: ${[o.command, ...o.args].join(" ")}`);
  });
}
