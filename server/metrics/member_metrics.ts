// Every metric of one member process (tenured or tenure-witness) on one registry: the wrappers
// main.ts puts around storage and transport before it wires them, and the scrape-time and
// per-tick readers bound once the node exists. What only a voter has (the client API's
// proposals, the state machine's tables) is in voter_metrics.ts, so that tenure-witness never
// reaches server/state, not even by a type (witness/purity.test.ts). README "Metrics and health"
// lists the names.

import type * as grpc from "@grpc/grpc-js";
import type { Index, NodeId } from "../core/types.ts";
import type { RaftStorage } from "../storage/raft_storage.ts";
import type { PeerTransport } from "../transport/peer_transport.ts";
import { type ClockPair, ClockRateCheck } from "./clock_metrics.ts";
import { LeadershipMetrics } from "./leadership_metrics.ts";
import { MeteredTransport } from "./peer_metrics.ts";
import { registerRaftMetrics, type RaftStatusView } from "./raft_metrics.ts";
import { createRegistry, type MetricsRegistry } from "./registry.ts";
import { RequestMetrics } from "./request_metrics.ts";
import { MeteredStorage } from "./storage_metrics.ts";
import { type TlsCertificateSource, TlsMetrics } from "./tls_metrics.ts";

export interface MemberMetricsOptions {
  readonly electionTimeoutMs: number;
  readonly rho: number;
  readonly clocks: ClockPair;
  readonly log: (fields: Record<string, unknown>) => void;
  /** Process metrics (CPU, memory, event-loop lag) too; default true. */
  readonly processMetrics?: boolean;
}

/** What the member's node offers the metrics once it exists. */
export interface MetricsNodeSource {
  readonly status: () => RaftStatusView;
  readonly matchIndexOf?: (id: NodeId) => Index | null;
}

export class MemberMetrics {
  readonly registry: MetricsRegistry;
  readonly requests: RequestMetrics;
  private leadership: LeadershipMetrics | null = null;
  private readonly clock: ClockRateCheck;
  private readonly certificates: TlsMetrics;

  constructor(private readonly options: MemberMetricsOptions) {
    this.registry = createRegistry({ processMetrics: options.processMetrics ?? true });
    this.requests = new RequestMetrics(this.registry);
    this.clock = new ClockRateCheck(this.registry, { clocks: options.clocks, rho: options.rho, log: options.log });
    this.certificates = new TlsMetrics(this.registry);
  }

  /** The TLS material in force (server/tls MemberTls.material; null with --insecure): certificate expiry. */
  tls(source: TlsCertificateSource | null): void {
    this.certificates.bind(source);
  }

  storage(inner: RaftStorage, recoveredAtStart: boolean): RaftStorage {
    return new MeteredStorage(inner, this.registry, { recoveredAtStart });
  }

  transport(inner: PeerTransport, peerIds: readonly NodeId[], view: MeteredTransportView): PeerTransport {
    return new MeteredTransport(inner, this.registry, { peerIds, view, log: this.options.log });
  }

  interceptor(): grpc.ServerInterceptor {
    return this.requests.interceptor();
  }

  /** Once the node exists: the scrape-time readers. */
  bind(source: MetricsNodeSource): void {
    registerRaftMetrics(this.registry, source);
    this.leadership = new LeadershipMetrics(this.registry, {
      status: source.status,
      pendingProposals: () => this.pendingProposals(),
      electionTimeoutMs: this.options.electionTimeoutMs,
    });
  }

  /** Client proposals waiting for their outcome (none on a witness; VoterMetrics counts them). */
  protected pendingProposals(): number {
    return 0;
  }

  /** Once per tick (the member's ticker): the samplers. */
  tick(): void {
    this.leadership?.sample(this.options.clocks.monotonicMs());
    this.clock.sample();
  }

  close(): void {
    this.registry.clear();
  }
}

export type MeteredTransportView = ConstructorParameters<typeof MeteredTransport>[2]["view"];
