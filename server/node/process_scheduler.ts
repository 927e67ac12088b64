// Coalesces "please run a process() pass" requests into one pass per event-loop turn: every
// proposal, message and tick that arrives in the same turn shares one Ready, hence one SQLite
// transaction and one AppendEntries per follower (group commit).

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
      // A throw here (storage failure, assertion) is fatal by design: it reaches the process's
      // uncaught-exception handler, which logs and exits rather than serve diverged state.
      this.pass?.();
    });
  }
}
