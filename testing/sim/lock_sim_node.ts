// One simulated server of the lock simulation: the production RaftNode over a SimStorage, its
// clock (rate within rho), its grant events fed to the lock checkers, and the Raft checkers' view.

import { makeRaftConfig } from "../../server/core/config.ts";
import type { Message } from "../../server/core/messages.ts";
import type { SeededRandom } from "../../server/core/random.ts";
import type { NodeId } from "../../server/core/types.ts";
import { RaftNode } from "../../server/node/raft_node.ts";
import type { ClientCommand } from "../../server/state/commands.ts";
import type { LockStateMachine } from "../../server/state/machine.ts";
import type { ApplyResult } from "../../server/state/results.ts";
import type { StateConfig } from "../../server/state/limits.ts";
import type { PeerTransport, PeerTransportStats } from "../../server/transport/peer_transport.ts";
import type { CheckedNode, SafetyChecker } from "./checkers.ts";
import type { LockChecker, ReadHistory } from "./lock_checkers.ts";
import type { ApplyLag } from "./lock_sim_types.ts";
import type { LockSwarm } from "./swarm.ts";
import type { ClientReply, ClientRequest } from "./sim_client.ts";
import type { ReaderAnswer, ReaderReply, ReaderRequest } from "./sim_reader.ts";
import type { SimDisk } from "./sim_disk.ts";
import { durableFirstIndex, durableTermAt, SimStorage } from "./sim_storage.ts";

export interface SimLockNode {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly random: SeededRandom;
  readonly rate: number;
  readonly offsetMs: number;
  raft: RaftNode | null;
  incarnation: number;
  pausedUntilMs: number;
  hashedIndex: number;
  wasLeader: boolean;
  /** The apply-lag fault on this node (a property of the node: it survives restarts), or null. */
  readonly lag: ApplyLag | null;
  /** The RaftNode asked for a pass (input arrived, or the last pass left work). */
  passRequested: boolean;
  /** A "pass" event is queued for this incarnation. */
  passScheduled: boolean;
  lastPassMs: number;
}

export interface NodeDeps {
  readonly swarm: LockSwarm;
  readonly stateConfig: StateConfig;
  readonly members: readonly NodeId[];
  readonly checker: SafetyChecker;
  readonly locks: LockChecker;
  readonly reads: ReadHistory;
  /** The production RaftNode's test-only readBeforeApplied switch. */
  readonly readBeforeApplied: boolean;
  /** The production RaftNode's test-only testOnlyBugSendBeforePersist switch. */
  readonly sendBeforePersist: boolean;
  /** RaftNodeOptions.backgroundWrites, their syncs run by the simulator later; null: off. */
  readonly backgroundSync: ((n: SimLockNode, sync: () => void) => void) | null;
  nowMs(): number;
  readonly debug: ((line: string) => void) | null;
}

/** A new process of node n, started from what its disk holds. */
export function makeRaftNode(n: SimLockNode, deps: NodeDeps): RaftNode {
  const s = deps.swarm;
  const debug = deps.debug;
  const raft = new RaftNode({
    raftConfig: makeRaftConfig({
      id: n.id,
      random: n.random,
      electionTimeoutTicks: s.electionTimeoutTicks,
      heartbeatIntervalTicks: s.heartbeatIntervalTicks,
      preVote: s.preVote,
      checkQuorum: s.checkQuorum,
      inflightMessagesMax: s.inflightMessagesMax,
      entriesPerMessageMax: s.entriesPerMessageMax,
      uncommittedEntriesMax: s.uncommittedEntriesMax,
      // As tenured runs (server/main.ts): a commit reaches followers with the next message.
      sendCommitAtOnce: false,
      ...(n.lag ? { committedEntriesPerReadyMax: n.lag.committedEntriesPerReadyMax } : {}),
      logger: debug,
    }),
    storage: new SimStorage(n.id, n.disk, deps.checker, deps.backgroundSync === null ? null : (sync) => deps.backgroundSync?.(n, sync)),
    ...(deps.backgroundSync === null ? {} : { backgroundWrites: true }),
    transport: new SimTransport(n.disk, (m) => deps.checker.onSend(m)),
    clock: { monotonicMs: () => n.offsetMs + n.rate * deps.nowMs() },
    stateConfig: deps.stateConfig,
    snapshotEveryEntries: s.snapshotEveryEntries,
    pendingMax: 1000,
    memberAddresses: new Map(deps.members.map((id) => [id, `sim:${id}`])),
    // The simulation runs the passes (lock_sim.ts): this only notes that one is wanted.
    requestProcess: () => {
      n.passRequested = true;
    },
    log: debug ? (f) => debug(JSON.stringify(f)) : () => {},
    ...(n.lag ? { readiesPerPassMax: n.lag.readiesPerPassMax } : {}),
    ...(deps.readBeforeApplied ? { readBeforeApplied: true } : {}),
    ...(deps.sendBeforePersist ? { testOnlyBugSendBeforePersist: true } : {}),
  });
  raft.subscribe((events, index) => {
    deps.reads.onApplied(index, events, deps.nowMs());
    let k = 0;
    for (const ev of events) {
      if (ev.kind !== "granted" || ev.table !== "lock") continue;
      // Read the replica right after the grant's entry applied: does the lease exist?
      const leaseExists = raft.stateMachine().leaseTimeToLive(ev.leaseId) !== null;
      deps.locks.onGrant(n.id, index, k++, { name: ev.name, leaseId: ev.leaseId, token: ev.token }, leaseExists);
    }
  });
  return raft;
}

/** The Raft checkers' view of a RaftNode: its status, and its log as made durable. */
export function checkedView(n: SimLockNode, raft: RaftNode): CheckedNode {
  return {
    id: n.id,
    incarnation: n.incarnation,
    core: {
      status: () => {
        const s = raft.status();
        const firstIndex = durableFirstIndex(n.disk);
        const durableTerm = n.disk.load().hardState.term;
        return {
          role: s.role,
          term: s.term,
          commit: s.commitIndex,
          lastIndex: s.lastIndex,
          firstIndex,
          confState: s.confState,
          durableTerm,
        };
      },
      termAt: (i) => durableTermAt(n.disk, i),
    },
  };
}

export interface ServeHooks {
  alive(): boolean;
  reply(r: ClientReply): void;
  /** Every applied outcome, whether or not its reply survives the network. */
  onApplied(command: ClientCommand, result: ApplyResult, termAtSubmit: number): void;
}

/** A client request at a node: submitWithCallback / readWithCallback, answered by `hooks.reply`. */
export function serveClient(raft: RaftNode, request: ClientRequest, hooks: ServeHooks): void {
  if (request.kind === "read") {
    raft.readWithCallback(
      (m) => m.lockStatus(request.lock),
      {},
      (outcome) => {
        if (hooks.alive()) hooks.reply({ kind: "read", reqId: request.reqId, lock: request.lock, outcome });
      },
    );
    return;
  }
  const command = request.command;
  const term = raft.status().term;
  raft.submitWithCallback(command, {}, (outcome) => {
    if (!hooks.alive()) return;
    if (outcome.kind === "applied") hooks.onApplied(command, outcome.result, term);
    hooks.reply({ kind: "submit", reqId: request.reqId, seq: command.seq, outcome });
  });
}

/** A reader's read at node n: readWithCallback, answered (by `reply`) only while the process lives. */
export function serveRead(raft: RaftNode, request: ReaderRequest, alive: () => boolean, reply: (r: ReaderReply) => void): void {
  const query =
    request.kind === "status"
      ? (m: LockStateMachine): ReaderAnswer => ({ holder: m.lockStatus(request.lock).holder?.token ?? null })
      : (m: LockStateMachine): ReaderAnswer => ({ current: m.validateToken(request.lock, request.token).current });
  raft.readWithCallback(query, {}, (outcome) => {
    if (alive()) reply({ reqId: request.reqId, outcome });
  });
}

/**
 * The node's PeerTransport: every message goes to the checker (votes seen on the wire), then the
 * network. A send first passes the disk's crash point (sim_disk.ts), as SimNode's does: an armed
 * point can stop the process between a Ready's persist and its send.
 */
class SimTransport implements PeerTransport {
  private sent = 0;
  constructor(
    private readonly disk: SimDisk,
    private readonly onSend: (m: Message) => void,
  ) {}
  send(messages: readonly Message[]): void {
    this.disk.crashPoint("send");
    for (const m of messages) {
      this.sent++;
      this.onSend(m);
    }
  }
  onMessage(): void {} // the simulation delivers by calling RaftNode.receive itself
  setPeers(): void {}
  stats(): PeerTransportStats {
    return { sentMessages: this.sent, droppedMessages: 0, receivedMessages: 0, rejectedBatches: 0 };
  }
  async close(): Promise<void> {}
}
