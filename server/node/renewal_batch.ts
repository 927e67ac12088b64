// The leader's queue of lease renewals waiting to be proposed together (DESIGN.md section 3:
// renewals are replicated, batched and coalesced per heartbeat interval). Every KeepAlive request
// of every client that reaches the leader within one heartbeat interval goes into ONE log entry,
// a LeaseKeepAliveBatch (server/state/commands.ts), instead of an entry each: with many service
// processes each renewing a few leases, the entry, its storage row, its replication and its
// apply are paid once per interval, not once per request.
//
// A renewal waits at most `coalesceTicks` ticks (RaftNode passes the heartbeat interval), and
// the batch leaves at once when the next renewal would not fit beside it: its encoded entry stays
// within COMMAND_BYTES_MAX (each renewal's bytes are counted as it is queued) and it holds at most
// RENEWALS_PER_BATCH_MAX renewals. Only the queue lives here; RaftNode proposes and answers.
// Deterministic: time is the node's tick count, so the simulator replays it exactly.

import { assert } from "../core/assert.ts";
import { COMMAND_CODEC_VERSION, type LeaseKeepAlive, RENEWALS_PER_BATCH_MAX } from "../state/commands.ts";
import { COMMAND_BYTES_MAX, utf8ByteLength } from "../state/limits.ts";

/** One KeepAlive request waiting in the queue, and what answers its caller. */
export interface QueuedRenewal<Callback> {
  readonly command: LeaseKeepAlive;
  readonly callback: Callback;
  /** Its JSON bytes inside the batch, with the separator. */
  readonly bytes: number;
  /** Answered already (its call was cancelled): it is proposed with the rest, its answer dropped. */
  cancelled: boolean;
}

/** The widest number a stamp carries (leader time, term). */
const WIDEST = Number.MAX_SAFE_INTEGER;

/**
 * The bytes of a batch entry with no renewal in it (the stamp at its widest, the wrapper): the
 * renewals' own bytes must fit what COMMAND_BYTES_MAX leaves beside it.
 */
export const RENEWAL_BATCH_OVERHEAD_BYTES = utf8ByteLength(
  JSON.stringify({ v: COMMAND_CODEC_VERSION, leaderTimeMs: WIDEST, term: WIDEST, command: { kind: "LeaseKeepAliveBatch", renewals: [] } }),
);

/** A renewal's bytes inside a batch entry (its JSON and one separator). */
export function renewalBytes(command: LeaseKeepAlive): number {
  return utf8ByteLength(JSON.stringify(command)) + 1;
}

export class RenewalQueue<Callback> {
  private items: QueuedRenewal<Callback>[] = [];
  private itemsBytes = 0;
  /** Ticks since the oldest renewal in the queue arrived. */
  private ticksWaited = 0;
  private readonly bytesBudget: number;

  constructor(private readonly coalesceTicks: number) {
    assert(Number.isSafeInteger(coalesceTicks) && coalesceTicks >= 1, `coalesceTicks must be >= 1, got ${coalesceTicks}`);
    this.bytesBudget = COMMAND_BYTES_MAX - RENEWAL_BATCH_OVERHEAD_BYTES;
  }

  /**
   * Whether a renewal of `bytes` fits a batch of its own. Every renewal within the state limits
   * does (server/state/limits.ts commandBytesAtMaxima counts the batch's wrapper, and
   * server/limits.ts asserts at start that it fits an entry); one that does not is proposed alone
   * and refused there like any oversized command.
   */
  fits(bytes: number): boolean {
    return bytes <= this.bytesBudget;
  }

  get size(): number {
    return this.items.length;
  }

  /**
   * Queues `item`. Returns the batch to propose first when `item` does not fit beside the renewals
   * already waiting (they leave now, `item` starts the next batch), else null.
   */
  add(item: QueuedRenewal<Callback>): QueuedRenewal<Callback>[] | null {
    assert(this.fits(item.bytes), `a renewal of ${item.bytes} bytes does not fit a batch entry`);
    const full = this.items.length >= RENEWALS_PER_BATCH_MAX || this.itemsBytes + item.bytes > this.bytesBudget;
    const out = full ? this.take() : null;
    if (this.items.length === 0) this.ticksWaited = 0;
    this.items.push(item);
    this.itemsBytes += item.bytes;
    return out;
  }

  /** One tick passed: the batch once its oldest renewal has waited coalesceTicks, else null. */
  tick(): QueuedRenewal<Callback>[] | null {
    if (this.items.length === 0) return null;
    this.ticksWaited++;
    return this.ticksWaited >= this.coalesceTicks ? this.take() : null;
  }

  /** Everything queued, in arrival order; the queue is left empty. */
  take(): QueuedRenewal<Callback>[] {
    const items = this.items;
    this.items = [];
    this.itemsBytes = 0;
    this.ticksWaited = 0;
    return items;
  }
}
