// Lease ids are drawn at random by the leader's handler (the state machine reads no randomness:
// it takes the id from the LeaseGrant entry and refuses a taken one, LEASE_ID_TAKEN). They cross
// the API as uint64, but the SDK, the commands' JSON and validate.ts keep them as safe integers,
// so an id is uniform in 1..2^53-1: 53 bits from crypto.randomBytes. A guess hits one of the
// leasesMax (100,000) leases with odds 1.1e-11, and a hit is still useless to another identity
// (ownership, server/state/caller.ts): the ids are defence in depth, not the only lock.

import { randomBytes } from "node:crypto";

export const LEASE_ID_BITS = 53;
/** Draws per Grant before giving up (each collides with odds <= leasesMax / 2^53). */
export const LEASE_ID_DRAWS_MAX = 8;

export function randomLeaseId(): number {
  // The top 53 of 64 random bits; 0 is not a lease id (validate.ts: 1..2^53-1), so it becomes 1
  // (1 is then twice as likely as any other id: 2^-52, immaterial).
  const id = Number(randomBytes(8).readBigUInt64BE() >> BigInt(64 - LEASE_ID_BITS));
  return id === 0 ? 1 : id;
}
