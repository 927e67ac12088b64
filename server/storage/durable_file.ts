// Replaces a small file so that after any crash it is the old one or the new one, never a mix:
// write a temp file, fsync it, rename it over the target, fsync the directory (the rename is
// durable only once the directory is).

import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";

export const TEMP_SUFFIX = ".tmp";

/** `dirFd`: the target's directory, already open (the ack record keeps it open); else opened here. */
export function replaceFileDurably(target: string, text: string, dir: { readonly fd: number } | { readonly path: string }): void {
  const temp = target + TEMP_SUFFIX;
  const fd = openSync(temp, "w");
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, target);
  if ("fd" in dir) {
    fsyncSync(dir.fd);
    return;
  }
  const dirFd = openSync(dir.path, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
