// What tests of server/metrics build a registry from: the metrics options with a clock that
// never moves, and the node view of an idle follower of a one-voter configuration.

import type { MetricsNodeSource } from "../../server/metrics/member_metrics.ts";

export function testMetricsOptions(processMetrics = false) {
  return {
    electionTimeoutMs: 500,
    rho: 0.01,
    clocks: { monotonicMs: () => 0, wallMs: () => 0 },
    log: () => undefined,
    processMetrics,
  };
}

export const IDLE_FOLLOWER: MetricsNodeSource = {
  status: () => ({
    id: "a",
    role: "follower",
    term: 1,
    leader: "",
    commitIndex: 0,
    appliedIndex: 0,
    lastIndex: 0,
    confState: { voters: ["a"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false },
  }),
  matchIndexOf: () => null,
};
