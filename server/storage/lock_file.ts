// The LOCK file that stops two processes from opening one data directory (two nodes writing one
// log would each believe they own it; Raft's safety would silently go).
//
// LOCK holds the holder's pid. It is created atomically WITH its content (write a temp file, then
// link() it into place, which fails if LOCK exists), so no reader ever sees an empty LOCK of a
// live holder. A LOCK whose pid is dead, unreadable, or our own pid without this process holding
// it (containers restart as pid 1) is stale and taken over.
//
// Known limit: two processes taking over the SAME stale lock at the same instant can both win
// (read-check-remove is not atomic). Operators run one process per data directory; this guard is
// for the mistake of starting a second one, not for a start race after a crash.

import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { StorageLockedError } from "./raft_storage.ts";

export const LOCK_FILE_NAME = "LOCK";

/** Lock paths this process holds; a second open in the same process is refused too. */
const heldLockPaths = new Set<string>();

/** Bounds the take-over loop: one stale lock removed, then one more try. */
const LOCK_ATTEMPTS_MAX = 3;

/** Takes the lock of `dataDir` (already resolved to a real path); returns the LOCK path. */
export function acquireLock(dataDir: string): string {
  const lockPath = path.join(dataDir, LOCK_FILE_NAME);
  if (heldLockPaths.has(lockPath)) {
    throw new StorageLockedError(`data directory ${dataDir} is already open in this process (pid ${process.pid})`);
  }
  for (let attempt = 0; attempt < LOCK_ATTEMPTS_MAX; attempt++) {
    if (tryCreateLock(lockPath)) {
      heldLockPaths.add(lockPath);
      return lockPath;
    }
    const holderPid = readLockPid(lockPath);
    if (holderPid !== null && holderPid !== process.pid && isProcessAlive(holderPid)) {
      throw new StorageLockedError(
        `data directory ${dataDir} is locked by running process pid ${holderPid} ` +
          `(${lockPath}); stop it first, or remove LOCK if that pid is not a Tenure process`,
      );
    }
    rmSync(lockPath, { force: true }); // stale: its holder is gone
  }
  throw new StorageLockedError(`data directory ${dataDir}: could not take ${lockPath}`);
}

/** Removes LOCK if it is still ours (never another process's lock). Idempotent. */
export function releaseLock(lockPath: string): void {
  if (!heldLockPaths.delete(lockPath)) return;
  if (readLockPid(lockPath) === process.pid) rmSync(lockPath, { force: true });
}

function tryCreateLock(lockPath: string): boolean {
  const tempPath = `${lockPath}.${process.pid}.tmp`;
  writeFileSync(tempPath, `${process.pid}\n`);
  try {
    linkSync(tempPath, lockPath);
    return true;
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw error;
  } finally {
    rmSync(tempPath, { force: true });
  }
}

/** The pid in LOCK, or null when LOCK is missing or does not hold a pid. */
function readLockPid(lockPath: string): number | null {
  let text: string;
  try {
    text = readFileSync(lockPath, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM"; // exists, owned by another user
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}
