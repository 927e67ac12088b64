// The machine a run measured, for the JSON header and the README: CPUs, memory, kernel, Node,
// the load average at the start.

import { execFileSync } from "node:child_process";
import { cpus, loadavg, release, totalmem } from "node:os";

export function machineFacts(): Record<string, string | number> {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAverage: loadAverageText(),
    uptime: uptimeText(),
  };
}

export function loadAverageText(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

function uptimeText(): string {
  try {
    return execFileSync("uptime", { encoding: "utf8", timeout: 5000 }).trim();
  } catch {
    return "";
  }
}
