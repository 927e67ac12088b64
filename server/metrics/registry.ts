// One prom-client Registry per process (never the library's global default registry, so tests can
// run several members in one process), and the text exposition of it. Every Tenure metric is
// named tenure_<what>_<unit> (Prometheus naming: _seconds, _bytes, _total for counters), with
// bounded labels only (method, code, peer id, role, outcome; never a lock name or a client id).

import { collectDefaultMetrics, Registry } from "prom-client";

export type MetricsRegistry = Registry;

export interface RegistryOptions {
  /**
   * The library's process metrics (process_cpu_seconds_total, process_resident_memory_bytes,
   * nodejs_eventloop_lag_seconds, ...), under their standard names so stock dashboards work.
   * Default false (tests); tenured and tenure-witness turn it on.
   */
  readonly processMetrics?: boolean;
}

export function createRegistry(options: RegistryOptions = {}): MetricsRegistry {
  const registry = new Registry();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry });
  return registry;
}

/** The text exposition (version 0.0.4) and its content type, as Prometheus scrapes it. */
export async function exposition(registry: MetricsRegistry): Promise<{ readonly contentType: string; readonly body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
