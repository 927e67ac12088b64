// Cluster-wide fencing tokens and lease ids. PURE.
//
// Layout: id = epoch * 2^32 + counter, kept a plain safe integer, so "next" is just +1 and
// tokens compare as numbers everywhere (SDK, storage guard, JSON).
//   - epoch:   0 .. 2^21 - 1 (EPOCH_MAX = 2,097,151); the high bits.
//   - counter: 0 .. 2^32 - 1 per epoch (4.29e9 grants). Running past 2^32 - 1 simply carries into
//              the next epoch: the numbers stay strictly increasing.
//   - maximum: EPOCH_MAX * 2^32 + 2^32 - 1 = 2^53 - 1 = Number.MAX_SAFE_INTEGER.
// Tokens (lock grants and election leaderships) share one counter; lease ids use a second counter
// with the same layout. Both are replicated state, carried in snapshots, identical on every replica.
// Since command codec v2 the leader draws lease ids at random (server/api/lease_ids.ts: not
// guessable) and this counter serves only grants without a drawn id (v1 entries, tests). A random
// id carries no epoch: after a restore an old cluster's lease id comes back only by chance (odds
// 2^-53 per draw and old id), and even then it is owned by whoever granted it (caller.ts).
//
// Restoring from a backup must never reissue a token (or a lease id): a backup is an old image,
// and the cluster it came from may have issued larger tokens after it was taken. A restore
// therefore raises the epoch (bumpEpoch): every later id is >= newEpoch * 2^32, larger than
// anything issued in an epoch below newEpoch. newEpoch = max(currentEpoch + 1, epochMin):
//   - "+1" alone is enough when the old cluster stayed in the backup's epoch (it would need 4.29e9
//     grants after the backup to leave it) and was not itself restored again;
//   - epochMin covers the rest: `tenured restore` (server/backup/restore.ts) passes epochMin =
//     the epoch of the backup's highest token or lease id + 2, so the old cluster would need more
//     than 2^32 grants after the backup to reach the restored cluster's first id ("+1" could be
//     crossed by a few grants when the counter was near the top of its epoch). Not the wall
//     clock: members restored from one file in separate runs must get the same epoch, or tokens
//     would fall when leadership moves between them.
// The bump happens inside the restore (LockStateMachine.restoreFromBackup) or as the replicated
// RestoreEpochBump command: there is no operator flag to remember.

import { assert } from "../core/assert.ts";

export const EPOCH_SPAN = 2 ** 32;
export const EPOCH_MAX = 2 ** 21 - 1;

export interface IdCounters {
  /** Last fencing token issued (0 = none yet). */
  readonly lastToken: number;
  /** Last lease id issued (0 = none yet). */
  readonly lastLeaseId: number;
}

export function epochOf(id: number): number {
  return Math.floor(id / EPOCH_SPAN);
}

export class IdAllocator {
  private lastToken: number;
  private lastLeaseId: number;

  constructor(counters: IdCounters = { lastToken: 0, lastLeaseId: 0 }) {
    assertId(counters.lastToken, "lastToken");
    assertId(counters.lastLeaseId, "lastLeaseId");
    this.lastToken = counters.lastToken;
    this.lastLeaseId = counters.lastLeaseId;
  }

  nextToken(): number {
    assert(this.lastToken < Number.MAX_SAFE_INTEGER, "fencing token space exhausted");
    this.lastToken += 1;
    return this.lastToken;
  }

  nextLeaseId(): number {
    assert(this.lastLeaseId < Number.MAX_SAFE_INTEGER, "lease id space exhausted");
    this.lastLeaseId += 1;
    return this.lastLeaseId;
  }

  /** The epoch that the next token will carry (tokens and lease ids share it after a bump). */
  epoch(): number {
    return Math.max(epochOf(this.lastToken + 1), epochOf(this.lastLeaseId + 1));
  }

  /** Whether bumpEpoch(epochMin) is possible; a false answer is an expected INVALID_ARGUMENT. */
  canBump(epochMin: number): boolean {
    return Math.max(this.epoch() + 1, epochMin) <= EPOCH_MAX;
  }

  /** Raises both counters to the start of max(epoch + 1, epochMin); returns the new epoch. */
  bumpEpoch(epochMin: number): number {
    assert(Number.isSafeInteger(epochMin) && epochMin >= 0, "epochMin");
    assert(this.canBump(epochMin), "epoch space exhausted");
    const tokenBefore = this.lastToken;
    const epochNew = Math.max(this.epoch() + 1, epochMin);
    // The next id issued is epochNew * 2^32 + 1 (counter 0 is never issued after a bump).
    this.lastToken = epochNew * EPOCH_SPAN;
    this.lastLeaseId = epochNew * EPOCH_SPAN;
    assert(this.lastToken > tokenBefore, "bump must raise the token counter");
    return epochNew;
  }

  counters(): IdCounters {
    return { lastToken: this.lastToken, lastLeaseId: this.lastLeaseId };
  }
}

function assertId(value: number, what: string): void {
  assert(Number.isSafeInteger(value) && value >= 0, `${what} must be a safe integer >= 0`);
}
