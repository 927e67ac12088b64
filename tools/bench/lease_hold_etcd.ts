// etcd leases kept alive over raw LeaseKeepAlive streams to the leader. etcd renews one lease per
// request (etcd3 npm opens a stream per lease, which does not scale to 100,000), so this is the
// lean client: STREAMS streams, each with up to WINDOW renewals in flight, every lease renewed
// about ttl/3 after its last renewal was sent (the SDK's schedule on Tenure's side). A renewal
// counts when its answer carries TTL > 0; TTL 0 means the lease had already expired.

import type { ClientDuplexStream } from "@grpc/grpc-js";
import { EtcdConnection } from "./etcd_client.ts";
import { LatencyRecorder } from "./latency.ts";
import { grantAll, type HoldOptions, type HoldWindow, type LeaseHold } from "./lease_hold.ts";

const STREAMS = 4;
const WINDOW = 64;
const IDLE_STEP_MS = 5;

type Message = Record<string, unknown>;

interface Due {
  readonly id: string;
  readonly dueAt: number;
}

class Renewer {
  private stream: ClientDuplexStream<Message, Message>;
  private readonly queue: Due[] = [];
  private head = 0;
  private readonly sentAt = new Map<string, number>();
  private stopped = false;
  renewals = 0;
  lost = 0;
  /** Streams that failed and were reopened, and the first failure's message. */
  streamErrors = 0;
  firstStreamError = "";
  latency = new LatencyRecorder();
  private readonly loopDone: Promise<void>;

  constructor(
    private readonly connection: EtcdConnection,
    private readonly periodMs: number,
  ) {
    this.stream = this.open();
    this.loopDone = this.loop();
  }

  /** A stream that fails is replaced; its unanswered renewals are due again at once. */
  private open(): ClientDuplexStream<Message, Message> {
    const stream = this.connection.keepAliveStream();
    stream.on("data", (m: Message) => this.onAnswer(m));
    const fail = (why: string): void => {
      if (this.stopped || this.stream !== stream) return;
      this.streamErrors++;
      if (this.firstStreamError === "") this.firstStreamError = why;
      const now = performance.now();
      for (const id of this.sentAt.keys()) this.queue.push({ id, dueAt: now });
      this.sentAt.clear();
      this.stream = this.open();
    };
    stream.on("error", (e: Error) => fail(e.message));
    stream.on("end", () => fail("stream ended by the server"));
    return stream;
  }

  add(id: string): void {
    this.queue.push({ id, dueAt: performance.now() + this.periodMs });
  }

  private onAnswer(m: Message): void {
    const id = String(m["ID"]);
    const sent = this.sentAt.get(id);
    if (sent === undefined) return;
    this.sentAt.delete(id);
    if (Number(m["TTL"]) > 0) {
      this.renewals++;
      this.latency.record(performance.now() - sent);
      this.queue.push({ id, dueAt: sent + this.periodMs });
    } else {
      this.lost++;
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const next = this.queue[this.head];
      const now = performance.now();
      if (next === undefined || next.dueAt > now || this.sentAt.size >= WINDOW) {
        await new Promise((r) => setTimeout(r, IDLE_STEP_MS));
        continue;
      }
      this.head++;
      // Compact now and then, so the queue does not grow without bound.
      if (this.head > 100_000) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.sentAt.set(next.id, now);
      this.stream.write({ ID: next.id });
    }
  }

  alive(): number {
    return this.queue.length - this.head + this.sentAt.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loopDone;
    this.stream.end();
    this.stream.cancel();
  }
}

export async function holdEtcdLeases(o: HoldOptions & { readonly leader: string }): Promise<LeaseHold> {
  const connections = Array.from({ length: STREAMS }, () => new EtcdConnection(o.leader));
  const periodMs = o.ttlMs / 3;
  const renewers = connections.map((c) => new Renewer(c, periodMs));
  const ttlS = Math.round(o.ttlMs / 1000);
  const g = await grantAll(o, async (i) => {
    const c = connections[i % STREAMS];
    const r = renewers[i % STREAMS];
    if (!c || !r) throw new Error("no connection");
    r.add(await c.grant(ttlS));
  });
  if (g.errors > 0) o.log(`  etcd: ${g.errors} grants failed, first: ${g.firstError}`);
  return {
    granted: g.granted,
    grantMs: g.grantMs,
    grantErrors: g.errors,
    async measure(windowMs: number): Promise<HoldWindow> {
      for (const r of renewers) {
        r.renewals = 0;
        r.latency = new LatencyRecorder();
      }
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, windowMs));
      const elapsedMs = performance.now() - t0;
      const renewals = renewers.reduce((s, r) => s + r.renewals, 0);
      // The streams' latencies are comparable: take the busiest stream's as the figure's.
      const busiest = renewers.reduce((a, b) => (b.renewals > a.renewals ? b : a));
      const lost = renewers.reduce((s, r) => s + r.lost, 0);
      const aliveAtEnd = renewers.reduce((s, r) => s + r.alive(), 0);
      const streamErrors = renewers.reduce((s, r) => s + r.streamErrors, 0);
      if (streamErrors > 0)
        o.log(
          `  etcd: ${streamErrors} keepalive streams failed and were reopened, first: ${renewers.find((r) => r.firstStreamError)?.firstStreamError}`,
        );
      const serverCount = await (connections[0] ?? new EtcdConnection(o.leader)).leaseCount();
      return {
        streamErrors,
        renewals,
        ratePerS: renewals / (elapsedMs / 1000),
        latency: busiest.latency.summary(),
        aliveAtEnd,
        serverCount,
        lost,
      };
    },
    async close(): Promise<void> {
      await Promise.all(renewers.map((r) => r.stop()));
      for (const c of connections) c.close();
    },
  };
}
