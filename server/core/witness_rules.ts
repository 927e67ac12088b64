// The witness rules of DESIGN.md §4 (W1-W6), one small pure function per rule, so a reader finds
// every way a witness differs from a full voter in one place. RaftCore (raft.ts) calls them at the
// point where each applies; nothing here holds state. The reasoning and sources are in
// research/witness-and-raft-safety.md. PURE, like the rest of server/core.
//
// The setting: site A runs a full voter, site B a full voter, site C the witness W, the third voter.
// W keeps the full log so that a commit by {leader, W} survives the loss of the leader's site, but it
// never applies entries, so it has no state to serve or to send as a snapshot. Everything below
// follows from that: W may lead only long enough to hand leadership to a full voter.
//
// W6 (replacing W, or a lost site's voter, is one joint-consensus step that completes even if the
// replaced site is gone) needs no witness-specific check: raft.ts's maybeAutoLeave lets any full-voter
// leader finish the change; leavesJointConfig below only keeps a witness leader out of it (W5).

import { isVoter, isWitness } from "./conf_change.ts";
import type { ConfState, Entry, Index, NodeId, Term } from "./types.ts";

// ---------------------------------------------------------------- W1: the full log

/**
 * W1: a witness stores every entry it is sent, payloads included, and persists it like any voter
 * (the Ready contract is the same for every role): when A dies after committing with W only, W is
 * the sole holder of those entries and must be able to hand them to B. The `witnessMetadataOnlyLog`
 * simulator bug keeps only terms and indexes (the metadata-only witness DESIGN.md rejects), so the
 * checkers can show that such a witness loses committed data.
 */
export function entriesToStore(cs: ConfState, self: NodeId, entries: readonly Entry[], metadataOnlyBug: boolean): readonly Entry[] {
  if (!metadataOnlyBug || !isWitness(cs, self)) return entries;
  return entries.map((e) => (e.type === "config" ? e : { ...e, data: new Uint8Array(0) }));
}

// ---------------------------------------------------------------- W2: no clients

/**
 * W2: a witness serves no reads, even as leader: it never applies entries, so it holds no state to
 * read. Returns the refusal's detail, or null when the read may go ahead. (Proposals: see W5.)
 */
export function readRefusal(cs: ConfState, self: NodeId): string | null {
  return isWitness(cs, self) ? "a witness serves no reads (rule W2)" : null;
}

// ---------------------------------------------------------------- W3: the truncation floor

/**
 * W3 (leader side): the floor sent to `to` in every append and heartbeat: min(commit, the lowest
 * match of every non-witness member, the leader's durable index standing in for its match). Below
 * it every full member holds every entry, so a witness can never again be the only holder of one,
 * and may drop it. Every member of a configuration with a witness gets it (0 means "no floor";
 * without a witness there is none): a witness truncates up to it, a full member keeps its log
 * from it when it compacts (retainedLogStart), since any full member may lead later and then be
 * the one that must hand a new witness, or a lagging full member, the entries above it.
 */
export function truncationFloorFor(
  cs: ConfState,
  _to: NodeId,
  leader: { readonly id: NodeId; readonly committed: Index; readonly stableIndex: Index },
  progress: ReadonlyMap<NodeId, { readonly match: Index }>,
): Index {
  return cs.witnesses.length > 0 ? fullMembersFloor(cs, leader, progress) : 0;
}

/** min(commit, the lowest match of every non-witness member, the leader's durable index). */
function fullMembersFloor(
  cs: ConfState,
  leader: { readonly id: NodeId; readonly committed: Index; readonly stableIndex: Index },
  progress: ReadonlyMap<NodeId, { readonly match: Index }>,
): Index {
  let floor = leader.committed;
  for (const [id, pr] of progress) {
    if (isWitness(cs, id)) continue;
    floor = Math.min(floor, id === leader.id ? leader.stableIndex : pr.match);
  }
  return floor;
}

/**
 * W1/W3 on full members (churn issue 4): where a full member's log starts after it compacts at
 * `snapshotIndex`. Without a witness in the configuration, at the snapshot, as in plain Raft.
 * With one, no higher than the W3 floor (`floor`: a leader's own, a follower's the highest its
 * leader sent): the entries above it may be needed by a full member that lags, and a witness is
 * their second copy only if it HAS them. A witness that joins (or is caught up) after the leader
 * compacted cannot get them from a snapshot: before this rule it got the leader's snapshot and
 * held nothing below it, so once site A was lost nobody could bring the lagging B up (witness
 * seeds 288, 308 before the fix). So full members keep the entries above the floor (a follower
 * too: it may lead later; witness seed 661, where the new leader had compacted them as a
 * follower), a leader catches B up with them instead of a snapshot, and brings a witness in with a
 * metadata-only marker at its log start followed by those entries (raft.ts sendSnapshot), so the
 * witness starts at or below the floor, as W3 would have left the old one. It costs the full
 * members' memory what W3 already costs the witness's disk (entries are tiny; a full member down
 * for good holds both back until it is replaced). Storage keeps them too: the node passes the
 * core's log start (RaftCore.storageLogStart) into its compaction (saveSnapshotAndCompact), so a
 * member that restarts still holds them (witness seed 661 before that).
 */
export function retainedLogStart(cs: ConfState, floor: Index, snapshotIndex: Index): Index {
  return cs.witnesses.length === 0 ? snapshotIndex : Math.min(snapshotIndex, floor);
}

/** W3 (leader side): the floor over the leader's own progress (truncationFloorFor's value). */
export function leaderFloor(
  cs: ConfState,
  leader: { readonly id: NodeId; readonly committed: Index; readonly stableIndex: Index },
  progress: ReadonlyMap<NodeId, { readonly match: Index }>,
): Index {
  return fullMembersFloor(cs, leader, progress);
}

/**
 * W3 (member side): the floor a member holds after a current-term leader sent `sent`: the highest
 * seen, since a floor only ever grows while membership stands. A witness truncates up to it; a
 * full member keeps its log from it when it compacts (retainedLogStart).
 */
export function raisedFloor(held: Index, sent: Index): Index {
  return sent > held ? sent : held;
}

/**
 * W3 (witness side): does a floor still bind this witness's membership? The leader computed it
 * over the members of its configuration as of its applied index `floorAppliedIndex`; the witness's
 * own configuration comes from the change at `confIndex` (its latest applied config entry, or its
 * log start when the configuration came with a snapshot or marker). If the witness applied a
 * change the leader had not (floorAppliedIndex < confIndex), the floor may leave out a member that
 * change added and that holds nothing yet: a floor computed before the change, delayed or
 * duplicated past it, must be ignored (churn issue 2, witness seed 23), since
 * floorAfterMembershipChange alone only drops the floors received BEFORE the change. An honest
 * floor is never ignored for long: the leader's applied index grows with every commit.
 */
export function floorStillBinds(floorAppliedIndex: Index, confIndex: Index): boolean {
  return floorAppliedIndex >= confIndex;
}

/**
 * W3 (member side): may a member use a floor now? Only once it has itself applied up to the
 * leader's applied index the floor was computed at: then the configuration it applies is the one
 * the floor was computed over (floorStillBinds rules out a newer one). Before that, the floor may
 * come from a configuration that dropped a member this member still counts, and a witness would
 * truncate entries that member lacks (witness seeds 276, 1572, 3704, 8052 broke IW1 so: the
 * dropped member was out for good, so nothing was lost, but W3's argument is over the witness's
 * own configuration). Such a floor is kept, one at a time (the oldest: it becomes usable first),
 * until this member's applied index reaches its own.
 */
export function floorUsable(floorAppliedIndex: Index, applied: Index): boolean {
  return floorAppliedIndex <= applied;
}

/**
 * W3: the floor after a membership change is applied: none. A new full member may hold nothing
 * yet, so floors computed for the old membership no longer bound anything; wait for the leader's
 * next one.
 */
export function floorAfterMembershipChange(): Index {
  return 0;
}

/**
 * W3: the index up to which a witness truncates its log now, or null when there is nothing to
 * truncate (or this node is no witness): the floor the leader sent, never past what this node has
 * handed out (applied), and never by a snapshot of its own state (it has none; the caller writes a
 * metadata-only marker). The `truncateWitnessAtCommit` simulator bug truncates at the commit index
 * instead, which loses entries a lagging B still needs.
 */
export function truncationIndex(
  cs: ConfState,
  self: NodeId,
  log: {
    readonly floorReceived: Index;
    readonly committed: Index;
    readonly applied: Index;
    readonly snapshotIndex: Index;
  },
  truncateAtCommitBug: boolean,
): Index | null {
  if (!isWitness(cs, self)) return null;
  const floor = truncateAtCommitBug ? log.committed : log.floorReceived;
  const index = Math.min(floor, log.applied);
  return index <= log.snapshotIndex ? null : index;
}

// ---------------------------------------------------------------- W4: full voters win elections

/**
 * W4: a witness's election timeout is twice a voter's (randomisation comes on top), so after a
 * leader's loss a full voter normally times out first and wins.
 */
export function electionTimeoutTicks(cs: ConfState, self: NodeId, voterTimeoutTicks: number): number {
  return voterTimeoutTicks * (isWitness(cs, self) ? 2 : 1);
}

/**
 * W4: on top of Raft's up-to-date check (which the caller has passed), a full voter grants a witness
 * candidate a vote or pre-vote only if the witness's log is STRICTLY newer than its own. With equal
 * logs the full voter can win itself, so it must not let the witness lead; only when the witness
 * holds entries the voter lacks (A died after committing with W) is a witness leader needed.
 * A witness voter, and any voter asked by a full candidate, applies plain Raft.
 */
export function grantsWitnessCandidate(
  cs: ConfState,
  self: NodeId,
  candidate: { readonly from: NodeId; readonly lastIndex: Index; readonly lastTerm: Term },
  own: { readonly lastIndex: Index; readonly lastTerm: Term },
): boolean {
  if (!isWitness(cs, candidate.from) || isWitness(cs, self)) return true;
  return candidate.lastTerm > own.lastTerm || (candidate.lastTerm === own.lastTerm && candidate.lastIndex > own.lastIndex);
}

// ---------------------------------------------------------------- W5: lead only to hand over

/**
 * W5: the hard cap on a witness's leadership, in ticks (about two election timeouts): enough to
 * append its no-op, bring B up to date and hand over; after it the witness steps down even if
 * CheckQuorum is satisfied, so a stuck handover cannot keep the cluster without a serving leader.
 */
export function witnessLeaderMaxTicks(voterTimeoutTicks: number): number {
  return 2 * voterTimeoutTicks;
}

/**
 * W5: a witness leader rejects every proposal (it appends only its own no-op): it could never serve
 * their results (W2), and entries it alone proposed would only lengthen the handover. Returns the
 * refusal's detail, or null.
 */
export function proposalRefusal(cs: ConfState, self: NodeId): string | null {
  return isWitness(cs, self) ? "a witness leader accepts no proposals (W5)" : null;
}

/**
 * W5: full voters never transfer leadership to a witness: it could not serve. Returns the refusal's
 * detail, or null. (The detail's "(W6)" is a historical mislabel of this W5 clause, kept verbatim
 * because it reaches clients.)
 */
export function transferRefusal(cs: ConfState, to: NodeId): string | null {
  return isWitness(cs, to) ? `${to} is a witness; leadership never moves to one (W6)` : null;
}

/**
 * W5: a witness leader hands leadership (TimeoutNow) to a full voter as soon as it holds the whole
 * log (checked on every append and heartbeat response, so the first one caught up gets it). Brought
 * up to date by normal replication, that voter wins the election the TimeoutNow starts.
 */
export function handsOverTo(cs: ConfState, self: NodeId, to: NodeId, toMatch: Index, lastIndex: Index): boolean {
  if (!isWitness(cs, self) || isWitness(cs, to) || !isVoter(cs, to)) return false;
  return toMatch === lastIndex;
}

/**
 * W5: a witness never sends snapshots: it has no state machine, so it has no state to send. A
 * follower that needs entries below the witness's log start waits for a full-voter leader.
 */
export function sendsSnapshots(cs: ConfState, self: NodeId): boolean {
  return !isWitness(cs, self);
}

/**
 * W5 (and W6): a witness leader proposes no config change, not even an auto-leave of a joint
 * configuration; the full voter it hands over to leaves it instead.
 */
export function leavesJointConfig(cs: ConfState, self: NodeId): boolean {
  return !isWitness(cs, self);
}
