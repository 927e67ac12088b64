// What a workload needs from a cluster under test, whichever system runs it: the members, their
// pids (CPU and memory from /proc), the leader, kill -9 and restart for the failover trials.

export type SystemName = "etcd" | "tenure" | "floor";

export interface BenchMember {
  readonly id: string;
  /** host:port of the member's client API. */
  readonly clientAddress: string;
  /** Full voters serve clients; a witness (Tenure's two-site layout) does not. */
  readonly role: "voter" | "witness";
}

export interface BenchCluster {
  readonly system: SystemName;
  readonly members: readonly BenchMember[];
  /** The pid of the member's running process, or undefined while it is down. */
  pid(id: string): number | undefined;
  /** The current leader's id, polled until one is known or `timeoutMs` passes (throws). */
  leaderId(timeoutMs: number): Promise<string>;
  kill9(id: string): Promise<void>;
  /** Starts a killed member again on its data directory; resolves when it answers. */
  restart(id: string): Promise<void>;
  /** Stops every member (SIGTERM, then SIGKILL) and removes the data. */
  stop(): Promise<void>;
}

/** A member's output, kept for an error message when it fails to start or dies. */
export class OutputTail {
  private readonly lines: string[] = [];
  constructor(private readonly max = 20) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(n = 5): string {
    return this.lines.slice(-n).join(" | ");
  }
}
