// A parsed file that follows its file: checked at most once per checkIntervalMs when used (a stat,
// no timer), parsed again when its identity (inode, mtime, size) changed, and on reload() (SIGHUP).
// A new version that does not parse keeps the last good one and logs why, so a half-written file
// never locks everyone out; only the first load's failure is the caller's (at start).

import { readFileSync, statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { AuthFileError } from "./token_file.ts";

export const RELOAD_CHECK_INTERVAL_MS = 1_000;

export interface ReloadingFileOptions<T> {
  readonly path: string;
  readonly what: string;
  readonly parse: (text: string, path: string) => T;
  readonly log: (fields: Record<string, unknown>) => void;
  readonly checkIntervalMs?: number;
  /** Monotonic ms (injected in tests). */
  readonly nowMs?: () => number;
}

export class ReloadingFile<T> {
  private value: T;
  private signature: string;
  private checkedAtMs: number;
  private readonly nowMs: () => number;

  constructor(private readonly o: ReloadingFileOptions<T>) {
    this.nowMs = o.nowMs ?? (() => performance.now());
    try {
      this.signature = this.currentSignature();
      this.value = o.parse(readFileSync(o.path, "utf8"), o.path);
    } catch (error) {
      if (error instanceof AuthFileError) throw error;
      throw new AuthFileError(`cannot read the ${o.what} ${o.path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.checkedAtMs = this.nowMs();
  }

  /** The current version (re-checked if the last check is older than the interval). */
  current(): T {
    const now = this.nowMs();
    if (now - this.checkedAtMs >= (this.o.checkIntervalMs ?? RELOAD_CHECK_INTERVAL_MS)) {
      this.checkedAtMs = now;
      this.maybeReload(false);
    }
    return this.value;
  }

  /** Re-reads now (SIGHUP), even if the file looks unchanged. */
  reload(): void {
    this.maybeReload(true);
  }

  private maybeReload(force: boolean): void {
    let signature: string;
    try {
      signature = this.currentSignature();
      if (!force && signature === this.signature) return;
      this.value = this.o.parse(readFileSync(this.o.path, "utf8"), this.o.path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.o.log({
        level: "warn",
        event: "auth_reload_failed",
        file: this.o.path,
        what: this.o.what,
        reason,
        kept: "the last good version",
      });
      return;
    }
    this.signature = signature;
    this.o.log({ event: "auth_reloaded", file: this.o.path, what: this.o.what });
  }

  private currentSignature(): string {
    const s = statSync(this.o.path);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  }
}
