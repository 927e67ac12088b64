// The member's Raft position, read from its status at scrape time: collect callbacks, so the hot
// path pays nothing. On the leader, each peer's match index and replication lag (entries behind
// the leader's last index): a dead or cut-off follower's lag grows with every entry.

import { Gauge } from "prom-client";
import type { Role } from "../core/ready.ts";
import type { ConfState, Index, NodeId, Term } from "../core/types.ts";
import type { MetricsRegistry } from "./registry.ts";

/** What NodeStatus (tenured) and WitnessStatus (tenure-witness) both report. */
export interface RaftStatusView {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly leader: NodeId;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  readonly confState: ConfState;
  readonly recovering?: boolean;
}

export interface RaftMetricsSource {
  readonly status: () => RaftStatusView;
  /** The leader's match index for a peer, null off the leader (RaftNode.matchIndexOf). */
  readonly matchIndexOf?: (id: NodeId) => Index | null;
}

const ROLES: readonly Role[] = ["follower", "preCandidate", "candidate", "leader"];
/** Label values in Prometheus style (snake_case). */
const ROLE_LABEL: Readonly<Record<Role, string>> = {
  follower: "follower",
  preCandidate: "pre_candidate",
  candidate: "candidate",
  leader: "leader",
};

function members(cs: ConfState): NodeId[] {
  return [...new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext])];
}

export function registerRaftMetrics(registry: MetricsRegistry, source: RaftMetricsSource): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: (s: RaftStatusView) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(source.status()));
      },
    });
  };
  gauge("tenure_term", "Raft term this member is in.", (s) => s.term);
  gauge("tenure_is_leader", "1 if this member leads its term, else 0. Summed over the members it must be 1 (0: no leader).", (s) =>
    s.role === "leader" ? 1 : 0,
  );
  gauge("tenure_has_leader", "1 if this member knows a leader of its term, else 0.", (s) => (s.leader === "" ? 0 : 1));
  gauge("tenure_commit_index", "Highest log index this member knows committed.", (s) => s.commitIndex);
  gauge("tenure_applied_index", "Highest log index applied here (0 on a witness, which applies nothing).", (s) => s.appliedIndex);
  gauge("tenure_last_index", "Last index in this member's log.", (s) => s.lastIndex);
  gauge(
    "tenure_recovering",
    "1 while this member recovers log data its storage lost (no vote, not counted towards commits), else 0.",
    (s) => (s.recovering === true ? 1 : 0),
  );
  new Gauge({
    name: "tenure_role",
    help: "1 for this member's Raft role, 0 for the others.",
    labelNames: ["role"],
    registers,
    collect() {
      const role = source.status().role;
      for (const r of ROLES) this.labels(ROLE_LABEL[r]).set(r === role ? 1 : 0);
    },
  });
  new Gauge({
    name: "tenure_leader",
    help: "1 with the id of the leader this member knows for its term (leader_id); no sample when it knows none.",
    labelNames: ["leader_id"],
    registers,
    collect() {
      this.reset();
      const leader = source.status().leader;
      if (leader !== "") this.labels(leader).set(1);
    },
  });
  registerPeerProgress(registry, source);
}

/** Per peer, on the leader only: match index and lag; no samples elsewhere. */
function registerPeerProgress(registry: MetricsRegistry, source: RaftMetricsSource): void {
  const matchIndexOf = source.matchIndexOf;
  if (matchIndexOf === undefined) return;
  const each = (set: (peer: NodeId, match: Index, s: RaftStatusView) => void): void => {
    const s = source.status();
    if (s.role !== "leader") return;
    for (const peer of members(s.confState)) {
      if (peer === s.id) continue;
      const match = matchIndexOf(peer);
      if (match !== null) set(peer, match, s);
    }
  };
  new Gauge({
    name: "tenure_peer_match_index",
    help: "On the leader: the highest index it knows the peer holds.",
    labelNames: ["peer"],
    registers: [registry],
    collect() {
      this.reset();
      each((peer, match) => this.labels(peer).set(match));
    },
  });
  new Gauge({
    name: "tenure_peer_replication_lag_entries",
    help: "On the leader: entries the peer is behind the leader's last index (grows while the peer is down or cut off).",
    labelNames: ["peer"],
    registers: [registry],
    collect() {
      this.reset();
      each((peer, match, s) => this.labels(peer).set(Math.max(0, s.lastIndex - match)));
    },
  });
}
