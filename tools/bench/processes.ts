// Every process the bench starts goes through here, so every one of them is stopped by its pid:
// at the end of a cluster's life, and also on Ctrl-C, SIGTERM or an exception (stopEveryProcess
// is installed as the handler by cli.ts). Also the /proc readers for CPU time and resident memory.

import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process";
import { readFileSync } from "node:fs";

const live = new Map<number, ChildProcess>();

/** spawn() with the child recorded until it exits. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, [...args], { stdio: ["ignore", "pipe", "pipe"], ...options });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  live.set(pid, child);
  child.once("exit", () => live.delete(pid));
  return child;
}

/** Sends `signal` to `child` by its pid and waits until it has exited (SIGKILL after `graceMs`). */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.kill(child.pid, signal);
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL");
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Last resort on the way out: SIGKILL by pid to every child still running (synchronous). */
export function stopEveryProcess(): number {
  let killed = 0;
  for (const [pid, child] of live) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed++;
    } catch {
      // already gone
    }
  }
  live.clear();
  return killed;
}

export function liveProcessCount(): number {
  return live.size;
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s. */
const CLOCK_TICKS_PER_S = 100;

/** User + system CPU time of `pid` so far, in ms (0 if it is gone). */
export function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Resident set size of `pid` in bytes (VmRSS), or null if it is gone. */
export function rssBytesOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] === undefined ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}
