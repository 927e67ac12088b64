// The standard gRPC health service (grpc.health.v1.Health, from grpc-health-check) on the client
// port, and gRPC server reflection (@grpc/reflection) behind --grpc-reflection. Health follows
// the same readiness as /readyz (readiness.ts): SERVING when ready, else NOT_SERVING, for the
// whole server ("") and for each tenure.v1 service by its full name. Polled every intervalMs (a
// tick): Watch streams see a change within one interval. Both services sit behind the port's TLS
// and the same interceptors as the API (requests are counted like any other method).

import type * as grpc from "@grpc/grpc-js";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath, type ServingStatus, service as healthServiceDefinition } from "grpc-health-check";
import type { Readiness } from "./readiness.ts";

/** The service names health answers for, besides "" (the whole server). */
export const HEALTH_SERVICE_NAMES = ["tenure.v1.Lease", "tenure.v1.Lock", "tenure.v1.Election", "tenure.v1.Cluster"] as const;

export { healthServiceDefinition };

export class GrpcHealth {
  private readonly impl: HealthImplementation;
  private readonly names: readonly string[];
  private current: ServingStatus | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly readiness: () => Readiness,
    names: readonly string[] = HEALTH_SERVICE_NAMES,
  ) {
    this.names = ["", ...names];
    this.impl = new HealthImplementation();
    this.update();
  }

  /** Re-reads readiness and sets every name's status (watchers are told of a change). */
  update(): ServingStatus {
    const status: ServingStatus = this.readiness().ready ? "SERVING" : "NOT_SERVING";
    if (status !== this.current) {
      this.current = status;
      for (const name of this.names) this.impl.setStatus(name, status);
    }
    return status;
  }

  /** Polls readiness every intervalMs until close(). */
  start(intervalMs: number): this {
    this.timer ??= setInterval(() => this.update(), intervalMs);
    this.timer.unref();
    return this;
  }

  addToServer(server: Pick<grpc.Server, "addService">): void {
    this.impl.addToServer(server as grpc.Server);
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Reflection of `pkg` (the tenure.v1 protos) and of grpc.health.v1, on `server`. */
export function addReflection(server: Pick<grpc.Server, "addService">, pkg: PackageDefinition): void {
  const health = loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  new ReflectionService({ ...pkg, ...health }).addToServer(server);
}
