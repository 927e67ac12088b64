// The round trip of a Tenure renewal under the keepalive load. The SDK does not expose its
// renewals' round trips, so a probe session of the same identity renews one of the held leases
// (renewing twice is harmless) on a raw KeepAlive stream to the leader every PROBE_INTERVAL_MS,
// one request at a time, and times each answer: what a renewal waits for while the SDK's
// streams renew the rest.

import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { channelCredentials, type TransportSecurity } from "../../client-sdk/tls.ts";
import { tenurePackage } from "../../server/api/protos.ts";
import { type LatencySummary, LatencyRecorder } from "./latency.ts";

const PROBE_INTERVAL_MS = 20;
const ANSWER_TIMEOUT_MS = 5000;

type Message = Record<string, unknown>;
type Ctor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;

export class RenewalProbe {
  private readonly client: grpc.Client;
  private readonly latency = new LatencyRecorder();
  private stopped = false;
  private failures = 0;

  constructor(leader: string, security: TransportSecurity) {
    const loaded = grpc.loadPackageDefinition(tenurePackage()) as unknown as { tenure: { v1: { Lease: Ctor } } };
    this.client = new loaded.tenure.v1.Lease(leader, channelCredentials(security));
  }

  /** Renews `leaseId` over and over until `windowMs` has passed; the round trips. */
  async run(leaseId: string, windowMs: number): Promise<{ latency: LatencySummary; failures: number }> {
    const open = (this.client as unknown as Record<string, () => grpc.ClientDuplexStream<Message, Message>>)["KeepAlive"];
    if (!open) throw new Error("no KeepAlive method");
    const stream = open.call(this.client);
    stream.on("error", () => {
      this.stopped = true;
    });
    const clientId = `bench-probe-${randomBytes(6).toString("hex")}`;
    const end = performance.now() + windowMs;
    for (let seq = 1; performance.now() < end && !this.stopped; seq++) {
      const t0 = performance.now();
      const answered = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ANSWER_TIMEOUT_MS);
        stream.once("data", () => {
          clearTimeout(timer);
          resolve(true);
        });
        stream.write({ clientId, seq, leaseIds: [leaseId] });
      });
      if (!answered) {
        this.failures++;
        break;
      }
      this.latency.record(performance.now() - t0);
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
    }
    stream.end();
    stream.cancel();
    return { latency: this.latency.summary(), failures: this.failures };
  }

  close(): void {
    this.client.close();
  }
}
