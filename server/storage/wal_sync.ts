// The fsync of a SQLite WAL, off the event loop (issue 14 point 3: the leader's own write in
// parallel with its followers' without blocking the loop that serves the clients).
//
// SqliteStorage.saveInBackground commits its transaction at synchronous=NORMAL: SQLite appends
// the frames to the WAL with write(2) and returns; in WAL mode NORMAL stays crash-consistent
// (SQLite still syncs a restarted WAL's header before new frames, and the WAL before any
// checkpoint), only not yet durable. This class then runs fdatasync(2) on the same file on
// libuv's thread pool (fs.fdatasync): once it returns, every frame written before it, the
// transaction's commit frame included, is on the disk, exactly what synchronous=FULL's own
// fsync at commit gives. Our descriptor is a second one on the WAL; fdatasync flushes the
// file's data whichever descriptor names it.
//
// One sync at a time (the Ready loop writes nothing else until a write is durable); close()
// waits for an in-flight sync's callback before it closes the descriptor, so the thread pool
// never syncs a descriptor number the process has reused.

import { closeSync, fdatasync, fstatSync, openSync, statSync } from "node:fs";

/** fs.fdatasync's shape: the thread-pool call that makes a file's data durable. */
export type SyncFile = (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void;
import { assert } from "../core/assert.ts";

export class WalSync {
  private fd: number | null = null;
  private inFlight = false;
  private closeRequested = false;

  constructor(
    private readonly walPath: string,
    private readonly syncFile: SyncFile = fdatasync,
  ) {}

  /** True from sync() until its callback ran. */
  syncing(): boolean {
    return this.inFlight;
  }

  /**
   * Makes everything written to the WAL so far durable; `done(null)` once it is, `done(error)`
   * when the sync failed (the caller must treat it as fatal: the write may not be on disk).
   */
  sync(done: (error: Error | null) => void): void {
    assert(!this.inFlight, "WalSync.sync while a sync is in flight");
    assert(!this.closeRequested, "WalSync.sync after close()");
    const fd = this.descriptor();
    this.inFlight = true;
    this.syncFile(fd, (error) => {
      this.inFlight = false;
      if (this.closeRequested) this.closeDescriptor();
      done(error === null ? null : new Error(`fdatasync of ${this.walPath} failed: ${error.message}`, { cause: error }));
    });
  }

  /** Closes the descriptor now, or after the sync in flight returns. Idempotent. */
  close(): void {
    this.closeRequested = true;
    if (!this.inFlight) this.closeDescriptor();
  }

  private descriptor(): number {
    if (this.fd === null) this.fd = openSync(this.walPath, "r+");
    // SQLite keeps the WAL file while its connection is open (a TRUNCATE checkpoint truncates, it
    // does not unlink), so the path must still name our file; if not, a sync of our descriptor
    // would not make the live WAL durable.
    const ours = fstatSync(this.fd);
    const live = statSync(this.walPath);
    assert(ours.ino === live.ino && ours.dev === live.dev, `${this.walPath} was replaced under an open store`);
    return this.fd;
  }

  private closeDescriptor(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}
