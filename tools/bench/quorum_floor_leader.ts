// The quorum floor's leader (quorum_floor_server.ts --role leader): Tenure's Lease.Grant,
// Lease.Revoke, Lock.Acquire and Lock.Release, each made durable the cheapest way a replicated
// service can be on this machine, and nothing more. Every request of one event-loop turn goes into
// one batch (group commit, as Tenure's Ready does); the batch is written to each follower's stream
// FIRST, then appended to the leader's own file and fdatasynced on the thread pool (the leader's
// fsync overlaps the followers' round trip, as Tenure's leaderSendsBeforePersist does); a batch
// commits, in order, once its own fdatasync is done and one follower acknowledged it durable.
// Then it is applied to a lock table: a free name is granted, a held one queues a blocking
// acquire FIFO, and a release hands the name to the next waiter in the same apply (one commit per
// handoff, no read round). No log matching, terms, elections, exactly-once, lease expiry,
// validation or auth: what it costs is the least any consensus server on this stack pays.

import { closeSync, fdatasync, openSync, writeSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

/** The reply of one request, or the gRPC status it fails with. */
type Reply = (error: grpc.ServiceError | null, response?: object) => void;

export type FloorCommand =
  | { readonly kind: "grant" }
  | { readonly kind: "revoke" }
  | { readonly kind: "acquire"; readonly name: string; readonly wait: boolean }
  | { readonly kind: "release"; readonly name: string; readonly token: string };

interface Proposal {
  readonly command: FloorCommand;
  readonly reply: Reply;
}

interface Batch {
  readonly seq: number;
  readonly proposals: readonly Proposal[];
  ownDurable: boolean;
}

/** One follower's stream: a frame out per batch, the durable seq back. */
export interface FollowerLink {
  send(frame: Buffer): void;
}

/** Batches written but not committed, at most (then a request waits for the next turn's batch). */
const IN_FLIGHT_MAX = 64;
/** Every frame (and acknowledgement) starts with its batch's seq, a big-endian uint64. */
export const SEQ_BYTES = 8;

export function encodeFrame(seq: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(SEQ_BYTES + payload.length);
  frame.writeBigUInt64BE(BigInt(seq), 0);
  payload.copy(frame, SEQ_BYTES);
  return frame;
}

export function frameSeq(frame: Buffer): number {
  return Number(frame.readBigUInt64BE(0));
}

export class FloorLeader {
  private pending: Proposal[] = [];
  private scheduled = false;
  private readonly inFlight: Batch[] = [];
  private nextSeq = 1;
  /** The highest seq any follower reported durable. */
  private ackedSeq = 0;
  private readonly fd: number;
  private readonly holders = new Map<string, string>();
  private readonly waiters = new Map<string, Reply[]>();
  private lastToken = 0;
  private lastLeaseId = 0;

  constructor(
    logPath: string,
    private readonly followers: readonly FollowerLink[],
  ) {
    this.fd = openSync(logPath, "a");
  }

  propose(command: FloorCommand, reply: Reply): void {
    this.pending.push({ command, reply });
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** A follower says every batch up to `seq` is on its disk. */
  acked(seq: number): void {
    if (seq > this.ackedSeq) this.ackedSeq = seq;
    this.commitReady();
  }

  close(): void {
    closeSync(this.fd);
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    if (this.inFlight.length >= IN_FLIGHT_MAX) {
      this.scheduled = true; // retried once a batch commits
      return;
    }
    const batch: Batch = { seq: this.nextSeq++, proposals: this.pending, ownDurable: false };
    this.pending = [];
    this.inFlight.push(batch);
    const payload = Buffer.from(JSON.stringify(batch.proposals.map((p) => p.command)));
    const frame = encodeFrame(batch.seq, payload);
    for (const f of this.followers) f.send(frame);
    writeSync(this.fd, frame);
    fdatasync(this.fd, (error) => {
      if (error) throw error; // a bench tool: a failed fsync ends the run
      batch.ownDurable = true;
      this.commitReady();
    });
  }

  private commitReady(): void {
    while (this.inFlight.length > 0) {
      const head = this.inFlight[0];
      if (head === undefined || !head.ownDurable || head.seq > this.ackedSeq) break;
      this.inFlight.shift();
      for (const p of head.proposals) this.apply(p);
    }
    if (this.scheduled && this.pending.length > 0 && this.inFlight.length < IN_FLIGHT_MAX) setImmediate(() => this.flush());
  }

  private apply({ command, reply }: Proposal): void {
    switch (command.kind) {
      case "grant":
        return reply(null, { leaseId: String(++this.lastLeaseId) });
      case "revoke":
        return reply(null, {});
      case "acquire": {
        if (!this.holders.has(command.name)) return this.grantTo(command.name, reply);
        if (!command.wait) return reply(status(grpc.status.FAILED_PRECONDITION, `${command.name} is held`));
        const queue = this.waiters.get(command.name) ?? [];
        queue.push(reply);
        this.waiters.set(command.name, queue);
        return;
      }
      case "release": {
        if (this.holders.get(command.name) !== command.token) return reply(null, { released: false });
        this.holders.delete(command.name);
        const next = this.waiters.get(command.name)?.shift();
        if (next !== undefined) this.grantTo(command.name, next);
        return reply(null, { released: true });
      }
    }
  }

  private grantTo(name: string, reply: Reply): void {
    const token = String(++this.lastToken);
    this.holders.set(name, token);
    reply(null, { token });
  }
}

function status(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}
