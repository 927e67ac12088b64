// Pure quorum arithmetic for majority and joint configurations (etcd-io/raft quorum/). PURE.

import type { Index, NodeId } from "./types.ts";

export type VoteResult = "won" | "lost" | "pending";

/**
 * The highest index replicated on a majority of `voters`. An empty voter set imposes no limit
 * (it is the absent half of a non-joint configuration), so it answers +Infinity.
 */
export function majorityCommittedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => Index): Index {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const matches = voters.map(matchOf).sort((x, y) => y - x);
  // With n voters, the entry at position floor(n/2) (descending) is held by n/2+1 of them.
  const quorumPosition = Math.floor(voters.length / 2);
  return matches[quorumPosition] ?? 0;
}

/** Joint rule: an index is committed only when both halves have it on a majority. */
export function jointCommittedIndex(incoming: readonly NodeId[], outgoing: readonly NodeId[], matchOf: (id: NodeId) => Index): Index {
  const a = majorityCommittedIndex(incoming, matchOf);
  const b = majorityCommittedIndex(outgoing, matchOf);
  return Math.min(a, b);
}

export function majorityVoteResult(voters: readonly NodeId[], voteOf: (id: NodeId) => boolean | undefined): VoteResult {
  if (voters.length === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = voteOf(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  if (granted >= quorum) return "won";
  if (granted + missing >= quorum) return "pending";
  return "lost";
}

export function jointVoteResult(
  incoming: readonly NodeId[],
  outgoing: readonly NodeId[],
  voteOf: (id: NodeId) => boolean | undefined,
): VoteResult {
  const a = majorityVoteResult(incoming, voteOf);
  const b = majorityVoteResult(outgoing, voteOf);
  if (a === "won" && b === "won") return "won";
  if (a === "lost" || b === "lost") return "lost";
  return "pending";
}
