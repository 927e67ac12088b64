// Client requests by method and status code: one grpc-js server interceptor on the client port
// (api_server.ts takes it), which sees every call's final status, whatever service answered it
// (tenure.v1, health, reflection). The method label is the call's path, only for the methods
// registered with the interceptor (a bounded set); anything else is "other". Children are bound
// once per (method, code) pair and cached: no label lookup after the first call of a pair.

import * as grpc from "@grpc/grpc-js";
import { Counter } from "prom-client";
import type { MetricsRegistry } from "./registry.ts";

const OTHER_METHOD = "other";

export class RequestMetrics {
  private readonly requests: Counter<"method" | "code">;
  private readonly known = new Set<string>();
  /** path -> code -> counter child. */
  private readonly children = new Map<string, ({ inc(): void } | undefined)[]>();

  constructor(registry: MetricsRegistry) {
    this.requests = new Counter({
      name: "tenure_requests_total",
      help: "Client-port calls answered, by method (/package.Service/Method) and gRPC status code name.",
      labelNames: ["method", "code"],
      registers: [registry],
    });
  }

  /** The methods of `definition` get their own label value (call before serving). */
  knowService(definition: grpc.ServiceDefinition): void {
    for (const method of Object.values(definition)) this.known.add(method.path);
  }

  /** Counts one answered call. */
  count(path: string, statusCode: grpc.status): void {
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
      child = this.requests.labels(method, grpc.status[code] ?? String(code));
      byCode[code] = child;
    }
    child.inc();
  }

  interceptor(): grpc.ServerInterceptor {
    return (descriptor, call) =>
      new grpc.ServerInterceptingCall(call, {
        sendStatus: (status, next) => {
          this.count(descriptor.path, status.code);
          next(status);
        },
      });
  }
}
