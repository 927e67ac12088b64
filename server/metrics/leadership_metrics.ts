// What happens between scrapes, sampled once per tick from the member's status (one status()
// read per tick, nothing on the request path): leader changes, elections, the witness leading,
// and commit stalling. Sampling can miss what starts and ends within one tick; terms cannot be
// missed (an election is counted as the rise of the term, whatever the sampling saw in between).
//
// Safety signals (DESIGN.md §6), each with its meaning in the help text:
//   tenure_witness_leading, tenure_witness_leading_seconds_total: the witness leads only to hand
//     over (W5), bounded by about two election timeouts; seconds piling up mean it is stuck.
//   tenure_commit_stalled: entries wait (the log runs ahead of commit, or client proposals are
//     pending) and commit has not moved for more than an election timeout: no quorum acks.

import { Counter, Gauge } from "prom-client";
import type { RaftStatusView } from "./raft_metrics.ts";
import type { MetricsRegistry } from "./registry.ts";

export interface LeadershipSource {
  readonly status: () => RaftStatusView;
  /** Client proposals waiting for their outcome on this member (0 on a witness). */
  readonly pendingProposals: () => number;
  /** A full voter's election timeout, in ms: how long commit may stand still while entries wait. */
  readonly electionTimeoutMs: number;
}

export class LeadershipMetrics {
  private readonly leaderChanges: Counter;
  private readonly elections: Counter;
  private readonly witnessLeading: Gauge;
  private readonly witnessLeadingSeconds: Counter;
  private readonly commitStalled: Gauge;
  private readonly commitStalls: Counter;
  private lastTerm: number | null = null;
  /** The (term, leader) last seen with a leader known: a new pair is a leader change. */
  private lastLeadership = "";
  private lastSampleMs: number | null = null;
  private lastCommit = -1;
  /** Since when commit has stood still with entries waiting (null: nothing waits). */
  private waitingSinceMs: number | null = null;
  private stalled = false;
  private witnessLed = false;

  constructor(
    registry: MetricsRegistry,
    private readonly source: LeadershipSource,
  ) {
    const registers = [registry];
    this.leaderChanges = new Counter({
      name: "tenure_leader_changes_total",
      help: "Leaderships this member has seen begin: a leader known in a term after none or another one (its own included).",
      registers,
    });
    this.elections = new Counter({
      name: "tenure_elections_total",
      help: "Elections this member has seen: the rise of its term since it started (each term is one election, whoever ran it).",
      registers,
    });
    this.witnessLeading = new Gauge({
      name: "tenure_witness_leading",
      help: "SAFETY: 1 while the leader this member knows is the witness. It may lead only briefly, to hand over (W5); alert if it stays.",
      registers,
    });
    this.witnessLeadingSeconds = new Counter({
      name: "tenure_witness_leading_seconds_total",
      help: "SAFETY: seconds this member has seen the witness lead. Rising by more than about two election timeouts at a time: the hand-over is stuck.",
      registers,
    });
    this.commitStalled = new Gauge({
      name: "tenure_commit_stalled",
      help: "SAFETY: 1 while entries wait (log ahead of commit, or client proposals pending) and commit has not advanced for more than an election timeout.",
      registers,
    });
    this.commitStalls = new Counter({
      name: "tenure_commit_stalls_total",
      help: "Times tenure_commit_stalled went from 0 to 1.",
      registers,
    });
  }

  /** Once per tick, with the process's monotonic time. */
  sample(nowMs: number): void {
    const s = this.source.status();
    const dtMs = this.lastSampleMs === null ? 0 : Math.max(0, nowMs - this.lastSampleMs);
    this.lastSampleMs = nowMs;
    if (this.lastTerm !== null && s.term > this.lastTerm) this.elections.inc(s.term - this.lastTerm);
    this.lastTerm = s.term;
    if (s.leader !== "") {
      const leadership = `${s.term}/${s.leader}`;
      if (leadership !== this.lastLeadership) this.leaderChanges.inc();
      this.lastLeadership = leadership;
    }
    // The time since the last sample counts when the witness was seen leading then (until now).
    if (this.witnessLed && dtMs > 0) this.witnessLeadingSeconds.inc(dtMs / 1000);
    this.witnessLed = s.leader !== "" && s.confState.witnesses.includes(s.leader);
    this.witnessLeading.set(this.witnessLed ? 1 : 0);
    this.sampleCommit(s, nowMs);
  }

  private sampleCommit(s: RaftStatusView, nowMs: number): void {
    const waiting = s.lastIndex > s.commitIndex || this.source.pendingProposals() > 0;
    if (!waiting || s.commitIndex !== this.lastCommit) this.waitingSinceMs = waiting ? nowMs : null;
    else this.waitingSinceMs ??= nowMs;
    this.lastCommit = s.commitIndex;
    const stalled = this.waitingSinceMs !== null && nowMs - this.waitingSinceMs > this.source.electionTimeoutMs;
    if (stalled && !this.stalled) this.commitStalls.inc();
    this.stalled = stalled;
    this.commitStalled.set(stalled ? 1 : 0);
  }
}
