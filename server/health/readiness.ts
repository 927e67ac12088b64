// Readiness of one member, as /readyz and the gRPC health service report it: ready when this
// member is part of a working quorum right now, i.e. it knows the leader of its term (as a
// follower, or it is that leader), it is not campaigning, not recovering lost log data (issue 13:
// it neither votes nor counts towards commits until caught up), and, on a member that applies
// (tenured; a witness applies nothing), its state machine is within READY_APPLY_LAG_MAX entries
// of what it knows committed. A member cut off from the quorum stops being ready within about an
// election timeout: a follower that stops hearing its leader pre-campaigns (and forgets the
// leader), a leader that stops hearing a majority steps down (CheckQuorum). Evaluated when asked
// (a scrape, a health poll): a few field reads, no I/O.

import type { ServingStatus } from "../node/ready_watch.ts";

/** How far applied may trail commit and still be ready (a burst being applied, not a backlog). */
export const READY_APPLY_LAG_MAX = 1_000;

export interface ReadinessStatus extends ServingStatus {
  readonly recovering?: boolean;
}

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

export interface ReadinessOptions {
  /** false for a witness, which applies nothing. */
  readonly applies: boolean;
  readonly applyLagMax?: number;
}

export function readinessOf(s: ReadinessStatus, options: ReadinessOptions): Readiness {
  if (s.recovering === true) return { ready: false, reason: "recovering lost log data from the leader (no vote until caught up)" };
  if (s.role === "candidate" || s.role === "preCandidate") return { ready: false, reason: `no leader: campaigning in term ${s.term}` };
  if (s.leader === "") return { ready: false, reason: `no leader known in term ${s.term}` };
  const lagMax = options.applyLagMax ?? READY_APPLY_LAG_MAX;
  if (options.applies && s.commitIndex - s.appliedIndex > lagMax) {
    return {
      ready: false,
      reason: `catching up: applied ${s.appliedIndex} of committed ${s.commitIndex} (more than ${lagMax} behind)`,
    };
  }
  return { ready: true };
}
