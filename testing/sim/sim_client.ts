// The simulated gRPC between the lock simulation's clients and its nodes. The clients ARE the SDK
// (sdk_client.ts builds a TenureClient on this wire); the nodes answer with the production api
// handlers (server/api lease_service.ts and lock_service.ts: validation, submitOk/readOk, the
// blocking Acquire of wait_grant.ts, the KeepAlive stream, the status mapping with its ErrorDetail
// trailer) over the node's own RaftNode. Requests and answers go through the tenure.v1 protobuf
// codecs, so the SDK sees exactly the shapes grpc-js hands it (uint64 as decimal strings,
// defaults filled in), and server errors reach it as grpc-js service errors, decoded by the SDK's
// own TenureError.from. Only the sockets are simulated.
//
// One call (unary or stream) is one connection: its messages cross the simulated network
// (delay, jitter, partitions, loss) in order and at most once, as on a TCP stream. A message the
// network loses breaks the connection: the client's call fails with UNAVAILABLE (no reason: the
// SDK cannot know whether it was applied) and the server's call is cancelled, after
// `brokenDetectMs` (the transport noticing a dead connection). A crashed node resets its
// connections (UNAVAILABLE one network delay later) and refuses new ones; a paused node or client
// gets its messages when it wakes. Server-side deadlines are not simulated (grpc-js reads the
// wall clock there): every server call has none. A blocking call's own timeout_ms runs on the
// simulated clock (ServiceDeps.waitClock), so the api layer never arms a real timer.
//
// Also kept here: ClientRequest / ClientReply, the raw node-API request path of lock_sim_node.ts
// (serveClient), which the SDK clients do not use.

import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import { TenureError } from "../../client-sdk/errors.ts";
import { abortError } from "../../client-sdk/signals.ts";
import type { TimerHandle, Timers } from "../../client-sdk/timers.ts";
import type { DuplexStream, Message, ServerStream, Wire } from "../../client-sdk/transport.ts";
import { serviceDefinition, type ServiceName } from "../../proto/tenure_protos.ts";
import type { ServiceDeps } from "../../server/api/handler_kit.ts";
import { fnv1a64Hex } from "../../server/state/hash.ts";
import { leaseService } from "../../server/api/lease_service.ts";
import { lockService } from "../../server/api/lock_service.ts";
import type { NodeId } from "../../server/core/types.ts";
import type { EventListener, NodeApi, ReadOutcome, RestoreListener, SubmitOutcome } from "../../server/node/node_api.ts";
import type { RaftNode } from "../../server/node/raft_node.ts";
import type { ClientCommand } from "../../server/state/commands.ts";
import type { StateConfig } from "../../server/state/limits.ts";
import type { MutexStatus } from "../../server/state/lock_table.ts";
import type { LockStateMachine } from "../../server/state/machine.ts";
import type { ApplyResult } from "../../server/state/results.ts";

// ------------------------------------------------------------------ raw node requests (serveClient)

export type ClientRequest =
  | { readonly kind: "submit"; readonly reqId: number; readonly command: ClientCommand }
  | { readonly kind: "read"; readonly reqId: number; readonly lock: string };

export type ClientReply =
  | { readonly kind: "submit"; readonly reqId: number; readonly seq: number; readonly outcome: SubmitOutcome }
  | { readonly kind: "read"; readonly reqId: number; readonly lock: string; readonly outcome: ReadOutcome<MutexStatus> };

// ------------------------------------------------------------------ what the simulation provides

/** Client-API address of node `id` (the nodes' memberAddresses, so NOT_LEADER hints name it). */
export const endpointOf = (id: NodeId): string => `sim:${id}`;

/**
 * Lease ids in the simulation: a hash of the grant and the attempt instead of crypto (the run must
 * replay from its seed); distinct grants collide with odds 2^-53, and a collision is redrawn.
 */
function simLeaseId(grant: { readonly identity: string; readonly clientId: string; readonly seq: number }, attempt: number): number {
  const hex = fnv1a64Hex(new TextEncoder().encode(`${grant.identity} ${grant.clientId} ${grant.seq} ${attempt}`));
  return Number(BigInt(`0x${hex}`) >> 11n) || 1;
}

export interface WireEnv {
  /**
   * Carries `deliver` from `from` to `to` over the simulated network (it runs when the message
   * arrives, later than now, and not while `to` is paused); false: the network dropped it.
   * A duplicate may deliver twice.
   */
  send(from: string, to: string, tag: number, deliver: () => void): boolean;
  /** Runs `fn` at `to` (a node or a client) after `trueMs` of simulated time, as an arrival would. */
  after(to: string, trueMs: number, fn: () => void): void;
  /** The simulation's true time (ms): a blocking call's own timeout runs on it (ServiceDeps.waitClock). */
  nowMs(): number;
  /** One network delay (true ms): how long a reset takes to reach the other end. */
  oneWayDelayMs(): number;
  /** The node's current process, or null while it is down. */
  raftOf(node: NodeId): RaftNode | null;
  /** The simulation's process pass for a node whose RaftNode got an input (process + checks). */
  process(node: NodeId): void;
  /** Every applied outcome a node hands a client (the exactly-once and acked checks). */
  onApplied(command: ClientCommand, result: ApplyResult, termAtSubmit: number): void;
  /** Promise continuations are pending: drain them before the next event. */
  touched(): void;
  /** A snapshot restore was told to an api-layer listener (a blocking wait or an Observe): counted. */
  restoredToWaiter?(): void;
  /** An exception escaped node code while serving (an AssertionError is a violation). */
  fail(error: unknown): void;
  /**
   * A Lease answer (Grant, KeepAlive) reached `client`: true if the client's process pauses right
   * now, before handling it (it is then handled when the client wakes). The fault a lease's t0
   * depends on: the answer is handled long after the server applied it.
   */
  pauseOnLeaseReply(client: string): boolean;
  readonly stateConfig: StateConfig;
  /** How long after a lost message each end learns its connection is broken (true ms). */
  readonly brokenDetectMs: number;
}

// ------------------------------------------------------------------ connections

type Dir = "up" | "down"; // up: client -> node

interface StatusReply {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata;
}

/** One call's connection: ordered, at-most-once delivery per direction; a loss breaks it. */
class Conn {
  broken = false;
  /** Client side: the call ended (settled, cancelled, failed); later arrivals are ignored. */
  clientDone = false;
  onClientBroken: ((e: TenureError) => void) | null = null;
  onServerCancelled: (() => void) | null = null;
  private readonly sent = { up: 0, down: 0 };
  private readonly next = { up: 0, down: 0 };
  private readonly held = { up: new Map<number, () => void>(), down: new Map<number, () => void>() };

  constructor(
    private readonly hub: SimWireHub,
    readonly id: number,
    readonly client: string,
    readonly node: NodeId,
  ) {}

  send(dir: Dir, deliver: () => void): void {
    if (this.broken) return;
    const seq = this.sent[dir]++;
    const [from, to] = dir === "up" ? [this.client, this.node] : [this.node, this.client];
    const delivered = this.hub.env.send(from, to, this.id, () => this.arrive(dir, seq, deliver));
    if (!delivered) this.break(this.hub.env.brokenDetectMs, "connection lost (a message was dropped)");
  }

  /** Both ends learn after `afterMs`: the client's call fails, the server's is cancelled. */
  break(afterMs: number, why: string): void {
    if (this.broken) return;
    this.broken = true;
    this.hub.forget(this);
    const env = this.hub.env;
    env.after(this.client, afterMs, () => this.onClientBroken?.(grpcError(grpc.status.UNAVAILABLE, why)));
    env.after(this.node, afterMs, () => this.onServerCancelled?.());
  }

  private arrive(dir: Dir, seq: number, deliver: () => void): void {
    if (this.broken || seq < this.next[dir] || this.held[dir].has(seq)) return; // a duplicate
    this.held[dir].set(seq, deliver);
    for (let f = this.held[dir].get(this.next[dir]); f !== undefined; f = this.held[dir].get(this.next[dir])) {
      this.held[dir].delete(this.next[dir]);
      this.next[dir] += 1;
      f();
      if (this.broken) return;
    }
  }
}

/** A grpc-js client-side service error, as TenureError.from (errors.ts) decodes it. */
function grpcError(code: grpc.status, details: string, metadata: grpc.Metadata = new grpc.Metadata()): TenureError {
  const e = Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata });
  return TenureError.from(e);
}

function methodOf(service: ServiceName, method: string): MethodDefinition<object, object> | undefined {
  const def = serviceDefinition(service)[method];
  return def as MethodDefinition<object, object> | undefined;
}

// ------------------------------------------------------------------ the hub: both ends

/** Every connection of the run; hands each client its Wire and each node its api handlers. */
export class SimWireHub {
  private readonly open = new Set<Conn>();
  private readonly servers = new Map<NodeId, SimApiServer>();
  private connNext = 1;

  constructor(readonly env: WireEnv) {}

  /** The SDK's Wire for `client`, whose timers are on its own simulated clock. */
  wireFor(client: string, timers: Timers): Wire {
    return new SimWire(this, client, timers);
  }

  connect(client: string, node: NodeId): Conn {
    const c = new Conn(this, this.connNext++, client, node);
    this.open.add(c);
    return c;
  }

  forget(c: Conn): void {
    this.open.delete(c);
  }

  /** The node crashed: its connections reset (each client learns one network delay later). */
  nodeDown(node: NodeId): void {
    for (const c of [...this.open]) if (c.node === node) c.break(this.env.oneWayDelayMs(), "connection reset (the member is down)");
  }

  /** The handlers of the node's current process, or null while it is down. */
  server(node: NodeId): SimApiServer | null {
    const raft = this.env.raftOf(node);
    if (raft === null) return null;
    let s = this.servers.get(node);
    if (s?.raft !== raft) this.servers.set(node, (s = new SimApiServer(this.env, node, raft)));
    return s;
  }

  /** A request or stream opening reached `conn.node`: a process that is down refuses it. */
  accept(conn: Conn, run: (server: SimApiServer) => void): void {
    const server = this.server(conn.node);
    if (server === null) conn.break(this.env.oneWayDelayMs(), "connection refused (the member is down)");
    else run(server);
  }
}

// ------------------------------------------------------------------ client side: the SDK's Wire

class SimWire implements Wire {
  constructor(
    private readonly hub: SimWireHub,
    private readonly client: string,
    private readonly timers: Timers,
  ) {}

  unary(endpoint: string, service: ServiceName, method: string, request: object, timeoutMs: number, signal: AbortSignal): Promise<Message> {
    const def = methodOf(service, method);
    if (def === undefined) return Promise.reject(new TenureError("UNIMPLEMENTED", `no method ${service}.${method}`));
    if (signal.aborted) return Promise.reject(abortError(signal));
    const node = nodeOf(endpoint);
    let bytes: Buffer;
    try {
      bytes = def.requestSerialize(request);
    } catch (error) {
      return Promise.reject(grpcError(grpc.status.INTERNAL, `request serialization failed: ${String(error)}`));
    }
    return new Promise((resolve, reject) => {
      const conn = this.hub.connect(this.client, node);
      let timer: TimerHandle | undefined;
      const finish = (settle: () => void): void => {
        if (conn.clientDone) return;
        conn.clientDone = true;
        this.hub.forget(conn);
        this.timers.clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        settle();
        this.hub.env.touched();
      };
      const cancel = (): void => conn.send("up", () => conn.onServerCancelled?.());
      const onAbort = (): void => {
        cancel();
        finish(() => reject(grpcError(grpc.status.CANCELLED, "Cancelled on client")));
      };
      // grpc-js's deadline: the call fails locally and the server's call is cancelled.
      if (Number.isFinite(timeoutMs)) {
        timer = this.timers.setTimeout(
          () => {
            cancel();
            finish(() => reject(grpcError(grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded")));
          },
          Math.max(1, timeoutMs),
        );
      }
      conn.onClientBroken = (e) => finish(() => reject(e));
      signal.addEventListener("abort", onAbort, { once: true });
      const settle = (r: { readonly bytes: Buffer } | StatusReply): void =>
        finish(() =>
          "bytes" in r ? resolve(def.responseDeserialize(r.bytes) as Message) : reject(grpcError(r.code, r.details, r.metadata)),
        );
      const onReply = (r: { readonly bytes: Buffer } | StatusReply): void => {
        if (service === "Lease" && !conn.clientDone && this.hub.env.pauseOnLeaseReply(this.client))
          this.hub.env.after(this.client, 0, () => settle(r));
        else settle(r);
      };
      conn.send("up", () => this.hub.accept(conn, (server) => server.unary(conn, service, method, bytes, def, onReply)));
    });
  }

  duplex(endpoint: string, service: ServiceName, method: string): DuplexStream {
    const def = methodOf(service, method);
    if (def === undefined) throw new TenureError("UNIMPLEMENTED", `no method ${service}.${method}`);
    const conn = this.hub.connect(this.client, nodeOf(endpoint));
    const stream = new SimClientStream(this.hub, conn, def, service === "Lease");
    conn.send("up", () => this.hub.accept(conn, (server) => server.openStream(conn, service, method, def, stream)));
    return stream;
  }

  serverStream(_endpoint: string, service: ServiceName, method: string): ServerStream {
    // Election.Observe: the lock simulation runs no elections.
    throw new TenureError("UNIMPLEMENTED", `the lock simulation serves no ${service}.${method} stream`);
  }

  close(): void {}
}

function nodeOf(endpoint: string): NodeId {
  return endpoint.startsWith("sim:") ? endpoint.slice(4) : endpoint;
}

/** The client end of a bidirectional stream, as grpc-js's ClientDuplexStream behaves for the SDK. */
class SimClientStream extends EventEmitter implements DuplexStream {
  /** Set when the opening reached a live process. */
  serverSide: { data(bytes: Buffer): void } | null = null;

  constructor(
    private readonly hub: SimWireHub,
    private readonly conn: Conn,
    private readonly def: MethodDefinition<object, object>,
    /** Lease.KeepAlive: its answers may meet a pause (WireEnv.pauseOnLeaseReply). */
    private readonly leaseReplies: boolean,
  ) {
    super();
    conn.onClientBroken = (e) => this.fail(e);
  }

  write(message: object): boolean {
    if (this.conn.clientDone) return false;
    const bytes = this.def.requestSerialize(message);
    this.conn.send("up", () => this.serverSide?.data(bytes));
    return true;
  }

  cancel(): void {
    if (this.conn.clientDone) return;
    this.done();
    this.conn.send("up", () => this.conn.onServerCancelled?.());
  }

  /** From the server: a message, the stream's status (an error), or its end. */
  received(bytes: Buffer, deferred = false): void {
    if (this.conn.clientDone) return;
    if (!deferred && this.leaseReplies && this.hub.env.pauseOnLeaseReply(this.conn.client)) {
      this.hub.env.after(this.conn.client, 0, () => this.received(bytes, true)); // handled when it wakes
      return;
    }
    this.emit("data", this.def.responseDeserialize(bytes));
    this.hub.env.touched();
  }

  fail(error: TenureError): void {
    if (this.conn.clientDone) return;
    this.done();
    this.emit("error", error);
    this.hub.env.touched();
  }

  ended(): void {
    if (this.conn.clientDone) return;
    this.done();
    this.emit("end");
    this.hub.env.touched();
  }

  private done(): void {
    this.conn.clientDone = true;
    this.hub.forget(this.conn);
  }
}

// ------------------------------------------------------------------ server side: the api handlers

type UnaryHandler = (call: unknown, callback: (err: StatusReply | null, res?: object) => void) => void;
type StreamHandler = (call: unknown) => void;

/** One node process's api: the production Lease and Lock services over a NodeApi of its RaftNode. */
class SimApiServer {
  private readonly handlers: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  private readonly api: SimNodeApi;

  constructor(
    private readonly env: WireEnv,
    readonly node: NodeId,
    readonly raft: RaftNode,
  ) {
    this.api = new SimNodeApi(env, node, raft);
    const deps: ServiceDeps = {
      node: this.api,
      config: env.stateConfig,
      observeBufferMax: 1_024,
      appliedStreams: { open: 0, max: 1_024 },
      keepAlivePendingMax: 64,
      drawLeaseId: simLeaseId,
      // A blocking call's timeout_ms on simulated time, fired as an event of this process (not
      // after it crashed: its calls died with it).
      waitClock: {
        nowMs: () => env.nowMs(),
        after: (ms, fn) => {
          let live = true;
          env.after(node, ms, () => {
            if (live && this.alive()) fn();
          });
          return () => {
            live = false;
          };
        },
      },
    };
    this.handlers = { Lease: leaseService(deps), Lock: lockService(deps) };
  }

  alive(): boolean {
    return this.env.raftOf(this.node) === this.raft;
  }

  unary(
    conn: Conn,
    service: ServiceName,
    method: string,
    bytes: Buffer,
    def: MethodDefinition<object, object>,
    onReply: (r: { readonly bytes: Buffer } | StatusReply) => void,
  ): void {
    const handler = this.handlers[service]?.[method] as UnaryHandler | undefined;
    const answer = (r: { readonly bytes: Buffer } | StatusReply): void => {
      if (this.alive()) conn.send("down", () => onReply(r)); // a dead process answers nobody
    };
    if (handler === undefined) {
      answer({
        code: grpc.status.UNIMPLEMENTED,
        details: `${service}.${method} is not served in the simulation`,
        metadata: new grpc.Metadata(),
      });
      return;
    }
    const cancelled = new Set<() => void>();
    conn.onServerCancelled = () => {
      if (this.alive()) for (const fn of cancelled) fn();
      this.env.touched();
    };
    const call = {
      request: def.requestDeserialize(bytes),
      on: (event: string, fn: () => void) => {
        if (event === "cancelled") cancelled.add(fn);
        return call;
      },
      getDeadline: () => Number.POSITIVE_INFINITY,
    };
    handler(call, (err, res) => {
      if (err) answer({ code: err.code, details: err.details, metadata: err.metadata.clone() });
      else answer({ bytes: def.responseSerialize(res ?? {}) });
    });
    this.env.touched();
  }

  openStream(conn: Conn, service: ServiceName, method: string, def: MethodDefinition<object, object>, client: SimClientStream): void {
    const handler = this.handlers[service]?.[method] as StreamHandler | undefined;
    if (handler === undefined) {
      conn.send("down", () => client.fail(grpcError(grpc.status.UNIMPLEMENTED, `${service}.${method} is not served in the simulation`)));
      return;
    }
    const call = new SimServerStream(this, conn, def, client);
    client.serverSide = {
      data: (bytes) => {
        if (this.alive()) call.emit("data", def.requestDeserialize(bytes));
        this.env.touched();
      },
    };
    conn.onServerCancelled = () => {
      if (this.alive()) call.emit("cancelled");
      this.env.touched();
    };
    handler(call);
    this.env.touched();
  }
}

/** The server end of a bidirectional stream, as the KeepAlive handler uses grpc-js's. */
class SimServerStream extends EventEmitter {
  constructor(
    private readonly server: SimApiServer,
    private readonly conn: Conn,
    private readonly def: MethodDefinition<object, object>,
    private readonly client: SimClientStream,
  ) {
    super();
  }

  write(message: object): boolean {
    if (!this.server.alive()) return false;
    const bytes = this.def.responseSerialize(message);
    this.conn.send("down", () => this.client.received(bytes));
    return true;
  }

  end(): void {
    if (this.server.alive()) this.conn.send("down", () => this.client.ended());
  }

  /** grpc-js: emitting "error" with a status ends the call with that status. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "error" && this.server.alive()) {
      const s = args[0] as StatusReply;
      const metadata = s.metadata instanceof grpc.Metadata ? s.metadata.clone() : new grpc.Metadata();
      this.conn.send("down", () => this.client.fail(grpcError(s.code, s.details, metadata)));
    }
    return super.emit(event, ...args);
  }
}

/**
 * The NodeApi the handlers get: the node's RaftNode, driven the simulator's way (an input, then
 * the simulation's process pass), with every applied outcome reported to the checkers. Nothing is
 * answered once the process is gone (a crash fails its pending callbacks first). An exception
 * from node code is handed to the simulation instead of the handler, which would turn it into an
 * INTERNAL answer or stop the process (server/fatal.ts).
 */
class SimNodeApi implements NodeApi {
  constructor(
    private readonly env: WireEnv,
    private readonly id: NodeId,
    private readonly raft: RaftNode,
  ) {}

  private alive(): boolean {
    return this.env.raftOf(this.id) === this.raft;
  }

  private guarded(input: () => void): void {
    try {
      input();
      this.env.process(this.id);
    } catch (error) {
      this.env.fail(error);
    }
  }

  submit(command: ClientCommand): Promise<SubmitOutcome> {
    return new Promise((resolve) => {
      if (!this.alive()) return;
      this.guarded(() => {
        const term = this.raft.status().term;
        this.raft.submitWithCallback(command, {}, (outcome) => {
          if (!this.alive()) return;
          if (outcome.kind === "applied") this.env.onApplied(command, outcome.result, term);
          this.env.touched();
          resolve(outcome);
        });
      });
    });
  }

  read<T>(query: (machine: LockStateMachine) => T): Promise<ReadOutcome<T>> {
    return new Promise((resolve) => {
      if (!this.alive()) return;
      this.guarded(() =>
        this.raft.readWithCallback(query, {}, (outcome) => {
          if (!this.alive()) return;
          this.env.touched();
          resolve(outcome);
        }),
      );
    });
  }

  subscribe(listener: EventListener, onRestored?: RestoreListener): () => void {
    // Events (and snapshot restores) arrive during a process pass (any event's), and wake the api
    // layer's waits.
    const restored: RestoreListener | undefined = onRestored
      ? (machine, index) => {
          onRestored(machine, index);
          this.env.restoredToWaiter?.();
          this.env.touched();
        }
      : undefined;
    return this.raft.subscribe((events, index) => {
      listener(events, index);
      this.env.touched();
    }, restored);
  }

  status(): ReturnType<NodeApi["status"]> {
    return this.raft.status();
  }

  transferLeader(to: NodeId): ReturnType<NodeApi["transferLeader"]> {
    return this.raft.transferLeader(to);
  }

  changeMembership(change: Parameters<NodeApi["changeMembership"]>[0]): ReturnType<NodeApi["changeMembership"]> {
    return this.raft.changeMembership(change);
  }

  memberAddresses(): ReadonlyMap<NodeId, string> {
    return this.raft.memberAddresses();
  }
}
