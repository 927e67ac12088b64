// Keeping the evidence of a damaged store before the store repairs itself (README "Recovery"):
// nothing the disk gave us is destroyed, only copied or moved aside, so an operator (or a
// forensic look at what the disk did) still has it. Names carry the ack record's generation at
// the time, so several events do not overwrite one another. Every other file in the data
// directory (incarnation, peer_incarnations, LOCK, ack_record) is left where it is.

import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, truncateSync } from "node:fs";
import path from "node:path";

/** The first of `base`, `base.2`, `base.3`, ... that does not exist yet. */
function freshName(base: string): string {
  if (!existsSync(base)) return base;
  for (let n = 2; ; n++) if (!existsSync(`${base}.${n}`)) return `${base}.${n}`;
}

function fsyncPath(p: string): void {
  const fd = openSync(p, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Copies the WAL to `<wal>.corrupt-<generation>` (durably) and returns the copy's path. */
export function keepWalCopy(walPath: string, generation: number): string {
  const copy = freshName(`${walPath}.corrupt-${generation}`);
  copyFileSync(walPath, copy);
  fsyncPath(copy);
  fsyncPath(path.dirname(walPath));
  return copy;
}

/** Cuts the WAL at `bytes` (the end of its last valid commit frame) and makes the cut durable. */
export function cutWal(walPath: string, bytes: number): void {
  truncateSync(walPath, bytes);
  fsyncPath(walPath);
}

/**
 * Removes the WAL's shared-memory index (`<db>-shm`, a cache SQLite rebuilds from the WAL when
 * it is absent): after the WAL was cut, lost or truncated, an index left by the crashed process
 * describes frames that are no longer there. Only while we hold the data directory's LOCK.
 */
export function dropWalIndex(dbPath: string): void {
  rmSync(`${dbPath}-shm`, { force: true });
}

/**
 * Moves raft.db and its -wal and -shm (those that exist) into the directory
 * `<dataDir>/<dbFileName>.corrupt-<generation>/`, durably; returns that directory. SQLite can
 * open the moved raft.db there with its WAL, as it was.
 */
export function moveStoreAside(dataDir: string, dbFileName: string, generation: number): string {
  const aside = freshName(path.join(dataDir, `${dbFileName}.corrupt-${generation}`));
  mkdirSync(aside);
  for (const suffix of ["", "-wal", "-shm"]) {
    const from = path.join(dataDir, dbFileName + suffix);
    if (existsSync(from)) renameSync(from, path.join(aside, dbFileName + suffix));
  }
  fsyncPath(aside);
  fsyncPath(dataDir);
  return aside;
}
