// The metrics of a tenured voter: MemberMetrics plus what only a member with a state machine and
// a client API has: the proposals of the client API (a NodeApi wrapper, proposal_metrics.ts) and
// the state tables and applied events (state_metrics.ts).

import type { NodeApi } from "../node/node_api.ts";
import type { LockStateMachine } from "../state/machine.ts";
import { MemberMetrics, type MetricsNodeSource } from "./member_metrics.ts";
import { MeteredNode } from "./proposal_metrics.ts";
import { registerStateMetrics } from "./state_metrics.ts";

export interface VoterMetricsSource extends MetricsNodeSource {
  /** The state machine now (replaced when a snapshot is restored). */
  readonly machine: () => LockStateMachine;
  readonly subscribe: NodeApi["subscribe"];
}

export class VoterMetrics extends MemberMetrics {
  private meteredNode: MeteredNode | null = null;
  private unsubscribe: () => void = () => undefined;

  /** The NodeApi the client API is given: counts proposals, their outcomes and latency. */
  node(inner: NodeApi): NodeApi {
    this.meteredNode = new MeteredNode(inner, this.registry);
    return this.meteredNode;
  }

  override bind(source: VoterMetricsSource): void {
    super.bind(source);
    this.unsubscribe = registerStateMetrics(this.registry, { machine: source.machine, subscribe: source.subscribe });
  }

  protected override pendingProposals(): number {
    return this.meteredNode?.pendingProposals() ?? 0;
  }

  override close(): void {
    this.unsubscribe();
    super.close();
  }
}
