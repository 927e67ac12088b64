// The lock service's tables: sizes read from the state machine at scrape time (its O(1) usage()),
// and, from the events of each applied entry (the node's subscribe(), which every replica runs in
// log order), the tokens issued and the leases that expired. Entries a snapshot covers emit no
// events here, so those two counters count what this member applied itself.

import { Counter, Gauge } from "prom-client";
import type { NodeApi } from "../node/node_api.ts";
import type { LockStateMachine } from "../state/machine.ts";
import type { StateEvent } from "../state/results.ts";
import type { MetricsRegistry } from "./registry.ts";

export interface StateMetricsSource {
  /** The member's state machine now (it is replaced when a snapshot is restored). */
  readonly machine: () => LockStateMachine;
  readonly subscribe: NodeApi["subscribe"];
}

export function registerStateMetrics(registry: MetricsRegistry, source: StateMetricsSource): () => void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: (m: LockStateMachine) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(source.machine()));
      },
    });
  };
  gauge("tenure_leases_active", "Leases in the state machine (granted, not yet expired or revoked).", (m) => m.usage().leases);
  gauge("tenure_locks_held", "Locks with a holder.", (m) => m.usage().locksHeld);
  gauge(
    "tenure_locks_delayed",
    "Locks in lock-delay: their holder's lease expired, nobody holds them until it ends.",
    (m) => m.usage().locksDelayed,
  );
  gauge("tenure_locks_waiting", "Acquires queued for a lock.", (m) => m.usage().lockWaiters);
  gauge("tenure_elections_led", "Elections (of the Election service) with a leader.", (m) => m.usage().electionsLed);
  gauge("tenure_election_campaigns_waiting", "Campaigns queued for an election.", (m) => m.usage().electionWaiters);
  gauge("tenure_sessions", "Exactly-once client sessions the state machine keeps (bounded by its sessionsMax).", (m) => m.usage().sessions);
  gauge("tenure_frozen", "1 while the cluster is frozen (tenurectl freeze: no new grants), else 0.", (m) => (m.usage().frozen ? 1 : 0));
  gauge("tenure_fencing_token_last", "The last fencing token issued (the cluster-wide counter).", (m) => m.tokens().lastToken);
  const tokens = new Counter({
    name: "tenure_tokens_issued_total",
    help: "Fencing tokens issued by entries this member applied (lock and election grants).",
    labelNames: ["table"],
    registers,
  });
  const byTable = { lock: tokens.labels("lock"), election: tokens.labels("election") };
  const expired = new Counter({
    name: "tenure_leases_expired_total",
    help: "Leases that expired in entries this member applied (revoked ones not counted).",
    registers,
  });
  return source.subscribe((events: readonly StateEvent[]) => {
    for (const e of events) {
      if (e.kind === "granted") byTable[e.table].inc();
      else if (e.kind === "leaseGone" && e.expired) expired.inc();
    }
  });
}
