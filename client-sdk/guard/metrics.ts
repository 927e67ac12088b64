// tenure_guard_rejections_total{resource}: how often a guard turned away a stale writer. A rising
// rate means lock holders are being paused past their leases (GC, VM stalls, slow networks): the
// fencing is doing its job, but the lease TTL or the holders deserve a look.

import { Counter, register as globalRegistry } from "prom-client";
import type { Registry } from "prom-client";
import type { StaleFencingTokenError } from "./errors.ts";

export const REJECTIONS_METRIC = "tenure_guard_rejections_total";

/** Where a guard reports rejections: a registry (default: prom-client's global one), or null for none. */
export interface GuardMetricsOptions {
  readonly registry?: Registry | null;
}

/**
 * The rejection counter in `registry`. Several guards (and test runs) share one counter per
 * registry: registering the name twice would throw, so an existing counter is reused.
 */
export function rejectionsCounter(registry: Registry = globalRegistry): Counter<"resource"> {
  const existing = registry.getSingleMetric(REJECTIONS_METRIC);
  if (existing !== undefined) {
    if (!(existing instanceof Counter)) throw new Error(`${REJECTIONS_METRIC} is registered but is not a Counter`);
    return existing as Counter<"resource">;
  }
  return new Counter({
    name: REJECTIONS_METRIC,
    help: "Writes rejected by a Tenure storage guard because their fencing token was stale.",
    labelNames: ["resource"],
    registers: [registry],
  });
}

/** The hook a guard calls on every stale token (undefined registry: global; null: no metric). */
export function rejectionRecorder(options: GuardMetricsOptions): (e: StaleFencingTokenError) => void {
  if (options.registry === null) return () => {};
  const counter = rejectionsCounter(options.registry);
  // Label by resource: operators need to see WHICH resource has paused writers. Keep resource
  // names low-cardinality (one per protected store or partition, not one per row).
  return (e) => counter.inc({ resource: e.resource });
}
