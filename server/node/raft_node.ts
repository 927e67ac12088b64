// RaftNode: a voter (DESIGN.md §1 server/node). It owns the pure RaftCore, the lock state
// machine, the storage and the transport; the shared ReadyLoop (ready_loop.ts) runs the Ready
// contract of server/core/ready.ts (persist in ONE transaction, send, apply, advance) with this
// node's applier: committed entries go to the LockStateMachine, and after each advance the node
// serves confirmed reads, takes its periodic snapshot and sets up a new term's leadership.
//
// It is synchronous and single-threaded: inputs (tick, receive, submit, read) change the core
// and ask for a process() pass; the production driver coalesces those requests into one pass
// per event-loop turn, so many concurrent proposals share one Ready, one SQLite transaction and
// one AppendEntries. The simulator calls process() itself, which keeps runs deterministic.
//
// Only the leader reads a clock (LeaderClock) and stamps it on proposals; the state machine
// never does. A new leader proposes LeaderTimersRestart before any client command, so every
// lease and lock-delay restarts at full length before it grants anything.

import { asInvariantViolation, assert } from "../core/assert.ts";
import { isJoint, type ConfChange } from "../core/conf_change.ts";
import type { Message } from "../core/messages.ts";
import { RaftCore } from "../core/raft.ts";
import type { RaftConfig } from "../core/config.ts";
import type { ReadState, Ready, SoftState } from "../core/ready.ts";
import type { ConfState, Entry, Index, NodeId, Snapshot } from "../core/types.ts";
import { encodeCommand, type ClientCommand, type Command, type LeaseKeepAlive } from "../state/commands.ts";
import { DEFAULT_STATE_CONFIG, type StateConfig } from "../state/limits.ts";
import { LockStateMachine } from "../state/machine.ts";
import type { RaftStorage } from "../storage/raft_storage.ts";
import { estimateMessageBytes } from "../transport/peer_codec.ts";
import type { PeerTransport } from "../transport/peer_transport.ts";
import { LeaderClock, type MonotonicClock } from "./leader_clock.ts";
import { type Compact, ReadyLoop } from "./ready_loop.ts";
import { type QueuedRenewal, RenewalQueue, renewalBytes } from "./renewal_batch.ts";
import type {
  AdminOutcome,
  CallOptions,
  EventListener,
  LeaderHint,
  MembershipPrecondition,
  NodeApi,
  NodeStatus,
  Overloaded,
  ReadOutcome,
  RestoreListener,
  SubmitOutcome,
} from "./node_api.ts";

/** overloadRetryAfterMs when the driver gives none: two ticks of the default 50 ms. */
const OVERLOAD_RETRY_AFTER_MS_DEFAULT = 100;

export interface RaftNodeOptions {
  readonly raftConfig: RaftConfig;
  readonly storage: RaftStorage;
  readonly transport: PeerTransport;
  readonly clock: MonotonicClock;
  readonly stateConfig?: StateConfig;
  /** Take a state-machine snapshot and compact the log after this many applied entries. */
  readonly snapshotEveryEntries: number;
  /** Client proposals and reads waiting for an outcome, at most; beyond it a request is answered
   *  "overloaded" (RESOURCE_EXHAUSTED OVERLOADED), never proposed. */
  readonly pendingMax: number;
  /** The retry-after hint of an "overloaded" answer: about one heartbeat interval, the time a
   *  commit round takes to drain the queue (tenured: tickMs * heartbeatIntervalTicks). */
  readonly overloadRetryAfterMs?: number;
  /** Client-API address of every member, for leader hints. */
  readonly memberAddresses: ReadonlyMap<NodeId, string>;
  /** Asks the driver for a process() pass soon (coalesced); the simulator passes a no-op. */
  readonly requestProcess: () => void;
  readonly log: (fields: Record<string, unknown>) => void;
  /**
   * TEST-ONLY DELIBERATE BUG (tenured --test-mode --test-bugs stale-local-reads): every read is
   * answered at once from this member's applied state, leader or follower, with no ReadIndex and
   * no NOT_LEADER. A lagging follower or a deposed leader then serves stale data, which the chaos
   * harness's linearizability checker must catch. Absent (false) in every real configuration.
   */
  readonly staleLocalReads?: boolean;
  /**
   * TEST-ONLY DELIBERATE BUG (the lock simulator's `readBeforeApplied` switch; tenured
   * --test-mode --test-bugs read-before-applied): a confirmed read is served as soon as the
   * leader confirmed it (in the Ready that carries its ReadState), without waiting for the state
   * machine to apply up to the read index. Whenever apply lags commit (a bounded number of
   * committed entries per Ready and of Readies per pass, a slow state machine) the read answers
   * from a state older than writes that committed before it was sent, which the simulator's read
   * check and the chaos harness's linearizability checker must catch. Absent (false) in every
   * real configuration.
   */
  readonly readBeforeApplied?: boolean;
  /**
   * TEST-ONLY DELIBERATE BUG (the lock simulator's `sendBeforePersist` switch): the Ready loop's
   * testOnlyBugSendBeforePersist (ready_loop.ts): a Ready's messages, a follower's append
   * acknowledgements among them, leave before its write, which becomes durable only at the
   * node's next pass. The simulator's commit-not-durable check must catch the leader counting
   * such an acknowledgement. Absent (false) in every real configuration.
   */
  readonly testOnlyBugSendBeforePersist?: boolean;
  /**
   * The leader sends its appends before its own write of a Ready and persists it at the next pass
   * or input, so its fsync overlaps its followers' (ready_loop.ts, leaderSendsBeforePersist).
   * Default true. It was off while a chaos election violation seen with it on (a campaign told a
   * definite failure whose value was elected) was unexplained; the cause found was the SDK
   * reporting a retried campaign that found its lease gone as definite (client-sdk/rpc.ts, now
   * OUTCOME_UNKNOWN), not this path. Evidence since: 10-minute chaos runs on both topologies with
   * it on, and the Raft simulator with it on (vopr_presets.test.ts, 800 seeds by hand).
   */
  readonly leaderSendsBeforePersist?: boolean;
  /**
   * With leaderSendsBeforePersist: a parked Ready's write runs in the background when the
   * storage can (SqliteStorage.saveInBackground: the fsync on the thread pool), so the event loop
   * serves the gRPC traffic during the leader's fsync (ready_loop.ts backgroundWrites). Inputs
   * wait while it runs, as while any Ready is parked. Default false (the simulator's storage has
   * no background write); tenured turns it on.
   */
  readonly backgroundWrites?: boolean;
  /**
   * Readies handled by one process() pass at most (default 1000). When a pass stops with work
   * left (this bound, or the core's committedEntriesPerReadyMax leaving committed entries
   * unapplied), the node asks for another pass (requestProcess), so apply can lag commit across
   * passes while other input is handled in between.
   */
  readonly readiesPerPassMax?: number;
  /**
   * TEST-ONLY (tenured --test-mode --test-apply-delay-ms N): called before each committed entry
   * is applied; the server sleeps there, a slow state machine. Absent in every real configuration.
   */
  readonly testOnlyBeforeApply?: () => void;
  /**
   * Called after every process() pass with the applied configuration (the core's): the peer
   * transport forgets the incarnations of ids that left it (server/transport/peer_incarnations.ts).
   */
  readonly onConfiguration?: (confState: ConfState) => void;
  /**
   * The leader holds each KeepAlive at most this many ticks and proposes every renewal it holds
   * as one LeaseKeepAliveBatch entry (renewal_batch.ts; DESIGN.md section 3). Default: the
   * heartbeat interval. 0: each KeepAlive is its own entry, proposed at once.
   */
  readonly renewalCoalesceTicks?: number;
}

type SubmitCallback = (outcome: SubmitOutcome) => void;

interface PendingProposal {
  readonly term: number;
  readonly callback: SubmitCallback;
}

interface PendingRead {
  readonly run: (machine: LockStateMachine | null) => void;
  /** Set once the leader confirmed the read; it runs when applied reaches it. */
  index: Index | null;
}

const READIES_PER_PASS_MAX_DEFAULT = 1000;
/** Why an input is refused while the inputs held behind a parked Ready are at pendingMax. */
const HELD_FULL_OVERLOADED = "inputs are waiting for this member's write to reach its disk";
const HELD_FULL_REFUSED = "this member's disk is behind its inputs; retry";
/**
 * Peer messages held behind a parked Ready, at most, by count and by estimated wire size. Their
 * own bound, apart from the clients' (pendingMax): a burst of requests must never crowd out the
 * followers' acknowledgements, or a loaded leader would miss its quorum (CheckQuorum) and step
 * down. On a leader these are mostly small responses; the byte cap stops a rival leader's appends
 * or snapshot from piling up behind a stalled disk. The first message is always held.
 */
const HELD_PEER_MESSAGES_MAX = 1024;
const HELD_PEER_BYTES_MAX = 64 * 1024 * 1024;

/** What an input held behind a parked Ready counts against (deferWhileParked). */
type HeldInput =
  | { readonly kind: "client"; readonly whenFull: () => void }
  | { readonly kind: "peer"; readonly message: Message; readonly whenFull: () => void }
  | { readonly kind: "tick" };
const TICK: HeldInput = { kind: "tick" };
const client = (whenFull: () => void): HeldInput => ({ kind: "client", whenFull });

/** Runs `handler` once if `signal` aborts; returns the detach (a no-op without a signal). */
function onAbort(signal: AbortSignal | undefined, handler: () => void): () => void {
  if (signal === undefined) return () => {};
  signal.addEventListener("abort", handler, { once: true });
  return () => signal.removeEventListener("abort", handler);
}

export class RaftNode implements NodeApi {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly loop: ReadyLoop;
  private machine: LockStateMachine;
  private readonly stateConfig: StateConfig;
  private readonly leaderClock: LeaderClock;
  private readonly proposals = new Map<Index, PendingProposal>();
  private readonly configWaiters = new Map<Index, { term: number; callback: (o: AdminOutcome) => void }>();
  private readonly reads = new Map<number, PendingRead>();
  private readonly listeners = new Set<EventListener>();
  /** Told when a snapshot replaces the state machine (its entries emit no events): waiters re-check. */
  private readonly restoreListeners = new Set<RestoreListener>();
  /** Timer commands proposed and not yet applied (by log index), so each is proposed once. */
  private readonly timersInFlight = new Map<Index, string>();
  /**
   * The STATE MACHINE's applied position: the last entry handed to it (config entries included,
   * which the machine itself skips) or the snapshot it was restored from. Confirmed reads wait on
   * this, what the machine they run on holds, not on an index of the core's.
   */
  private appliedIndex: Index;
  private readContextNext = 1;
  /** Renewals waiting to be proposed together; null when renewalCoalesceTicks is 0. */
  private readonly renewals: RenewalQueue<SubmitCallback> | null;
  /** Inputs held while a Ready is parked (deferWhileParked), run at the next pass in arrival order. */
  private deferredInputs: (() => void)[] = [];
  /** Of deferredInputs: client requests, reads and admin calls (at most pendingMax). */
  private heldClientInputs = 0;
  /** Of deferredInputs: peer messages, and their estimated bytes (HELD_PEER_*_MAX). */
  private heldPeerMessages = 0;
  private heldPeerBytes = 0;
  /** A tick is among deferredInputs: later ticks fold into it, as a blocked timer fires once. */
  private tickDeferred = false;
  /** Peer messages dropped because their held bound was reached (a long background write; Raft resends). */
  private peerMessagesDroppedWhileParked = 0;
  private heldFullLogged = false;
  private readonly countDropped = (): void => {
    this.peerMessagesDroppedWhileParked++;
  };
  private setupTerm = -1;
  private stopped = false;

  constructor(private readonly options: RaftNodeOptions) {
    this.id = options.raftConfig.id;
    this.stateConfig = options.stateConfig ?? DEFAULT_STATE_CONFIG;
    this.leaderClock = new LeaderClock(options.clock);
    const coalesceTicks = options.renewalCoalesceTicks ?? options.raftConfig.heartbeatIntervalTicks;
    assert(Number.isSafeInteger(coalesceTicks) && coalesceTicks >= 0, "renewalCoalesceTicks must be >= 0");
    this.renewals = coalesceTicks === 0 ? null : new RenewalQueue(coalesceTicks);
    const persisted = options.storage.load();
    const snap = persisted.snapshot;
    this.machine =
      snap && snap.data.length > 0 ? LockStateMachine.restore(snap.data, this.stateConfig) : new LockStateMachine(this.stateConfig);
    const appliedIndex = snap?.metadata.index ?? 0;
    assert(this.machine.appliedIndex() <= appliedIndex, "snapshot image is ahead of its metadata");
    this.appliedIndex = appliedIndex;
    this.core = new RaftCore({ ...options.raftConfig, appliedIndex }, persisted);
    this.loop = new ReadyLoop({
      core: this.core,
      storage: options.storage,
      transport: options.transport,
      readiesPerPassMax: options.readiesPerPassMax ?? READIES_PER_PASS_MAX_DEFAULT,
      ...(options.testOnlyBugSendBeforePersist === true ? { testOnlyBugSendBeforePersist: true } : {}),
      leaderSendsBeforePersist: options.leaderSendsBeforePersist ?? true,
      ...(options.backgroundWrites === true ? { backgroundWrites: { onWriteDurable: () => this.options.requestProcess() } } : {}),
      applier: {
        restoreSnapshot: (snapshot) => this.restoreSnapshot(snapshot),
        applyEntry: (entry) => this.applyEntry(entry),
        softStateChanged: (soft) => this.softStateChanged(soft),
        afterAdvance: (rd, compact) => this.afterAdvance(rd, compact),
      },
    });
    options.transport.onMessage((m) => this.receive(m));
  }

  // ------------------------------------------------------------------ inputs

  tick(): void {
    if (this.stopped || this.tickDeferred) return;
    const deferred = this.deferWhileParked(() => {
      this.tickDeferred = false;
      this.tick();
    }, TICK);
    if (deferred) {
      this.tickDeferred = true;
      return;
    }
    this.core.tick();
    this.proposeDueTimers();
    const due = this.renewals?.tick() ?? null;
    if (due !== null) this.proposeRenewals(due);
    this.options.requestProcess();
  }

  receive(message: Message): void {
    if (this.stopped) return;
    // The held-input record is built only while parked: receive() is on every message's path.
    if (this.loop.parked() && this.deferWhileParked(() => this.receive(message), { kind: "peer", message, whenFull: this.countDropped })) {
      return;
    }
    try {
      this.core.step(message);
    } catch (err) {
      throw asInvariantViolation(err, `core.step(${message.kind} from ${message.from})`);
    }
    this.options.requestProcess();
  }

  submit(command: ClientCommand, options: CallOptions = {}): Promise<SubmitOutcome> {
    return new Promise((resolve) => this.submitWithCallback(command, options, resolve));
  }

  /** Callback form of submit (the simulator's deterministic path). */
  submitWithCallback(command: ClientCommand, options: CallOptions, callback: SubmitCallback): void {
    if (this.stopped) return callback({ kind: "unavailable", reason: "node is shutting down" });
    const full = (): void => callback(this.overloaded(HELD_FULL_OVERLOADED));
    if (this.deferWhileParked(() => this.submitWithCallback(command, options, callback), client(full))) return;
    if (options.signal?.aborted) return callback({ kind: "unavailable", reason: "cancelled before proposing" });
    if (this.pendingCount() >= this.options.pendingMax) return callback(this.overloaded());
    this.ensureLeaderSetup();
    if (command.kind === "LeaseKeepAlive" && this.renewals !== null) {
      const bytes = renewalBytes(command);
      if (this.renewals.fits(bytes)) return this.queueRenewal(command, bytes, options, callback);
    }
    const proposed = this.proposeCommand(command);
    if (!proposed.ok) return callback(proposed.outcome);
    // The listener goes when the proposal is answered, and abandons only this proposal: a later
    // leader's proposal may take the same index.
    let pending: PendingProposal | null = null;
    const detach = onAbort(options.signal, () => {
      if (pending !== null && this.proposals.get(proposed.index) === pending) this.abandonProposal(proposed.index);
    });
    pending = {
      term: proposed.term,
      callback: (outcome) => {
        detach();
        callback(outcome);
      },
    };
    this.proposals.set(proposed.index, pending);
    this.options.requestProcess();
  }

  read<T>(query: (machine: LockStateMachine) => T, options: CallOptions = {}): Promise<ReadOutcome<T>> {
    return new Promise((resolve) => this.readWithCallback(query, options, resolve));
  }

  readWithCallback<T>(query: (m: LockStateMachine) => T, options: CallOptions, callback: (o: ReadOutcome<T>) => void): void {
    if (this.stopped) return callback({ kind: "unavailable", reason: "node is shutting down" });
    const full = (): void => callback(this.overloaded(HELD_FULL_OVERLOADED));
    if (this.deferWhileParked(() => this.readWithCallback(query, options, callback), client(full))) return;
    if (this.options.staleLocalReads === true) {
      // The deliberate test-only bug (see RaftNodeOptions.staleLocalReads): skips ReadIndex.
      return callback({ kind: "read", value: query(this.machine), index: this.machine.appliedIndex() });
    }
    if (this.pendingCount() >= this.options.pendingMax) return callback(this.overloaded());
    const context = this.readContextNext++;
    const refused = this.core.readIndex(context);
    if (!refused.ok) return callback(this.notServing(refused.reason === "notLeader", refused.detail));
    const detach = onAbort(options.signal, () => this.reads.delete(context));
    this.reads.set(context, {
      index: null,
      run: (machine) => {
        detach();
        if (machine === null) callback({ kind: "unavailable", reason: "leadership lost before the read was confirmed" });
        else callback({ kind: "read", value: query(machine), index: machine.appliedIndex() });
      },
    });
    this.options.requestProcess();
  }

  subscribe(listener: EventListener, onRestored?: RestoreListener): () => void {
    // Wrapped, so one function subscribed twice stays two subscriptions.
    const events: EventListener = (evs, index) => listener(evs, index);
    const restored: RestoreListener | null = onRestored ? (machine, index) => onRestored(machine, index) : null;
    this.listeners.add(events);
    if (restored) this.restoreListeners.add(restored);
    return () => {
      this.listeners.delete(events);
      if (restored) this.restoreListeners.delete(restored);
    };
  }

  transferLeader(to: NodeId): Promise<AdminOutcome> {
    return new Promise((resolve) => this.transferLeaderWithCallback(to, resolve));
  }

  private transferLeaderWithCallback(to: NodeId, callback: (outcome: AdminOutcome) => void): void {
    if (this.stopped) return callback({ kind: "refused", reason: "node stopped" });
    const full = (): void => callback({ kind: "refused", reason: HELD_FULL_REFUSED });
    if (this.deferWhileParked(() => this.transferLeaderWithCallback(to, callback), client(full))) return;
    const r = this.core.transferLeadership(to);
    this.options.requestProcess();
    if (r.ok) return callback({ kind: "ok" });
    if (r.reason === "notLeader") return callback({ kind: "notLeader", hint: this.leaderHint() });
    callback({ kind: "refused", reason: r.detail });
  }

  changeMembership(change: ConfChange, precondition?: MembershipPrecondition): Promise<AdminOutcome> {
    return new Promise((resolve) => {
      const deferred = (): void => {
        if (this.stopped) resolve({ kind: "refused", reason: "node stopped" });
        else void this.changeMembership(change, precondition).then(resolve);
      };
      if (
        this.deferWhileParked(
          deferred,
          client(() => resolve({ kind: "refused", reason: HELD_FULL_REFUSED })),
        )
      )
        return;
      const refused = precondition === undefined ? null : this.membershipRefusal(precondition);
      if (refused !== null) {
        resolve({ kind: "refused", reason: refused });
        return;
      }
      // In the same turn as the check: no other proposal can come between them.
      const r = this.core.proposeConfChange(change);
      if (!r.ok) {
        resolve(r.reason === "notLeader" ? { kind: "notLeader", hint: this.leaderHint() } : { kind: "refused", reason: r.detail });
        return;
      }
      this.configWaiters.set(r.index, { term: r.term, callback: resolve });
      this.options.requestProcess();
    });
  }

  memberAddresses(): ReadonlyMap<NodeId, string> {
    return this.options.memberAddresses;
  }

  /**
   * The precondition's refusal against the configuration a change proposed now applies to. That
   * is the core's applied configuration when this node leads, it is not joint and no config entry
   * waits in the log above the applied index; otherwise the core refuses the proposal itself (not
   * leader, joint, a change pending), so the precondition is not asked and the core's reason is
   * the answer.
   */
  private membershipRefusal(precondition: MembershipPrecondition): string | null {
    const s = this.core.status();
    if (s.role !== "leader" || isJoint(s.confState)) return null;
    for (let index = s.applied + 1; index <= s.lastIndex; index++) {
      const entry = this.core.entryAt(index);
      if (entry === undefined || entry.type === "config") return null;
    }
    return precondition(s.confState);
  }

  status(): NodeStatus {
    const s = this.core.status();
    return {
      id: s.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commit,
      appliedIndex: s.applied,
      lastIndex: s.lastIndex,
      confState: s.confState,
      recovering: s.recovering,
    };
  }

  /** Inputs held while a Ready is parked (peer messages among them), and peer messages dropped past their bound. */
  heldInputs(): { readonly held: number; readonly heldPeerMessages: number; readonly peerMessagesDropped: number } {
    return {
      held: this.deferredInputs.length,
      heldPeerMessages: this.heldPeerMessages,
      peerMessagesDropped: this.peerMessagesDroppedWhileParked,
    };
  }

  /** For metrics (replication lag): the leader's match index for `id`, null off the leader. */
  matchIndexOf(id: NodeId): Index | null {
    return this.core.matchIndexOf(id);
  }

  /** For checkers and metrics: the replica's state machine (read-only use). */
  stateMachine(): LockStateMachine {
    return this.machine;
  }

  /** Stops taking input; pending callers learn the outcome is unknown. */
  stop(): void {
    this.stopped = true;
    this.failPending("node stopped");
    this.runDeferredInputs(); // each sees the node stopped: callers hear "shutting down"
  }

  /**
   * While the loop has a leader's Ready parked (its appends on their way, its own write at the
   * next pass; ready_loop.ts) the core takes no input: an input that arrives then is kept and
   * run, in arrival order, at the start of the next pass, right after the parked Ready is
   * finished. A pass is already requested, so this holds inputs for at most one event-loop turn
   * (bounded by what one turn delivers), or, while the parked write runs in the background
   * (backgroundWrites), until it is durable: its callback asks for the pass. Storage I/O thus
   * stays in process(), never in an input.
   */
  private deferWhileParked(input: () => void, held: HeldInput): boolean {
    if (!this.loop.parked()) return false;
    // Bounded (a disk that stalls a background write must not queue inputs without limit), each
    // kind on its own: past pendingMax a client input is refused as overloaded; past the peer
    // bounds a peer message is dropped (Raft resends); a tick is held once (tick() folds them).
    const peerBytes = held.kind === "peer" ? estimateMessageBytes(held.message) : 0;
    if (this.heldInputIsFull(held, peerBytes)) {
      if (!this.heldFullLogged) {
        this.heldFullLogged = true;
        this.options.log({
          event: "inputs-held-full",
          kind: held.kind,
          held: this.deferredInputs.length,
          writeInFlight: this.loop.writing(),
          detail: "this member's write has not reached its disk; further requests are refused as overloaded, peer messages dropped",
        });
      }
      if (held.kind !== "tick") held.whenFull();
      return true;
    }
    if (held.kind === "client") this.heldClientInputs++;
    if (held.kind === "peer") {
      this.heldPeerMessages++;
      this.heldPeerBytes += peerBytes;
    }
    this.deferredInputs.push(input);
    if (!this.loop.writing()) this.options.requestProcess();
    return true;
  }

  private heldInputIsFull(held: HeldInput, peerBytes: number): boolean {
    if (held.kind === "client") return this.heldClientInputs >= this.options.pendingMax;
    if (held.kind === "tick") return false;
    if (this.heldPeerMessages === 0) return false;
    return this.heldPeerMessages >= HELD_PEER_MESSAGES_MAX || this.heldPeerBytes + peerBytes > HELD_PEER_BYTES_MAX;
  }

  private runDeferredInputs(): void {
    const inputs = this.deferredInputs;
    this.deferredInputs = [];
    this.heldClientInputs = 0;
    this.heldPeerMessages = 0;
    this.heldPeerBytes = 0;
    this.heldFullLogged = false;
    for (const input of inputs) input();
  }

  // ------------------------------------------------------------------ the Ready loop's applier

  /** Runs Ready cycles until the core is quiet. Storage failure throws: fatal to the process. */
  process(): void {
    // A background write still in flight: its callback asks for the pass that finishes it.
    if (this.stopped || this.loop.writing()) return;
    // A parked Ready first, then the inputs it held back, then new Readies (the parked one counts
    // towards this pass's bound).
    const finished = this.loop.finishParked();
    this.runDeferredInputs();
    this.loop.process(finished ? 1 : 0);
    this.options.onConfiguration?.(this.core.status().confState);
    // Work left by the pass bound (or committed entries beyond the per-Ready cap), or a leader's
    // Ready parked until its appends are on the wire (ready_loop.ts): another pass.
    if (!this.stopped && !this.loop.writing() && (this.loop.parked() || this.core.hasReady())) this.options.requestProcess();
  }

  private softStateChanged(soft: SoftState): void {
    if (soft.role !== "leader") this.onNotLeader();
  }

  private afterAdvance(rd: Ready, compact: Compact): void {
    // Reads confirmed by this Ready run once applied reaches their index.
    this.confirmReads(rd.readStates);
    if (this.options.readBeforeApplied === true) this.runConfirmedReadsAtOnce();
    this.runConfirmedReads();
    this.maybeSnapshot(compact);
    this.ensureLeaderSetup();
  }

  private applyEntry(e: Entry): void {
    this.options.testOnlyBeforeApply?.();
    this.appliedIndex = e.index;
    if (e.type === "config") {
      this.resolveConfigWaiter(e);
      return; // the core applies membership itself in advance()
    }
    const result = this.machine.apply(e.index, e.data);
    this.timersInFlight.delete(e.index);
    if (result.events.length > 0) for (const l of [...this.listeners]) l(result.events, e.index);
    const pending = this.proposals.get(e.index);
    if (!pending) return;
    this.proposals.delete(e.index);
    // A different term at our index means our entry was overwritten by another leader's.
    pending.callback(
      pending.term === e.term
        ? { kind: "applied", result }
        : { kind: "outcomeUnknown", reason: `entry ${e.index} was replaced by a later leader` },
    );
  }

  private resolveConfigWaiter(e: Entry): void {
    const waiter = this.configWaiters.get(e.index);
    if (!waiter) return;
    this.configWaiters.delete(e.index);
    waiter.callback(waiter.term === e.term ? { kind: "ok" } : { kind: "refused", reason: "config entry was replaced" });
  }

  private restoreSnapshot(snapshot: Snapshot): void {
    // The bootstrap snapshot (index 0, no image) reaches a member whose store was rebuilt empty
    // (storage recovery): it carries the first configuration and an empty state machine.
    const bootstrap = snapshot.metadata.index === 0 && snapshot.data.length === 0;
    assert(bootstrap || snapshot.data.length > 0, "a snapshot from the leader must carry a state machine image");
    this.machine = bootstrap ? new LockStateMachine(this.stateConfig) : LockStateMachine.restore(snapshot.data, this.stateConfig);
    this.appliedIndex = snapshot.metadata.index;
    // The entries the snapshot covers were never applied here: no events. Whoever waits for one
    // (a blocking Acquire or Campaign queued on this member, an Observe stream) re-checks now.
    for (const l of [...this.restoreListeners]) l(this.machine, snapshot.metadata.index);
  }

  private maybeSnapshot(compact: Compact): void {
    const snapIndex = this.core.latestSnapshot()?.metadata.index ?? 0;
    const applied = this.core.status().applied;
    if (applied - snapIndex < this.options.snapshotEveryEntries) return;
    if (this.machine.appliedIndex() > applied) return;
    const snapshot = this.core.createSnapshot(this.machine.snapshot());
    compact(snapshot, this.core.storageLogStart());
  }

  // ------------------------------------------------------------------ leadership

  /** Once per term, before any client command: leader time starts and timers restart. */
  private ensureLeaderSetup(): void {
    const s = this.core.status();
    if (s.role !== "leader" || this.setupTerm === s.term) return;
    this.setupTerm = s.term;
    this.leaderClock.promote(s.term, this.machine.leaderTimeMs());
    this.timersInFlight.clear();
    const r = this.core.propose(this.stamp({ kind: "LeaderTimersRestart" }));
    this.options.log({ event: "leader", node: this.id, term: s.term, timersRestartProposed: r.ok });
  }

  private onNotLeader(): void {
    this.leaderClock.demote();
    this.setupTerm = -1;
    this.timersInFlight.clear();
    this.failPending("leadership changed before the outcome was known");
  }

  private failPending(reason: string): void {
    // Renewals not yet proposed: never in the log, so a plain "not leader" (safe to retry anywhere).
    for (const r of this.renewals?.take() ?? []) if (!r.cancelled) r.callback({ kind: "notLeader", hint: this.leaderHint() });
    const proposals = [...this.proposals.values()];
    this.proposals.clear();
    for (const p of proposals) p.callback({ kind: "outcomeUnknown", reason });
    const reads = [...this.reads.values()];
    this.reads.clear();
    for (const r of reads) r.run(null);
    const configs = [...this.configWaiters.values()];
    this.configWaiters.clear();
    for (const c of configs) c.callback({ kind: "refused", reason });
  }

  private proposeDueTimers(): void {
    const s = this.core.status();
    if (s.role !== "leader" || this.machine.timersTerm() !== s.term) return;
    const inFlight = new Set(this.timersInFlight.values());
    for (const command of this.machine.timers(this.leaderClock.stampMs())) {
      const key = JSON.stringify(command);
      if (inFlight.has(key)) continue;
      const r = this.core.propose(this.stamp(command));
      if (!r.ok) return;
      this.timersInFlight.set(r.index, key);
    }
  }

  /** A command of a client (or a renewal batch): proposed by a leader whose clock is set up. */
  private proposeCommand(command: Command): { ok: true; index: Index; term: number } | { ok: false; outcome: SubmitOutcome } {
    if (!this.leadsWithClock()) return { ok: false, outcome: { kind: "notLeader", hint: this.leaderHint() } };
    const r = this.core.propose(this.stamp(command));
    if (r.ok) return { ok: true, index: r.index, term: r.term };
    if (r.reason === "notLeader") return { ok: false, outcome: { kind: "notLeader", hint: this.leaderHint() } };
    return { ok: false, outcome: { kind: "unavailable", reason: r.detail } };
  }

  private leadsWithClock(): boolean {
    const s = this.core.status();
    return s.role === "leader" && this.leaderClock.isLeaderOf(s.term);
  }

  /** Proposals, reads and queued renewals waiting for an outcome (bounded by pendingMax). */
  private pendingCount(): number {
    return this.proposals.size + this.reads.size + (this.renewals?.size ?? 0);
  }

  /** Holds a KeepAlive for the next renewal batch (renewal_batch.ts); a full batch leaves now. */
  private queueRenewal(command: LeaseKeepAlive, bytes: number, options: CallOptions, callback: SubmitCallback): void {
    const queue = this.renewals;
    assert(queue !== null, "renewal queued with coalescing off");
    if (!this.leadsWithClock()) return callback({ kind: "notLeader", hint: this.leaderHint() });
    // Answered once: by its batch, or by the cancellation while it still waits (then detached).
    let answered = false;
    const answer: SubmitCallback = (outcome) => {
      if (answered) return;
      answered = true;
      detach();
      callback(outcome);
    };
    const item: QueuedRenewal<SubmitCallback> = { command, callback: answer, bytes, cancelled: false };
    const detach = onAbort(options.signal, () => {
      if (item.cancelled || answered) return;
      item.cancelled = true;
      // Still queued, or proposed and not yet applied: its fate is unknown either way.
      answer({ kind: "outcomeUnknown", reason: "cancelled while its renewal waited for its batch" });
    });
    const full = queue.add(item);
    if (full !== null) this.proposeRenewals(full);
  }

  /**
   * Proposes `batch` as one LeaseKeepAliveBatch entry; each renewal's caller gets its own result
   * once it applies (or the batch's outcome when it does not).
   */
  private proposeRenewals(batch: readonly QueuedRenewal<SubmitCallback>[]): void {
    const live = batch.filter((r) => !r.cancelled);
    if (live.length === 0) return;
    const answerAll = (outcome: SubmitOutcome): void => {
      for (const r of live) if (!r.cancelled) r.callback(outcome);
    };
    const proposed = this.proposeCommand({ kind: "LeaseKeepAliveBatch", renewals: live.map((q) => q.command) });
    if (!proposed.ok) return answerAll(proposed.outcome);
    this.proposals.set(proposed.index, {
      term: proposed.term,
      callback: (outcome) => {
        const result = outcome.kind === "applied" ? outcome.result : null;
        if (result === null || !result.ok || result.kind !== "LeaseKeepAliveBatch") return answerAll(outcome);
        assert(result.results.length === live.length, `renewal batch ${result.index}: ${result.results.length} results for ${live.length}`);
        live.forEach((q, i) => {
          const own = result.results[i];
          assert(own !== undefined, "renewal result missing");
          if (!q.cancelled)
            q.callback({ kind: "applied", result: { ...own.result, index: result.index, replayed: own.replayed, events: [] } });
        });
      },
    });
    this.options.requestProcess();
  }

  private stamp(command: Command): Uint8Array {
    return encodeCommand({ leaderTimeMs: this.leaderClock.stampMs(), term: this.core.status().term, command });
  }

  private abandonProposal(index: Index): void {
    const pending = this.proposals.get(index);
    if (!pending) return;
    this.proposals.delete(index);
    pending.callback({ kind: "outcomeUnknown", reason: "cancelled after the proposal left this node" });
  }

  // ------------------------------------------------------------------ reads

  private confirmReads(states: readonly ReadState[]): void {
    for (const rs of states) {
      const read = this.reads.get(rs.context);
      if (read) read.index = rs.index;
    }
  }

  /** A confirmed read runs once the STATE MACHINE has applied up to its read index. */
  private runConfirmedReads(): void {
    const applied = this.appliedIndex;
    for (const [context, read] of this.reads) {
      if (read.index === null || applied < read.index) continue;
      this.reads.delete(context);
      read.run(this.machine);
    }
  }

  /** The deliberate bug (RaftNodeOptions.readBeforeApplied): every confirmed read runs now. */
  private runConfirmedReadsAtOnce(): void {
    for (const [context, read] of this.reads) {
      if (read.index === null) continue;
      this.reads.delete(context);
      read.run(this.machine);
    }
  }

  private leaderHint(): LeaderHint | null {
    const leader = this.core.status().leader;
    if (!leader) return null;
    return { leaderId: leader, leaderAddress: this.options.memberAddresses.get(leader) ?? null };
  }

  private overloaded(why = `${this.options.pendingMax} requests are waiting for their commit or read on this member`): Overloaded {
    return {
      kind: "overloaded",
      reason: why,
      retryAfterMs: this.options.overloadRetryAfterMs ?? OVERLOAD_RETRY_AFTER_MS_DEFAULT,
    };
  }

  private notServing(
    notLeader: boolean,
    detail: string,
  ): { kind: "notLeader"; hint: LeaderHint | null } | { kind: "unavailable"; reason: string } {
    return notLeader ? { kind: "notLeader", hint: this.leaderHint() } : { kind: "unavailable", reason: detail };
  }
}
