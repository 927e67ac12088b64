// Rate-limited log lines for drops and refusals: never silent, never a flood. A line per key
// (e.g. event and peer) goes out at most once per interval; the lines held back in between are
// counted and reported on the next one as `suppressed`.

import { performance } from "node:perf_hooks";

export type TransportLog = (fields: Readonly<Record<string, unknown>>) => void;

/** Distinct keys remembered; beyond it the table starts over (keys are event x peer x kind). */
const KEYS_MAX = 1024;

export class LogLimiter {
  private readonly lastByKey = new Map<string, { atMs: number; suppressed: number }>();

  constructor(
    private readonly log: TransportLog,
    private readonly intervalMs = 10_000,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Logs `fields` unless a line with `key` went out less than intervalMs ago. */
  maybeLog(key: string, fields: Readonly<Record<string, unknown>>): void {
    const now = this.nowMs();
    const last = this.lastByKey.get(key);
    if (last !== undefined && now - last.atMs < this.intervalMs) {
      last.suppressed += 1;
      return;
    }
    if (last === undefined && this.lastByKey.size >= KEYS_MAX) this.lastByKey.clear();
    this.log(last !== undefined && last.suppressed > 0 ? { ...fields, suppressed: last.suppressed } : fields);
    this.lastByKey.set(key, { atMs: now, suppressed: 0 });
  }
}
