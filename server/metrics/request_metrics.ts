// Client requests by method and status code: one grpc-js server interceptor on the client port
// (api_server.ts takes it), which sees every call's final status, whatever service answered it
// (tenure.v1, health, reflection). The method label is the call's path, only for the methods
// registered with the interceptor (a bounded set); anything else is "other". Children are bound
// once per (method, code) pair and cached: no label lookup after the first call of a pair.

import * as grpc from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import { Counter, Histogram } from "prom-client";
import type { MetricsRegistry } from "./registry.ts";

const OTHER_METHOD = "other";

/** Unary calls take milliseconds; streams (KeepAlive, Observe) and waiting Acquires run long. */
export const REQUEST_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface Child {
  readonly count: { inc(): void };
  readonly seconds: { observe(v: number): void };
}

export class RequestMetrics {
  private readonly requests: Counter<"method" | "code">;
  private readonly durations: Histogram<"method" | "code">;
  private readonly known = new Set<string>();
  /** path -> code -> counter and histogram children. */
  private readonly children = new Map<string, (Child | undefined)[]>();

  constructor(
    registry: MetricsRegistry,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.requests = new Counter({
      name: "tenure_requests_total",
      help: "Client-port calls answered, by method (/package.Service/Method) and gRPC status code name.",
      labelNames: ["method", "code"],
      registers: [registry],
    });
    this.durations = new Histogram({
      name: "tenure_request_duration_seconds",
      help: "Client-port calls from arrival to final status, by method and code (streams and waiting Acquires: their whole life).",
      labelNames: ["method", "code"],
      buckets: REQUEST_BUCKETS_SECONDS,
      registers: [registry],
    });
  }

  /** The methods of `definition` get their own label value (call before serving). */
  knowService(definition: grpc.ServiceDefinition): void {
    for (const method of Object.values(definition)) this.known.add(method.path);
  }

  /** Counts one answered call, and its duration when known. */
  count(path: string, statusCode: grpc.status, seconds?: number): void {
    // A handler could send any number; the label stays within the 17 codes gRPC defines.
    const code = Number.isInteger(statusCode) && statusCode >= 0 && statusCode <= 16 ? statusCode : grpc.status.UNKNOWN;
    const method = this.known.has(path) ? path : OTHER_METHOD;
    let byCode = this.children.get(method);
    if (byCode === undefined) {
      byCode = [];
      this.children.set(method, byCode);
    }
    let child = byCode[code];
    if (child === undefined) {
      const codeName = grpc.status[code] ?? String(code);
      child = { count: this.requests.labels(method, codeName), seconds: this.durations.labels(method, codeName) };
      byCode[code] = child;
    }
    child.count.inc();
    if (seconds !== undefined) child.seconds.observe(seconds);
  }

  interceptor(): grpc.ServerInterceptor {
    return (descriptor, call) => {
      const startMs = this.nowMs();
      return new grpc.ServerInterceptingCall(call, {
        sendStatus: (status, next) => {
          this.count(descriptor.path, status.code, Math.max(0, this.nowMs() - startMs) / 1000);
          next(status);
        },
      });
    };
  }
}
