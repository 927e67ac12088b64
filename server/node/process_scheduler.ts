// Coalesces "please run a process() pass" requests into one pass per event-loop turn: every
// proposal, message and tick that arrives in the same turn shares one Ready, hence one SQLite
// transaction and one AppendEntries per follower (group commit).

import { runOrFatal } from "../fatal.ts";

export class ProcessScheduler {
  private pass: (() => void) | null = null;
  private scheduled = false;

  /** Sets the pass to run (the node's process()); requests before bind() wait for it. */
  bind(pass: () => void): void {
    this.pass = pass;
    if (this.scheduled) this.schedule();
  }

  request(): void {
    if (this.scheduled && this.pass !== null) return;
    this.scheduled = true;
    if (this.pass !== null) this.schedule();
  }

  private schedule(): void {
    setImmediate(() => {
      this.scheduled = false;
      // Any throw here is fatal, not only isFatal() ones: a storage failure (raft_storage.ts:
      // every write completes or throws) or a throw between persist and advance leaves the Ready
      // half done, and the node must not serve from a state it cannot name.
      runOrFatal("node process pass", () => this.pass?.());
    });
  }
}
