// The one "ready" log line (issue 15: operators and `npm start` wait for it): logged once, the
// first time this member knows a leader of its term and has applied everything it knows to be
// committed, i.e. the first moment it answers reads and forwards writes without waiting. Checked
// on a timer (a few per election timeout), not inside the Ready loop: it is a notice, not state.

import type { Role } from "../core/ready.ts";
import { NO_NODE, type Index, type NodeId, type Term } from "../core/types.ts";

/** What readiness needs of a member's status: a voter's ServingStatus and a witness's both have it
 *  (its own type, so that tenure-witness does not reach the state machine through node_api.ts). */
export interface ServingStatus {
  readonly role: Role;
  readonly leader: NodeId;
  readonly term: Term;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
}

/** A member serves once it knows its term's leader and its state machine has caught up. */
export function isServing(s: ServingStatus, options: { readonly applies: boolean }): boolean {
  if (s.leader === NO_NODE || s.role === "candidate" || s.role === "preCandidate") return false;
  return !options.applies || s.appliedIndex >= s.commitIndex;
}

export interface ReadyWatchOptions {
  readonly status: () => ServingStatus;
  /** false for a witness, which never applies: it serves its role once it knows the leader. */
  readonly applies: boolean;
  readonly intervalMs: number;
  readonly onReady: (s: ServingStatus) => void;
}

/** Calls onReady once, then stops; returns a stop function for shutdown before that. */
export function watchReady(o: ReadyWatchOptions): () => void {
  const timer = setInterval(() => {
    const s = o.status();
    if (!isServing(s, o)) return;
    clearInterval(timer);
    o.onReady(s);
  }, o.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
