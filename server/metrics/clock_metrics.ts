// A clock-rate check (a safety signal). Lease safety assumes this member's clock runs within rho
// of true time (DESIGN.md §3: deadlines carry TTL*(1+rho) on the server, TTL*(1-rho) on the
// client). The leader stamps proposals from its monotonic clock (server/node/leader_clock.ts,
// which checks nothing itself), so a monotonic clock running fast or slow by more than rho breaks
// the bound silently. Here the monotonic clock is compared, over windows of windowMs, with the
// wall clock, which NTP keeps near true time: a rate difference above rho is a warning, counted
// and logged. Either clock may be the wrong one (an NTP step, a suspended VM, a test clock), so
// it is a warning to look at, not proof. One read of each clock per window; nothing per request.

import { Counter, Gauge } from "prom-client";
import type { MetricsRegistry } from "./registry.ts";

export interface ClockPair {
  readonly monotonicMs: () => number;
  readonly wallMs: () => number;
}

export const CLOCK_WINDOW_MS_DEFAULT = 10_000;

export class ClockRateCheck {
  private readonly warnings: Counter;
  private readonly rateError: Gauge;
  private windowStart: { readonly monotonicMs: number; readonly wallMs: number } | null = null;

  constructor(
    registry: MetricsRegistry,
    private readonly options: {
      readonly clocks: ClockPair;
      /** The configured clock-rate error bound (--rho), a fraction. */
      readonly rho: number;
      readonly windowMs?: number;
      readonly log?: (fields: Record<string, unknown>) => void;
    },
  ) {
    this.warnings = new Counter({
      name: "tenure_clock_rate_warnings_total",
      help: "SAFETY: windows in which this member's monotonic clock and its wall clock ran apart by more than rho (the lease bound assumes rate error <= rho).",
      registers: [registry],
    });
    this.rateError = new Gauge({
      name: "tenure_clock_rate_error_ratio",
      help: "Last window's (monotonic elapsed / wall elapsed) - 1; compare with rho.",
      registers: [registry],
    });
  }

  /** Called often (each tick); measures once a window has passed. */
  sample(): void {
    const now = { monotonicMs: this.options.clocks.monotonicMs(), wallMs: this.options.clocks.wallMs() };
    const start = this.windowStart;
    if (start === null) {
      this.windowStart = now;
      return;
    }
    const monotonicElapsedMs = now.monotonicMs - start.monotonicMs;
    if (monotonicElapsedMs < (this.options.windowMs ?? CLOCK_WINDOW_MS_DEFAULT)) return;
    this.windowStart = now;
    const wallElapsedMs = now.wallMs - start.wallMs;
    const ratio = wallElapsedMs > 0 ? monotonicElapsedMs / wallElapsedMs - 1 : Number.POSITIVE_INFINITY;
    this.rateError.set(Number.isFinite(ratio) ? ratio : -1);
    if (Math.abs(ratio) <= this.options.rho) return;
    this.warnings.inc();
    this.options.log?.({
      event: "clock_rate_warning",
      level: "warn",
      monotonicElapsedMs,
      wallElapsedMs,
      rateError: Number.isFinite(ratio) ? ratio : null,
      rho: this.options.rho,
    });
  }
}
