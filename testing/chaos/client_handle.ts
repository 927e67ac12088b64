// The harness's side of client_process.ts: spawns it, turns its lines into history operations in
// the harness's clock (performance.now), tells the nemesis when it just got a lock, pauses and
// resumes it, and stops it by pid.

import { spawn, type ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import type { ClientProcessOptions } from "./client_process.ts";
import type { Op, OpSink } from "./workload.ts";

const script = new URL("./client_process.ts", import.meta.url).pathname;
const local = (epochMs: number): number => epochMs - performance.timeOrigin;

export class ClientHandle {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private readonly acquiredWaiters = new Set<() => void>();
  private pausedNow = false;
  readonly stderr: string[] = [];

  constructor(options: ClientProcessOptions, sink: OpSink) {
    this.child = spawn(process.execPath, ["--import", "tsx", script, JSON.stringify(options)], { stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise((res) => this.child.once("exit", () => res()));
    createInterface({ input: stdoutOf(this.child) }).on("line", (line) => {
      let msg: { op?: Op; acquired?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.op) {
        const op = msg.op;
        sink({
          ...op,
          inv: local(op.inv),
          cmp: local(op.cmp),
          ...(op.heldFrom !== undefined ? { heldFrom: local(op.heldFrom) } : {}),
          ...(op.heldUntil !== undefined ? { heldUntil: local(op.heldUntil) } : {}),
        });
      }
      if (msg.acquired !== undefined) {
        for (const w of this.acquiredWaiters) w();
        this.acquiredWaiters.clear();
      }
    });
    createInterface({ input: stderrOf(this.child) }).on("line", (line) => {
      if (this.stderr.length < 200) this.stderr.push(line);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves true at its next grant, false after `budgetMs` without one. */
  nextAcquire(budgetMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.acquiredWaiters.delete(done);
        resolve(false);
      }, budgetMs);
      this.acquiredWaiters.add(done);
    });
  }

  pause(): void {
    if (this.child.exitCode === null && this.child.pid !== undefined) {
      process.kill(this.child.pid, "SIGSTOP");
      this.pausedNow = true;
    }
  }

  resume(): void {
    if (this.pausedNow && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, "SIGCONT");
      } catch {
        // gone
      }
    }
    this.pausedNow = false;
  }

  /** SIGTERM (it finishes its cycle), SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    this.resume();
    if (this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function stdoutOf(child: ChildProcess): NodeJS.ReadableStream {
  if (!child.stdout) throw new Error("client process spawned without a stdout pipe");
  return child.stdout;
}

function stderrOf(child: ChildProcess): NodeJS.ReadableStream {
  if (!child.stderr) throw new Error("client process spawned without a stderr pipe");
  return child.stderr;
}
