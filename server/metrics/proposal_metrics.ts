// Client proposals and their outcomes: a NodeApi that wraps the node's, which the client API is
// given (main.ts), so RaftNode carries no metrics code. Per proposal: a monotonic clock read at
// submit and at its outcome, one pre-bound counter child and, when applied, one histogram
// observation. Proposal-to-apply latency is submit to applied outcome on this member (the
// leader): proposal, replication, commit by a quorum (each with its fsync) and apply.
// Leases granted are counted here too: a LeaseGrant applied for a new (not replayed) request.

import { performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram } from "prom-client";
import type { ConfChange } from "../core/conf_change.ts";
import type { NodeId } from "../core/types.ts";
import type {
  AdminOutcome,
  CallOptions,
  EventListener,
  MembershipPrecondition,
  NodeApi,
  NodeStatus,
  ReadOutcome,
  RestoreListener,
  SubmitOutcome,
} from "../node/node_api.ts";
import type { ClientCommand } from "../state/commands.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { MetricsRegistry } from "./registry.ts";

export const PROPOSAL_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Outcome label of each SubmitOutcome kind. */
const OUTCOME_LABEL: Readonly<Record<SubmitOutcome["kind"], string>> = {
  applied: "applied",
  notLeader: "not_leader",
  unavailable: "unavailable",
  overloaded: "overloaded",
  outcomeUnknown: "outcome_unknown",
};

export class MeteredNode implements NodeApi {
  private pending = 0;
  private readonly outcomes: Readonly<Record<SubmitOutcome["kind"], { inc(): void }>>;
  private readonly applySeconds: Histogram;
  private readonly leasesGranted: Counter;

  constructor(
    private readonly inner: NodeApi,
    registry: MetricsRegistry,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    const registers = [registry];
    const proposals = new Counter({
      name: "tenure_proposals_total",
      help: "Client commands submitted to this member, by outcome: applied (committed and applied; the state machine may still have said no), not_leader, unavailable and overloaded (never proposed), outcome_unknown (proposed, fate unknown).",
      labelNames: ["outcome"],
      registers,
    });
    // Pre-bound: no label lookup per proposal.
    this.outcomes = {
      applied: proposals.labels(OUTCOME_LABEL.applied),
      notLeader: proposals.labels(OUTCOME_LABEL.notLeader),
      unavailable: proposals.labels(OUTCOME_LABEL.unavailable),
      overloaded: proposals.labels(OUTCOME_LABEL.overloaded),
      outcomeUnknown: proposals.labels(OUTCOME_LABEL.outcomeUnknown),
    };
    this.applySeconds = new Histogram({
      name: "tenure_proposal_apply_seconds",
      help: "Submit to applied outcome of a client command on this member (propose, replicate, commit by a quorum, apply).",
      buckets: PROPOSAL_BUCKETS_SECONDS,
      registers,
    });
    const self = this;
    new Gauge({
      name: "tenure_proposals_pending",
      help: "Client commands submitted here and waiting for their outcome.",
      registers,
      collect() {
        this.set(self.pending);
      },
    });
    this.leasesGranted = new Counter({
      name: "tenure_leases_granted_total",
      help: "Leases granted through this member while it led (new requests; replayed retries not counted).",
      registers,
    });
  }

  /** Client commands waiting for their outcome (the commit-stall signal reads it). */
  pendingProposals(): number {
    return this.pending;
  }

  async submit(command: ClientCommand, options?: CallOptions): Promise<SubmitOutcome> {
    const startMs = this.nowMs();
    this.pending++;
    let outcome: SubmitOutcome;
    try {
      outcome = await this.inner.submit(command, options);
    } finally {
      this.pending--;
    }
    this.outcomes[outcome.kind].inc();
    if (outcome.kind === "applied") {
      this.applySeconds.observe(Math.max(0, this.nowMs() - startMs) / 1000);
      const r = outcome.result;
      if (r.ok && r.kind === "LeaseGrant" && !r.replayed) this.leasesGranted.inc();
    }
    return outcome;
  }

  read<T>(query: (machine: LockStateMachine) => T, options?: CallOptions): Promise<ReadOutcome<T>> {
    return this.inner.read(query, options);
  }

  subscribe(listener: EventListener, onRestored?: RestoreListener): () => void {
    return this.inner.subscribe(listener, onRestored);
  }

  stateMachine(): LockStateMachine | undefined {
    return this.inner.stateMachine?.();
  }

  status(): NodeStatus {
    return this.inner.status();
  }

  transferLeader(to: NodeId): Promise<AdminOutcome> {
    return this.inner.transferLeader(to);
  }

  changeMembership(change: ConfChange, precondition?: MembershipPrecondition): Promise<AdminOutcome> {
    return this.inner.changeMembership(change, precondition);
  }

  memberAddresses(): ReadonlyMap<NodeId, string> {
    return this.inner.memberAddresses();
  }
}
