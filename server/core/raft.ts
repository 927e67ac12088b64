// RaftCore: the pure Raft state machine (Ongaro's thesis, shaped after etcd-io/raft's RawNode).
// PURE: no I/O, no clock, no randomness but the injected PRNG, no timers, no Promises.
//
// Inputs: tick(), step(message), propose(data), proposeConfChange(cc), readIndex(ctx),
// transferLeadership(to), campaign(). Output: ready() -> Ready; the node loop persists, sends,
// applies and then calls advance(ready) (contract in ready.ts). Roles are swapped step/tick
// functions, so role behaviour lives in one place per role. A witness (DESIGN.md §4) behaves like a
// full voter except where a rule of witness_rules.ts is called; each call is marked with its rule.
//
// Recovery (RaftConfig.recovery; issue 13; Protocol-Aware Recovery, Alagappan et al., FAST 2018):
// a member whose storage lost log data it may have acknowledged cannot tell what it promised, so
// until it has caught up from a leader to the index its ack record says was durable it acts as a
// learner would: it grants no vote or pre-vote, never campaigns (election timeout, campaign(),
// TimeoutNow), takes a commit index only from an append it verified (never from a heartbeat: its
// surviving tail may hold entries the cluster overwrote), and marks its answers `recovering`, so
// a leader neither counts it towards a commit nor trusts the match it recorded before the loss.

import { assert, assertNever } from "./assert.ts";
import {
  allMembers,
  allVoters,
  applyConfChange,
  decodeConfChange,
  describeConfState,
  encodeConfChange,
  isJoint,
  isVoter,
  isWitness,
  type ConfChange,
} from "./conf_change.ts";
import type { RaftConfig } from "./config.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  SnapshotMessage,
  VoteMessage,
  VoteResponseMessage,
} from "./messages.ts";
import { Progress } from "./progress.ts";
import { jointCommittedIndex, jointVoteResult } from "./quorum.ts";
import { RaftLog } from "./raft_log.ts";
import { ReadOnlyQueue } from "./read_only.ts";
import type { ReadState, Ready, Role, SoftState } from "./ready.ts";
import {
  NO_NODE,
  type ConfState,
  type Entry,
  type HardState,
  type Index,
  type NodeId,
  type PersistedState,
  type Snapshot,
  type SnapshotMetadata,
  type Term,
} from "./types.ts";
import {
  electionTimeoutTicks,
  entriesToStore,
  floorAfterMembershipChange,
  floorStillBinds,
  floorUsable,
  grantsWitnessCandidate,
  handsOverTo,
  leavesJointConfig,
  proposalRefusal,
  leaderFloor,
  raisedFloor,
  readRefusal,
  retainedLogStart,
  sendsSnapshots,
  transferRefusal,
  truncationFloorFor,
  truncationIndex,
  witnessLeaderMaxTicks,
} from "./witness_rules.ts";

export type Refusal =
  | "notLeader"
  | "transferring"
  | "tooManyUncommitted"
  | "confChangePending"
  | "invalidConfChange"
  | "readQueueFull"
  | "noSuchVoter"
  | "witness";

export type ProposeResult =
  | { readonly ok: true; readonly index: Index; readonly term: Term }
  | { readonly ok: false; readonly reason: Refusal; readonly leader: NodeId; readonly detail: string };

export type CommandResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: Refusal; readonly leader: NodeId; readonly detail: string };

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly vote: NodeId;
  readonly leader: NodeId;
  readonly commit: Index;
  readonly applied: Index;
  readonly firstIndex: Index;
  readonly lastIndex: Index;
  readonly lastTerm: Term;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId;
  /** Recovering lost log data (RaftConfig.recovery): no vote, no campaign, not counted in commits. */
  readonly recovering: boolean;
}

type CampaignKind = "preElection" | "election" | "transfer";
const EMPTY = new Uint8Array(0);

export class RaftCore {
  readonly id: NodeId;
  private readonly config: RaftConfig;
  private readonly log: RaftLog;
  private term: Term;
  private vote: NodeId;
  private leader: NodeId = NO_NODE;
  private role: Role = "follower";
  private confState: ConfState;
  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private electionElapsedTicks = 0;
  private heartbeatElapsedTicks = 0;
  private randomizedElectionTimeoutTicks = 0;
  private leadTransferee: NodeId = NO_NODE;
  /** Index of the latest config entry proposed; no new change until it is applied. */
  private pendingConfIndex: Index = 0;
  private readonly readOnly: ReadOnlyQueue;
  /** Reads waiting for the leader's first commit in its term (thesis §6.4 step 1). */
  private readsAwaitingCommit: { context: number }[] = [];
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** Followers with something new to send; flushed in one batch per Ready. */
  private replicationDirty = new Set<NodeId>();
  private commitBroadcastPending = false;
  /** Followers behind us that answered a heartbeat: send them an append even if empty. */
  private catchUpProbes = new Set<NodeId>();
  /** The highest W3 floor a current-term leader sent: a witness truncates to it, a full member retains from it. */
  private witnessFloorReceived: Index = 0;
  /** W3: a floor received before this member applied up to the leader's index it was computed at (floorUsable). */
  private witnessFloorPending: { readonly floor: Index; readonly appliedIndex: Index } | null = null;
  /** Witness only: ticks spent as leader this term, capped by witnessLeaderMaxTicks (W5). */
  private witnessLeaderTicks = 0;
  /**
   * Index of the config entry the current configuration comes from (the log start when it came
   * with a snapshot or marker): a witness ignores floors computed before it (W3, floorStillBinds).
   */
  private confIndex: Index = 0;
  /**
   * Applied membership changes above the log start, with their index, and the membership at the
   * log start: a compaction marker (and a retaining leader's marker for a witness) gets the right one.
   */
  private confHistory: { index: Index; confState: ConfState }[] = [];
  private confAtStart: ConfState;
  private lastHardState: HardState;
  private lastSoftState: SoftState;
  private outstanding: Ready | null = null;
  /**
   * Recovery: the index this member must hold, verified against a leader, before it votes,
   * campaigns or counts towards a commit again; null when not recovering (file header).
   */
  private recoveryUntil: Index | null;
  private stepRole: (m: Message) => void = (m) => this.stepFollower(m);
  private tickRole: () => void = () => this.tickElection();

  constructor(config: RaftConfig, persisted: PersistedState) {
    this.config = config;
    this.id = config.id;
    this.log = new RaftLog(persisted, config.appliedIndex, config.bugs);
    this.term = persisted.hardState.term;
    this.vote = persisted.hardState.vote;
    this.lastHardState = persisted.hardState;
    this.recoveryUntil = config.recovery === null || config.bugs.trustCorruptLog ? null : config.recovery.untilIndex;
    this.confState = persisted.snapshot?.metadata.confState ?? {
      voters: [],
      votersOutgoing: [],
      learners: [],
      learnersNext: [],
      witnesses: [],
      autoLeave: false,
    };
    this.confAtStart = persisted.logStart?.confState ?? this.confState;
    this.replayRetainedConfChanges();
    this.readOnly = new ReadOnlyQueue(config.pendingReadsMax);
    this.confIndex = this.log.snapshotIndex();
    this.replayAppliedConfChanges();
    this.resetProgress();
    this.becomeFollower(this.term, NO_NODE);
    this.lastSoftState = this.softState();
    if (config.recovery !== null) {
      const until = config.recovery.untilIndex;
      const last = this.log.lastIndex();
      this.logLine(
        this.recoveryUntil === null
          ? `${this.id} BUG trusts its log: ignores recovery untilIndex=${until} lastIndex=${last}`
          : `${this.id} starts recovering untilIndex=${until} lastIndex=${last}: no vote, no campaign, not counted in commits until caught up`,
      );
    }
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    this.assertNoOutstandingReady();
    this.tickRole();
  }

  step(m: Message): void {
    this.assertNoOutstandingReady();
    assert(m.to === this.id, `message for ${m.to} delivered to ${this.id}`);
    if (m.term > this.term) {
      if (!this.onHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.onLowerTerm(m);
      return;
    }
    if (m.kind === "vote") {
      this.onVote(m);
      return;
    }
    this.stepRole(m);
  }

  /** Forces an election (after PreVote when enabled), as etcd's Campaign does. */
  campaign(): void {
    this.assertNoOutstandingReady();
    this.hup("preElection");
  }

  propose(data: Uint8Array): ProposeResult {
    this.assertNoOutstandingReady();
    const refusal = this.refuseProposal();
    if (refusal) return refusal;
    return this.appendLeaderEntry("normal", data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    this.assertNoOutstandingReady();
    const refusal = this.refuseProposal();
    if (refusal) return refusal;
    if (this.pendingConfIndex > this.log.applied) {
      return this.refused("confChangePending", `config entry ${this.pendingConfIndex} not yet applied`);
    }
    const result = applyConfChange(this.confState, cc);
    if (!result.ok) return this.refused("invalidConfChange", result.reason);
    const proposed = this.appendLeaderEntry("config", encodeConfChange(cc));
    if (proposed.ok) this.pendingConfIndex = proposed.index;
    return proposed;
  }

  /** Registers a linearizable read; its ReadState appears in a later Ready. */
  readIndex(context: number): CommandResult {
    this.assertNoOutstandingReady();
    assert(Number.isSafeInteger(context) && context > 0, "read context must be a positive integer");
    if (this.role !== "leader") return this.refused("notLeader", "reads are served by the leader");
    const witnessRefusal = readRefusal(this.confState, this.id); // W2
    if (witnessRefusal) return this.refused("witness", witnessRefusal);
    if (this.readOnly.size() + this.readsAwaitingCommit.length >= this.config.pendingReadsMax) {
      return this.refused("readQueueFull", `${this.config.pendingReadsMax} reads pending`);
    }
    if (this.log.term(this.log.committed) !== this.term) {
      this.readsAwaitingCommit.push({ context });
      return { ok: true };
    }
    this.registerRead(context);
    return { ok: true };
  }

  transferLeadership(to: NodeId): CommandResult {
    this.assertNoOutstandingReady();
    if (this.role !== "leader") return this.refused("notLeader", "only the leader transfers leadership");
    if (to === this.id) return { ok: true };
    if (!isVoter(this.confState, to)) return this.refused("noSuchVoter", `${to} is not a voter`);
    const witnessRefusal = transferRefusal(this.confState, to); // W5
    if (witnessRefusal) return this.refused("witness", witnessRefusal);
    if (this.leadTransferee === to) return { ok: true };
    this.leadTransferee = to;
    this.electionElapsedTicks = 0; // the transfer is abandoned after one election timeout
    this.logLine(`${this.id} starts leadership transfer to ${to}`);
    const pr = this.progress.get(to);
    assert(pr !== undefined, `no progress for voter ${to}`);
    if (pr.match === this.log.lastIndex()) this.send({ kind: "timeoutNow", to });
    else this.replicationDirty.add(to);
    return { ok: true };
  }

  // ---------------------------------------------------------------- Ready / advance

  hasReady(): boolean {
    if (this.outstanding) return false;
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.replicationDirty.size > 0 ||
      this.catchUpProbes.size > 0 ||
      this.commitBroadcastPending ||
      this.log.pendingSnapshot !== null ||
      this.log.unstableEntries().length > 0 ||
      this.log.nextCommittedEntries(1).length > 0 ||
      !sameHardState(this.hardState(), this.lastHardState) ||
      !sameSoftState(this.softState(), this.lastSoftState)
    );
  }

  ready(): Ready {
    this.assertNoOutstandingReady();
    this.flushReplication();
    const hs = this.hardState();
    const hsChanged = !sameHardState(hs, this.lastHardState);
    const ss = this.softState();
    const entries = this.log.unstableEntries();
    const committedEntries = this.log.nextCommittedEntries(this.config.committedEntriesPerReadyMax);
    const last = committedEntries[committedEntries.length - 1];
    if (last) this.log.acceptApplying(last.index);
    const rd: Ready = {
      softState: sameSoftState(ss, this.lastSoftState) ? null : ss,
      hardState: hsChanged ? this.persistableHardState(hs) : null,
      snapshot: this.log.pendingSnapshot,
      entries,
      committedEntries,
      messages: this.msgs,
      readStates: this.readStates,
      mustSync:
        entries.length > 0 ||
        this.log.pendingSnapshot !== null ||
        hs.term !== this.lastHardState.term ||
        hs.vote !== this.lastHardState.vote,
    };
    if (hsChanged) this.lastHardState = hs;
    this.lastSoftState = ss;
    this.msgs = [];
    this.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  advance(rd: Ready): void {
    assert(this.outstanding === rd, "advance() with a Ready that is not the outstanding one");
    this.outstanding = null;
    // The loop made everything rd asked for durable before sending any of it (ready.ts step 1):
    // this is the durable acknowledgement of rd's snapshot and entries.
    if (rd.snapshot) this.log.stableSnapshotTo(rd.snapshot);
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) this.log.stableTo(lastEntry.index, lastEntry.term);
    for (const e of rd.committedEntries) {
      this.log.appliedTo(e.index);
      if (e.type === "config") this.applyConfEntry(e);
    }
    if (this.role === "leader") this.onSelfDurable();
    this.maybeAutoLeave();
    this.maybeReleaseRetained();
  }

  /**
   * The application took a snapshot of its state at the applied index: compact the log. The core
   * keeps the latest snapshot to send to followers that fell behind it.
   */
  createSnapshot(data: Uint8Array): Snapshot {
    this.assertNoOutstandingReady();
    const index = this.log.applied;
    const term = this.log.term(index);
    assert(term !== undefined, `no term for applied index ${index}`);
    const snapshot: Snapshot = { metadata: { index, term, confState: this.confState }, data };
    const retainFrom = this.retainedLogStart(index); // W1/W3: churn issue 4
    this.moveLogStart(Math.max(this.log.startIndex(), retainFrom), () => this.log.compact(snapshot, retainFrom));
    return snapshot;
  }

  /** W1/W3 (witness_rules.retainedLogStart): how far back a full member keeps its log for a witness. */
  private retainedLogStart(snapshotIndex: Index): Index {
    if (this.isSelfWitness()) return snapshotIndex; // a witness truncates by compactWitnessLog only
    const leader = { id: this.id, committed: this.log.committed, stableIndex: this.log.stableIndex };
    this.promotePendingFloor();
    const floor = this.role === "leader" ? leaderFloor(this.confState, leader, this.progress) : this.witnessFloorReceived;
    return retainedLogStart(this.confState, floor, snapshotIndex);
  }

  /** Releases retained entries below the snapshot once no witness may need them (the floor rose). */
  private maybeReleaseRetained(): void {
    const snapIndex = this.log.snapshotIndex();
    if (this.log.startIndex() >= snapIndex) return;
    const to = this.retainedLogStart(snapIndex);
    if (to > this.log.startIndex()) this.moveLogStart(to, () => this.log.releaseTo(to));
  }

  /** Moves the log start to `start` with `move`; the membership at the start and the history follow. */
  private moveLogStart(start: Index, move: () => void): void {
    const conf = this.confStateAt(start);
    move();
    assert(this.log.startIndex() === start, `log start ${this.log.startIndex()} after moving it to ${start}`);
    this.confAtStart = conf;
    this.confHistory = this.confHistory.filter((h) => h.index > start);
  }

  /**
   * Witness only (W3, witness_rules.truncationIndex): truncate the log up to the floor the leader
   * sent with a metadata-only marker snapshot. Returns the marker to persist
   * (storage.saveSnapshotAndCompact), or null when there is nothing to truncate.
   */
  compactWitnessLog(): Snapshot | null {
    this.assertNoOutstandingReady();
    this.promotePendingFloor();
    const index = truncationIndex(
      this.confState,
      this.id,
      {
        floorReceived: this.witnessFloorReceived,
        committed: this.log.committed,
        applied: this.log.applied,
        snapshotIndex: this.log.snapshotIndex(),
      },
      this.config.bugs.truncateWitnessAtCommit,
    );
    if (index === null) return null;
    const term = this.log.term(index);
    assert(term !== undefined, `no term for witness floor ${index}`);
    const marker: Snapshot = { metadata: { index, term, confState: this.confStateAt(index) }, data: new Uint8Array(0) };
    this.moveLogStart(index, () => this.log.compact(marker));
    this.logLine(`${this.id} (witness) truncates its log up to ${index}`);
    return marker;
  }

  /** Membership as of `index` (which must be applied, and at or above the log start). */
  private confStateAt(index: Index): ConfState {
    assert(index >= this.log.startIndex(), `membership asked at ${index}, below the log start ${this.log.startIndex()}`);
    let cs = this.confAtStart;
    for (const h of this.confHistory) if (h.index <= index) cs = h.confState;
    return cs;
  }

  // ---------------------------------------------------------------- read-only views

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      confState: this.confState,
      leadTransferee: this.leadTransferee,
      recovering: this.recoveryUntil !== null,
    };
  }

  /** Recovering lost log data (file header): no vote, no campaign, not counted towards commits. */
  recovering(): boolean {
    return this.recoveryUntil !== null;
  }

  /** The entry at `index` if held in memory (checkers and scenario dumps). */
  entryAt(index: Index): Entry | undefined {
    return this.log.entry(index);
  }

  termAt(index: Index): Term | undefined {
    return this.log.term(index);
  }

  latestSnapshot(): Snapshot | null {
    return this.log.snapshot;
  }

  progressOf(id: NodeId): string {
    return this.progress.get(id)?.describe() ?? "none";
  }

  /**
   * The leader's match index for `id` (the highest entry it knows `id` holds), or null when this
   * member does not lead or does not track `id`. Read-only: metrics derive replication lag from it.
   */
  matchIndexOf(id: NodeId): Index | null {
    if (this.role !== "leader") return null;
    return this.progress.get(id)?.match ?? null;
  }

  // ---------------------------------------------------------------- term handling

  /** Returns false when the message must be dropped. */
  private onHigherTerm(m: Message): boolean {
    if (m.kind === "vote") {
      const inLease = this.config.checkQuorum && this.leader !== NO_NODE && this.electionElapsedTicks < this.config.electionTimeoutTicks;
      if (inLease && !m.transfer) {
        // We heard from a leader within the timeout: a disruptive candidate is ignored.
        this.logLine(`${this.id} ignores ${m.preVote ? "pre-" : ""}vote from ${m.from}: leader lease`);
        return false;
      }
      if (m.preVote) return true; // pre-votes never change anyone's term
    }
    if (m.kind === "voteResponse" && m.preVote && !m.reject) return true;
    const leader = m.kind === "append" || m.kind === "heartbeat" || m.kind === "snapshot" ? m.from : NO_NODE;
    this.becomeFollower(m.term, leader);
    return true;
  }

  private onLowerTerm(m: Message): void {
    const tellsStaleLeader = (this.config.checkQuorum || this.config.preVote) && (m.kind === "append" || m.kind === "heartbeat");
    if (tellsStaleLeader) {
      // A deposed leader (or a node cut off and rejoining) learns the new term from this.
      this.send({ kind: "appendResponse", to: m.from, index: 0, reject: false, rejectHintIndex: 0, rejectHintTerm: 0 });
    } else if (m.kind === "vote") {
      // Refused in our (newer) term, which the candidate then takes. A real vote too, as the Raft
      // paper answers it (etcd-io/raft drops it): a candidate whose term stays behind keeps
      // climbing one term per timeout while the others climb too, and may be the only one that
      // can win (random seed 8351 with the lazy commit: h held the latest configuration, every
      // other voter was recovering or counted in an older one, and nobody else asked h).
      this.send({ kind: "voteResponse", to: m.from, preVote: m.preVote, reject: true, ...this.commitHint() });
    }
    // Everything else from a stale term, responses included, is ignored.
  }

  private onVote(m: VoteMessage): void {
    if (this.recoveryUntil !== null) {
      // Recovery: our log may lack entries we acknowledged, so the up-to-date check would compare
      // the candidate with a log we no longer have; a vote could elect a leader without them.
      this.logLine(
        `${this.id} rejects ${m.preVote ? "pre-vote" : "vote"} from ${m.from} at term ${m.term}: recovering untilIndex=${this.recoveryUntil}`,
      );
      // The commit hint all the same: what it holds up to its commit index is committed (a lost
      // entry there leaves no term, hence no hint), and it may be the one member that knows a
      // membership change committed (random seed 9906 with the lazy commit).
      this.send({ kind: "voteResponse", to: m.from, preVote: m.preVote, reject: true, ...this.commitHint() });
      return;
    }
    const canVote = this.vote === m.from || (this.vote === NO_NODE && this.leader === NO_NODE) || (m.preVote && m.term > this.term);
    const logOk = this.config.bugs.voteWithoutLogCheck || this.candidateLogOk(m);
    if (canVote && logOk) {
      this.logLine(`${this.id} grants ${m.preVote ? "pre-vote" : "vote"} to ${m.from} at term ${m.term}`);
      this.send({ kind: "voteResponse", to: m.from, term: m.term, preVote: m.preVote, reject: false, ...this.commitHint() });
      if (!m.preVote) {
        this.electionElapsedTicks = 0;
        this.vote = m.from;
      }
      return;
    }
    this.logLine(`${this.id} rejects ${m.preVote ? "pre-vote" : "vote"} from ${m.from} at term ${m.term}`);
    this.send({ kind: "voteResponse", to: m.from, preVote: m.preVote, reject: true, ...this.commitHint() });
  }

  /**
   * What a vote response tells the candidate of our commit index (VoteResponseMessage.
   * committedIndex), granted or refused: it is a fact about the log, not about the vote. From a
   * recovering member too: its log lost a tail, never changed what it kept (entries are checked
   * when read), and a commit index whose entry's term we no longer know gives nothing.
   */
  private commitHint(): { committedIndex?: Index; committedTerm?: Term } {
    if (this.log.committed === 0) return {};
    const term = this.log.term(this.log.committed);
    return term === undefined ? {} : { committedIndex: this.log.committed, committedTerm: term };
  }

  /**
   * A vote response's commit hint: if we hold the responder's committed entry (same index and
   * term, so by Log Matching the same entries up to it), everything up to it is committed, as if
   * a leader's append had said so. Why it matters (witness preset with parked Readies: seeds
   * 1186, 3004, 3403, 3897, 7267, 8660 and 9713 of 10,000 lost liveness without it): a membership
   * change that leaves a joint configuration committed, then its leader was lost (or removed
   * itself, appended more and lost its voters) before the others learned it. They still counted
   * votes in the joint configuration, whose outgoing half needs a member that is gone, or the
   * removed leader, whose longer log refuses them. Knowing the change committed, they apply it and
   * count in the configuration that binds.
   */
  private takeCommitHint(m: VoteResponseMessage): void {
    const index = m.committedIndex;
    const term = m.committedTerm;
    if (index === undefined || term === undefined || index <= this.log.committed) return;
    // Recovering: our log may differ from what we acknowledged; only a verified append commits.
    if (this.recoveryUntil !== null) return;
    if (this.config.bugs.commitHintWithoutTermCheck) {
      if (index > this.log.lastIndex()) return;
    } else if (!this.log.matchTerm(index, term)) return; // matchTerm: also within our log
    this.logLine(`${this.id} learns from ${m.from} that ${term}/${index} is committed (was ${this.log.committed})`);
    this.log.commitTo(index);
  }

  /** Raft's up-to-date check, and W4's stricter one for a witness candidate. */
  private candidateLogOk(m: VoteMessage): boolean {
    if (!this.log.isUpToDate(m.lastIndex, m.lastTerm)) return false;
    const own = { lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm() };
    return grantsWitnessCandidate(this.confState, this.id, m, own);
  }

  private isSelfWitness(): boolean {
    return isWitness(this.confState, this.id);
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: Term, leader: NodeId): void {
    this.reset(term);
    this.leader = leader;
    this.role = "follower";
    this.stepRole = (m) => this.stepFollower(m);
    this.tickRole = () => this.tickElection();
    this.logLine(`${this.id} became follower at term ${term}${leader ? ` (leader ${leader})` : ""}`);
  }

  private becomePreCandidate(): void {
    assert(this.role !== "leader", "leader cannot become pre-candidate");
    // Term and vote stay: a pre-election changes nothing durable.
    this.votes = new Map();
    this.leader = NO_NODE;
    this.role = "preCandidate";
    this.stepRole = (m) => this.stepCandidate(m);
    this.tickRole = () => this.tickElection();
    this.logLine(`${this.id} became pre-candidate at term ${this.term}`);
  }

  private becomeCandidate(): void {
    assert(this.role !== "leader", "leader cannot become candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
    this.stepRole = (m) => this.stepCandidate(m);
    this.tickRole = () => this.tickElection();
    this.logLine(`${this.id} became candidate at term ${this.term}`);
  }

  private becomeLeader(): void {
    assert(this.role === "candidate", "only a candidate becomes leader");
    assert(this.recoveryUntil === null, `${this.id} becomes leader while recovering`);
    this.reset(this.term);
    this.leader = this.id;
    this.role = "leader";
    this.stepRole = (m) => this.stepLeader(m);
    this.tickRole = () => this.tickHeartbeat();
    const self = this.progress.get(this.id);
    assert(self !== undefined, "leader is not in its own configuration");
    self.maybeUpdate(this.log.stableIndex);
    self.becomeReplicate();
    self.recentActive = true;
    // No config change until everything before our term is applied.
    this.pendingConfIndex = this.log.lastIndex();
    this.witnessLeaderTicks = 0;
    this.logLine(`${this.id} became leader at term ${this.term}`);
    // The no-op commits our term's first entry, which unlocks commitment of older ones (Figure 8)
    // and ReadIndex.
    this.appendLeaderEntry("normal", EMPTY);
  }

  private reset(term: Term): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.leader = NO_NODE;
    this.electionElapsedTicks = 0;
    this.heartbeatElapsedTicks = 0;
    const timeoutTicks = electionTimeoutTicks(this.confState, this.id, this.config.electionTimeoutTicks); // W4
    this.randomizedElectionTimeoutTicks = timeoutTicks + this.config.random.nextInt(timeoutTicks);
    this.leadTransferee = NO_NODE;
    this.votes = new Map();
    this.pendingConfIndex = 0;
    this.replicationDirty.clear();
    this.catchUpProbes.clear();
    this.commitBroadcastPending = false;
    this.readOnly.reset();
    this.readsAwaitingCommit = [];
    this.resetProgress();
  }

  private resetProgress(): void {
    const next = this.log.lastIndex() + 1;
    const fresh = new Map<NodeId, Progress>();
    for (const id of allMembers(this.confState)) {
      fresh.set(id, new Progress(next, this.config.inflightMessagesMax));
    }
    this.progress = fresh;
  }

  private promotable(): boolean {
    return isVoter(this.confState, this.id) && this.log.pendingSnapshot === null;
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsedTicks++;
    if (this.promotable() && this.electionElapsedTicks >= this.randomizedElectionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      this.hup("preElection");
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsedTicks++;
    this.electionElapsedTicks++;
    const capTicks = witnessLeaderMaxTicks(this.config.electionTimeoutTicks); // W5
    if (this.isSelfWitness() && ++this.witnessLeaderTicks >= capTicks) {
      this.logLine(`${this.id} steps down: witness leadership cap of ${capTicks} ticks reached`);
      this.becomeFollower(this.term, NO_NODE);
      return;
    }
    if (this.electionElapsedTicks >= this.config.electionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      if (this.config.checkQuorum && !this.quorumActive()) {
        this.logLine(`${this.id} steps down at term ${this.term}: no quorum heard (CheckQuorum)`);
        this.becomeFollower(this.term, NO_NODE);
        return;
      }
      if (this.leadTransferee !== NO_NODE) {
        this.logLine(`${this.id} abandons leadership transfer to ${this.leadTransferee}`);
        this.leadTransferee = NO_NODE;
      }
    }
    if (this.heartbeatElapsedTicks >= this.config.heartbeatIntervalTicks) {
      this.heartbeatElapsedTicks = 0;
      this.broadcastHeartbeat(this.readOnly.lastContext());
    }
  }

  /** CheckQuorum: did a quorum talk to us since the last round? Resets the round. */
  private quorumActive(): boolean {
    const result = jointVoteResult(this.confState.voters, this.confState.votersOutgoing, (id) => {
      const pr = this.progress.get(id);
      return id === this.id || (pr?.recentActive ?? false);
    });
    for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
    return result === "won";
  }

  // ---------------------------------------------------------------- elections

  private hup(kind: CampaignKind): void {
    if (this.role === "leader") return;
    if (!this.promotable()) return;
    if (this.recoveryUntil !== null) {
      this.logLine(`${this.id} does not campaign (${kind}): recovering untilIndex=${this.recoveryUntil}`);
      return;
    }
    if (this.hasUnappliedConfChange()) {
      this.logLine(`${this.id} cannot campaign: a committed config change is not applied yet`);
      return;
    }
    // With PreVote off a "preElection" request is a plain election (the old expression passed
    // kind through unchanged, so preVote=false still ran pre-elections; found by testing/sim scripts).
    const effective: CampaignKind = kind === "preElection" && !this.config.preVote ? "election" : kind;
    this.logLine(`${this.id} starts ${effective === "preElection" ? "pre-election" : effective} at term ${this.term}`);
    this.startCampaign(effective);
  }

  private startCampaign(kind: CampaignKind): void {
    const preVote = kind === "preElection";
    if (preVote) this.becomePreCandidate();
    else this.becomeCandidate();
    const voteTerm = preVote ? this.term + 1 : this.term;
    this.votes.set(this.id, true);
    if (this.pollVotes() === "won") {
      if (preVote) this.startCampaign("election");
      else this.becomeLeader();
      return;
    }
    for (const id of allVoters(this.confState)) {
      if (id === this.id) continue;
      this.send({
        kind: "vote",
        to: id,
        term: voteTerm,
        preVote,
        transfer: kind === "transfer",
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
      });
    }
  }

  private pollVotes(): "won" | "lost" | "pending" {
    return jointVoteResult(this.confState.voters, this.confState.votersOutgoing, (id) => this.votes.get(id));
  }

  private hasUnappliedConfChange(): boolean {
    for (let i = this.log.applied + 1; i <= this.log.committed; i++) {
      if (this.log.entry(i)?.type === "config") return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- step functions

  private stepFollower(m: Message): void {
    switch (m.kind) {
      case "append":
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.onAppend(m);
        return;
      case "heartbeat":
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.onHeartbeat(m);
        return;
      case "snapshot":
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.onSnapshot(m);
        return;
      case "timeoutNow":
        this.logLine(`${this.id} received timeoutNow from ${m.from}`);
        this.hup("transfer");
        return;
      case "appendResponse":
      case "heartbeatResponse":
      case "voteResponse":
      case "vote":
        return; // a follower has nothing to do with these (stale or misrouted)
      default:
        assertNever(m, "message");
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.kind) {
      case "append":
      case "heartbeat":
      case "snapshot":
        // A leader exists in our term: stand down and handle it as a follower.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case "voteResponse":
        this.onVoteResponse(m);
        return;
      case "timeoutNow":
      case "appendResponse":
      case "heartbeatResponse":
      case "vote":
        return;
      default:
        assertNever(m, "message");
    }
  }

  private onVoteResponse(m: VoteResponseMessage): void {
    this.takeCommitHint(m); // a fact about the log, whichever round it answers
    if (m.preVote !== (this.role === "preCandidate")) return; // answer to another kind of round
    if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
    const result = this.pollVotes();
    if (result === "won") {
      if (this.role === "preCandidate") this.startCampaign("election");
      else this.becomeLeader();
    } else if (result === "lost") {
      this.becomeFollower(this.term, NO_NODE);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.kind) {
      case "appendResponse":
        this.onAppendResponse(m);
        return;
      case "heartbeatResponse":
        this.onHeartbeatResponse(m);
        return;
      case "append":
      case "heartbeat":
      case "snapshot":
        // Two leaders in one term is impossible; a message claiming it is a bug somewhere.
        assert(false, `leader ${this.id} got ${m.kind} from ${m.from} in its own term ${m.term}`);
        return;
      case "timeoutNow":
      case "voteResponse":
      case "vote":
        return;
      default:
        assertNever(m, "message");
    }
  }

  // ---------------------------------------------------------------- follower handlers

  private onAppend(m: AppendMessage): void {
    if (m.prevIndex < this.log.committed && !this.config.bugs.truncateBelowCommit) {
      // Everything up to our commit index already matches the leader.
      this.send({ kind: "appendResponse", to: m.from, index: this.log.committed, reject: false, rejectHintIndex: 0, rejectHintTerm: 0 });
      return;
    }
    const entries = entriesToStore(this.confState, this.id, m.entries, this.config.bugs.witnessMetadataOnlyLog); // W1
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, entries);
    if (lastNew !== undefined) {
      this.noteWitnessFloor(m);
      this.maybeEndRecovery(lastNew);
      this.send({ kind: "appendResponse", to: m.from, index: lastNew, reject: false, rejectHintIndex: 0, rejectHintTerm: 0 });
      return;
    }
    // Reject with a hint: the largest index whose term is <= prevTerm, so the leader can skip the
    // whole conflicting term in one round trip.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.logLine(`${this.id} rejects append from ${m.from} at ${m.prevTerm}/${m.prevIndex}, hint ${hintTerm}/${hintIndex}`);
    this.send({
      kind: "appendResponse",
      to: m.from,
      index: m.prevIndex,
      reject: true,
      rejectHintIndex: hintIndex,
      rejectHintTerm: hintTerm,
    });
  }

  private onHeartbeat(m: HeartbeatMessage): void {
    // The leader sends min(our match, its commit), so this never passes our matching prefix;
    // unless we lost data since it recorded that match (recovery): then only a verified append commits.
    if (this.recoveryUntil === null) this.log.commitTo(m.commit);
    this.noteWitnessFloor(m);
    this.send({ kind: "heartbeatResponse", to: m.from, readContext: m.readContext });
  }

  private onSnapshot(m: SnapshotMessage): void {
    const s = m.snapshot.metadata;
    // An empty node (no snapshot, not even the bootstrap one) restores any snapshot, index 0 too:
    // that is where it learns the configuration (churn issue 1).
    if (s.index <= this.log.committed && !this.log.isEmpty()) {
      this.send({ kind: "appendResponse", to: m.from, index: this.log.committed, reject: false, rejectHintIndex: 0, rejectHintTerm: 0 });
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit index.
      this.log.commitTo(s.index);
    } else {
      this.logLine(`${this.id} restores snapshot ${s.term}/${s.index}`);
      this.log.restore(m.snapshot);
      this.confState = s.confState;
      this.confIndex = s.index;
      this.witnessFloorReceived = floorAfterMembershipChange(); // W3: the membership may differ
      this.witnessFloorPending = null;
      this.confAtStart = s.confState;
      this.confHistory = [];
      this.resetProgress();
    }
    this.maybeEndRecovery(s.index);
    this.send({ kind: "appendResponse", to: m.from, index: s.index, reject: false, rejectHintIndex: 0, rejectHintTerm: 0 });
  }

  /**
   * Recovery ends once a leader of our current term (stepFollower handles nothing else) has
   * verified our log up to `verifiedIndex` (an append accepted by log matching, or its snapshot)
   * and that reaches the index we may have acknowledged: from here our log holds everything we
   * ever promised. The answer to this very message goes out without the flag, after the Ready
   * that carries these entries is durable (ready.ts step 1), so the leader may count it at once.
   */
  private maybeEndRecovery(verifiedIndex: Index): void {
    if (this.recoveryUntil === null || verifiedIndex < this.recoveryUntil) return;
    this.logLine(`${this.id} recovery_done untilIndex=${this.recoveryUntil} lastIndex=${this.log.lastIndex()}`);
    this.recoveryUntil = null;
  }

  // ---------------------------------------------------------------- leader handlers

  private onAppendResponse(m: AppendResponseMessage): void {
    const pr = this.progress.get(m.from);
    if (!pr) return; // removed member
    pr.recentActive = true;
    this.noteRecovering(pr, m);
    if (m.reject) {
      const hint = m.rejectHintTerm > 0 ? this.log.findConflictByTerm(m.rejectHintIndex, m.rejectHintTerm) : m.rejectHintIndex;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        if (pr.next - 1 === m.index && m.index <= this.log.startIndex()) {
          // The follower rejects even our log start and we cannot probe lower: it holds no
          // state there at all (an empty disk; raft_log.ts isEmpty). Only the snapshot helps,
          // even the bootstrap one at index 0, which carries the configuration; entries from
          // index 1 would leave it building its membership from nothing (churn issue 1: it then
          // counted itself the only voter and elected itself).
          this.sendSnapshot(m.from, pr);
          return;
        }
        this.replicationDirty.add(m.from);
      }
      return;
    }
    if (!pr.maybeUpdate(m.index)) {
      // Stale or duplicate: match never decreases. One exception: the answer to a probe at the
      // match point itself, which is how an empty follower acknowledges the index-0 snapshot
      // (match stays 0); replicate from there at once instead of after the next heartbeat.
      if (pr.state === "probe" && pr.probeSent && m.index === pr.match && m.index === pr.next - 1) {
        pr.becomeReplicate();
        this.replicationDirty.add(m.from);
      }
      return;
    }
    if (pr.state === "probe") pr.becomeReplicate();
    else pr.inflights.freeLE(m.index);
    this.commitByAcks();
    this.replicationDirty.add(m.from);
    if (!isVoter(this.confState, this.id)) this.maybeHandOverAfterRemoval(m.from, pr);
    else if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.logLine(`${this.id} sends timeoutNow to ${m.from}: caught up at ${pr.match}`);
      this.send({ kind: "timeoutNow", to: m.from });
    }
    this.maybeWitnessHandover(m.from, pr);
  }

  /**
   * Recovery (file header): each answer says whether its sender is recovering, and the flag is
   * taken before the answer's index is used: a recovering follower is not counted towards a
   * commit. Answers can arrive out of order, so the latest one may be stale (a flagged answer sent
   * before the follower's recovery ended, an unflagged one sent before it lost its data): the flag
   * decides the counting only, and a change of it alone never resets the follower's progress
   * (that reset, once per stale answer, restarted the whole in-flight window each time and grew
   * into a message storm: simulator seed 1278). The match we recorded is forgotten on evidence
   * that the follower's log no longer holds it: a recovering follower rejects our NEWEST append
   * (prevIndex next - 1, so not an old one's late answer) at or below that match, which in Raft
   * without data loss never happens. Then probe its log afresh from the index it rejected.
   */
  private noteRecovering(pr: Progress, m: AppendResponseMessage | HeartbeatResponseMessage): void {
    const recovering = m.recovering === true;
    if (recovering && m.kind === "appendResponse" && m.reject && m.index <= pr.match && m.index === pr.next - 1) {
      this.logLine(`${this.id} sees ${m.from} recovering without index ${m.index}: forgets its match ${pr.match}`);
      pr.forgetMatch(m.index);
    }
    if (recovering === pr.recovering) return;
    pr.recovering = recovering;
    if (recovering) {
      this.logLine(`${this.id} sees ${m.from} recovering: not counted towards commits`);
      return;
    }
    this.logLine(`${this.id} counts ${m.from} towards commits again at match ${pr.match}`);
    this.commitByAcks();
  }

  /** W5: a witness leader hands leadership to the first full voter that holds its whole log. */
  private maybeWitnessHandover(to: NodeId, pr: Progress): void {
    if (!handsOverTo(this.confState, this.id, to, pr.match, this.log.lastIndex())) return;
    this.logLine(`${this.id} (witness) hands over to ${to}: caught up at ${pr.match}`);
    this.send({ kind: "timeoutNow", to });
  }

  /** W3: the floor for `to` (0 without a witness in the configuration). */
  private witnessFloorFor(to: NodeId): Index {
    const leader = { id: this.id, committed: this.log.committed, stableIndex: this.log.stableIndex };
    return truncationFloorFor(this.confState, to, leader, this.progress);
  }

  /** W3: a member keeps the highest floor a current-term leader sent for its current membership. */
  private noteWitnessFloor(m: AppendMessage | HeartbeatMessage): void {
    const appliedIndex = m.witnessFloorAppliedIndex ?? 0;
    if (!floorStillBinds(appliedIndex, this.confIndex)) return;
    if (floorUsable(appliedIndex, this.log.applied)) {
      this.witnessFloorReceived = raisedFloor(this.witnessFloorReceived, m.witnessFloor);
    } else if (this.witnessFloorPending === null) {
      this.witnessFloorPending = { floor: m.witnessFloor, appliedIndex };
    }
  }

  /** W3: a pending floor becomes this member's once it applied up to the leader's index (floorUsable). */
  private promotePendingFloor(): void {
    const pending = this.witnessFloorPending;
    if (pending === null || !floorUsable(pending.appliedIndex, this.log.applied)) return;
    this.witnessFloorPending = null;
    if (floorStillBinds(pending.appliedIndex, this.confIndex)) {
      this.witnessFloorReceived = raisedFloor(this.witnessFloorReceived, pending.floor);
    }
  }

  private onHeartbeatResponse(m: HeartbeatResponseMessage): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    this.noteRecovering(pr, m);
    pr.probeSent = false;
    this.maybeWitnessHandover(m.from, pr);
    this.maybeHandOverAfterRemoval(m.from, pr);
    if (pr.state === "replicate" && pr.inflights.full() && pr.match === pr.matchAtLastHeartbeat) {
      // The window is full and nothing was acknowledged for a whole heartbeat interval: an
      // append or its answer was probably lost. Retransmit from the follower's match point
      // (duplicates are harmless) instead of pushing later entries it would reject.
      pr.becomeProbe();
    }
    pr.matchAtLastHeartbeat = pr.match;
    // An append even without entries: if earlier ones were lost, the follower's rejection of
    // this one sends us back to probing from its real match point. A recovering follower gets one
    // even when we think it holds our whole log: it may have lost what we recorded as its match,
    // and its rejection is the evidence noteRecovering waits for.
    if (pr.match < this.log.lastIndex() || m.recovering === true) this.catchUpProbes.add(m.from);
    if (m.readContext === 0) return;
    const confirmed = this.readOnly.recvAck(m.from, m.readContext, (acks) => {
      const r = jointVoteResult(this.confState.voters, this.confState.votersOutgoing, (id) => acks.has(id));
      return r === "won";
    });
    for (const rs of confirmed) this.readStates.push(rs);
  }

  /**
   * Self-durability (ready.ts): the leader's own acknowledgement of its entries. Its own progress
   * moves ONLY here, to the durable end of its log (log.stableIndex, raised by advance() from the
   * acknowledged Ready), so the leader counts towards a commit only what is on its disk, exactly
   * like a follower whose appendResponse leaves after its write. A loop that sends in parallel
   * with its own fsync would call stableTo + onSelfDurable when the write returns (etcd-io/raft's
   * MsgStorageAppendResp to self); nothing else here changes.
   */
  private onSelfDurable(): void {
    const self = this.progress.get(this.id);
    if (self) self.maybeUpdate(this.log.stableIndex);
    this.commitByAcks();
  }

  /**
   * A commit the acks (or the leader's own write) allow. Sent at once if so configured, and
   * otherwise in three cases:
   * - it commits a membership change: followers take a configuration once they learn it is
   *   committed, and a leader lost before they do leaves them in the old (often joint) one
   *   (witness seeds 168 and 187 lost liveness without this: a joint configuration that needed
   *   a recovering voter);
   * - a follower is recovering: it takes a commit index only from a verified append, never from
   *   a heartbeat (onHeartbeat), so it would not finish its recovery;
   * - the configuration has a witness: without this, witness seed 276 broke IW1 and seed 430
   *   lost liveness; clean on 1,000 witness seeds with it. Seed 276, traced: the witness had not
   *   yet learned that the removal of b (config 168) committed, so it still applied the joint
   *   configuration before it (157, with b), and took the leader's floor, computed over 168's
   *   full members (a, b2), whose applied index passes floorStillBinds; b lacked the entries it
   *   then truncated. b was out of every configuration that could still come into force, so
   *   nothing was lost, but IW1 as checked (over the witness's own configuration) failed; a
   *   floor now waits until the witness applied up to it (witness_rules floorUsable), which the
   *   same shape at 10,000 seeds needed too. Seed 430 (every surviving full member recovering
   *   from lost data, refusing votes) is not explained.
   */
  private commitByAcks(): void {
    const before = this.log.committed;
    if (!this.maybeCommit()) return;
    const configCommitted = this.pendingConfIndex > before && this.pendingConfIndex <= this.log.committed;
    const atOnce = this.config.sendCommitAtOnce || configCommitted || this.confState.witnesses.length > 0 || this.anyFollowerRecovering();
    if (atOnce) this.commitBroadcastPending = true;
  }

  private anyFollowerRecovering(): boolean {
    for (const [id, pr] of this.progress) if (id !== this.id && pr.recovering) return true;
    return false;
  }

  /**
   * Raft's commit rule: an index replicated on a quorum commits only if its entry is from the
   * current term (Figure 8). Older entries commit indirectly, with it.
   */
  private maybeCommit(): boolean {
    this.assertSelfDurable();
    const quorumIndex = jointCommittedIndex(this.confState.voters, this.confState.votersOutgoing, (id) => {
      const pr = this.progress.get(id);
      return pr === undefined || pr.recovering ? 0 : pr.match; // recovery: a recovering follower counts nothing
    });
    if (!Number.isFinite(quorumIndex) || quorumIndex <= this.log.committed) return false;
    const term = this.log.term(quorumIndex);
    if (term !== this.term) {
      if (!this.config.bugs.commitOldTermByCounting) return false;
      this.logLine(`${this.id} BUG commits old-term entry ${term ?? 0}/${quorumIndex} by counting`);
    }
    this.log.commitTo(quorumIndex);
    if (term === this.term) this.releaseReadsAwaitingCommit();
    return true;
  }

  /**
   * Self-durability, enforced (ready.ts): in the quorum the leader counts itself only up to its
   * durable log, so every commit is held durably by a quorum whose leader vote is a durable one.
   * A self-ack ahead of the disk would let a quorum of "leader + followers that got the entries
   * early" commit what a crash of the leader can still take back.
   */
  private assertSelfDurable(): void {
    const self = this.progress.get(this.id);
    if (!self) return; // a leader removed from the configuration counts nothing
    assert(
      self.match <= this.log.stableIndex,
      `leader ${this.id} counts itself at ${self.match} towards the commit but is durable only up to ${this.log.stableIndex}`,
    );
  }

  private releaseReadsAwaitingCommit(): void {
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const r of waiting) this.registerRead(r.context);
  }

  private registerRead(context: number): void {
    if (allVoters(this.confState).length === 1 && isVoter(this.confState, this.id)) {
      this.readStates.push({ index: this.log.committed, context });
      return;
    }
    this.readOnly.add(context, this.log.committed, this.id);
    this.broadcastHeartbeat(context);
  }

  // ---------------------------------------------------------------- sending

  private refuseProposal(): ProposeResult | null {
    if (this.role !== "leader") return this.refused("notLeader", "proposals go to the leader");
    if (!isVoter(this.confState, this.id)) {
      return this.refused("transferring", `${this.id} was removed from the configuration and hands leadership over`);
    }
    const witnessRefusal = proposalRefusal(this.confState, this.id); // W5
    if (witnessRefusal) return this.refused("witness", witnessRefusal);
    if (this.leadTransferee !== NO_NODE) {
      return this.refused("transferring", `leadership is moving to ${this.leadTransferee}`);
    }
    if (this.log.lastIndex() - this.log.committed >= this.config.uncommittedEntriesMax) {
      return this.refused("tooManyUncommitted", `${this.config.uncommittedEntriesMax} entries await commit`);
    }
    return null;
  }

  private refused(reason: Refusal, detail: string): { ok: false; reason: Refusal; leader: NodeId; detail: string } {
    return { ok: false, reason, leader: this.leader, detail };
  }

  private appendLeaderEntry(type: Entry["type"], data: Uint8Array): ProposeResult {
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.appendNew([entry]);
    if (this.config.bugs.commitBeforeSelfDurable) {
      // The deliberate bug (BugSwitches.commitBeforeSelfDurable): the leader votes for its entry
      // before any Ready carried it to disk (assertSelfDurable is what must stop it).
      this.progress.get(this.id)?.maybeUpdate(entry.index);
      if (this.maybeCommit()) this.commitBroadcastPending = true;
    }
    for (const id of this.progress.keys()) if (id !== this.id) this.replicationDirty.add(id);
    return { ok: true, index: entry.index, term: entry.term };
  }

  /** Sends everything outstanding in as few messages as the limits allow (one batch per Ready). */
  private flushReplication(): void {
    if (this.role === "leader") {
      for (const id of this.progress.keys()) {
        if (id !== this.id) this.flushReplicationTo(id);
      }
    }
    this.replicationDirty.clear();
    this.catchUpProbes.clear();
    this.commitBroadcastPending = false;
  }

  private flushReplicationTo(id: NodeId): void {
    const forced = this.commitBroadcastPending || this.catchUpProbes.has(id);
    if (forced || this.replicationDirty.has(id)) {
      // A forced send goes out even without entries: it carries the new commit index, or
      // provokes the rejection that restarts probing after a lost message.
      this.maybeSendAppend(id, forced);
      for (let sent = 0; sent < this.config.inflightMessagesMax; sent++) {
        if (!this.maybeSendAppend(id, false)) break;
      }
    }
  }

  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    assert(pr !== undefined, `no progress for ${to}`);
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries =
      prevTerm === undefined
        ? undefined
        : this.log.slice(pr.next, this.log.lastIndex(), this.config.entriesPerMessageMax, this.config.bytesPerMessageMax);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    const commit = this.log.committed;
    const witnessFloorAppliedIndex = this.log.applied; // the membership witnessFloorFor counts (W3)
    this.send({
      kind: "append",
      to,
      prevIndex,
      prevTerm,
      entries,
      commit,
      witnessFloor: this.witnessFloorFor(to),
      witnessFloorAppliedIndex,
    });
    const last = entries[entries.length - 1];
    pr.sentEntries(last ? last.index : prevIndex, entries.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!sendsSnapshots(this.confState, this.id)) {
      // W5: the follower must be caught up by a full voter.
      this.logLine(`${this.id} cannot catch up ${to}: it needs entries below the witness's log start`);
      return false;
    }
    if (this.log.startIndex() < this.log.snapshotIndex() && isWitness(this.confState, to)) {
      // W1/W3 (churn issue 4): a witness gets no state image (it applies nothing) but a marker at
      // our retained log start, then the entries above it, so it holds every entry above the floor.
      const start = this.log.startIndex();
      const term = this.log.term(start);
      assert(term !== undefined, `no term at the log start ${start}`);
      const marker: Snapshot = { metadata: { index: start, term, confState: this.confStateAt(start) }, data: EMPTY };
      this.logLine(`${this.id} sends marker ${term}/${start} to witness ${to}`);
      this.send({ kind: "snapshot", to, snapshot: marker });
      pr.sentSnapshot(start);
      return true;
    }
    const snapshot = this.log.snapshot;
    assert(snapshot !== null, `follower ${to} needs entries before the log start but no snapshot exists`);
    this.logLine(`${this.id} sends snapshot ${snapshot.metadata.term}/${snapshot.metadata.index} to ${to}`);
    this.send({ kind: "snapshot", to, snapshot });
    pr.sentSnapshot(snapshot.metadata.index);
    return true;
  }

  private broadcastHeartbeat(readContext: number): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const commit = Math.min(pr.match, this.log.committed);
      const witnessFloorAppliedIndex = this.log.applied;
      this.send({ kind: "heartbeat", to: id, commit, readContext, witnessFloor: this.witnessFloorFor(id), witnessFloorAppliedIndex });
    }
  }

  private send(m: DistributiveOmit<Message, "from" | "term"> & { term?: Term }): void {
    // Every caller passes a fresh object literal, so it is completed in place: a spread copy per
    // message was the single hottest line of the simulator and of the leader's send path.
    const full = m as Message & { from: NodeId; term: Term; recovering?: boolean };
    full.from = this.id;
    if (full.term === undefined) full.term = this.term;
    if (this.recoveryUntil !== null && (m.kind === "appendResponse" || m.kind === "heartbeatResponse")) full.recovering = true;
    this.msgs.push(full);
  }

  // ---------------------------------------------------------------- configuration

  private applyConfEntry(e: Entry): void {
    const wasWitness = this.isSelfWitness();
    const cc = decodeConfChange(e.data);
    const result = applyConfChange(this.confState, cc);
    if (!result.ok) {
      // Deterministic on every replica, so skipping it keeps them identical.
      this.logLine(`${this.id} skips config entry ${e.index}: ${result.reason}`);
      return;
    }
    this.confState = result.confState;
    this.confIndex = e.index;
    this.confHistory.push({ index: e.index, confState: result.confState });
    this.witnessFloorReceived = floorAfterMembershipChange(); // W3
    this.witnessFloorPending = null;
    this.logLine(`${this.id} applies config ${e.index}: ${describeConfState(this.confState)}`);
    this.syncProgressWithConfig();
    if (this.role === "preCandidate" || this.role === "candidate") {
      // Only a commit hint (takeCommitHint) makes a campaigning member apply a configuration. The
      // round's votes were asked for under the old one, and we may not be a voter of the new one
      // (a removed member campaigning in the joint configuration): stand down, and campaign
      // afresh, if still a voter, at the next election timeout.
      this.logLine(`${this.id} stands down from its ${this.role} round: config ${e.index} applied`);
      this.becomeFollower(this.term, NO_NODE);
      return;
    }
    if (this.role !== "leader") return;
    if (!isVoter(this.confState, this.id)) {
      this.onRemovedWhileLeading(wasWitness);
      return;
    }
    if (this.leadTransferee !== NO_NODE && !isVoter(this.confState, this.leadTransferee)) {
      this.leadTransferee = NO_NODE;
    }
    if (this.maybeCommit()) this.commitBroadcastPending = true;
    this.maybeAutoLeave();
  }

  /**
   * The leader applied a configuration that no longer has it as a voter (removed, or demoted to
   * learner). Stepping down at once, as this core did, left the remaining members depending on
   * ONE broadcast of the commit that removed it: if that was lost they stayed in the joint
   * configuration, whose outgoing half still counts the removed member, and once it is shut down
   * (and another member is lost) no leader can ever be elected (testing/sim/README.md, churn issue
   * 3; witness seed 10). etcd-io/raft keeps a removed leader leading (StepDownOnRemoval is off by
   * default) and leaves the rest to the application; here the core finishes the job itself: the
   * removed leader keeps leading, counting only the remaining voters towards commits and
   * CheckQuorum, accepts no proposal (refuseProposal), keeps replicating and heartbeating the
   * commit, and hands leadership to the first remaining full voter that holds its whole log
   * (TimeoutNow, retried on every answer: maybeHandOverAfterRemoval). That voter's election ends
   * the removed leader's term; by then the voter holds the removal, and its own no-op commits it
   * in its term if it had not yet learned the commit. A removed WITNESS leader still steps down at
   * once: the new configuration no longer flags it a witness, so the core would lead it as a full
   * voter (snapshots, no cap) with a log it never applied.
   */
  private onRemovedWhileLeading(wasWitness: boolean): void {
    if (wasWitness) {
      this.logLine(`${this.id} (witness) steps down: removed from the configuration`);
      this.becomeFollower(this.term, NO_NODE);
      return;
    }
    this.logLine(`${this.id} removed from the configuration: leads on until a remaining voter takes over`);
    if (this.leadTransferee !== NO_NODE && !isVoter(this.confState, this.leadTransferee)) this.leadTransferee = NO_NODE;
    this.commitBroadcastPending = true;
    for (const [id, pr] of this.progress) this.maybeHandOverAfterRemoval(id, pr);
  }

  /** A removed leader (onRemovedWhileLeading) sends TimeoutNow to a remaining full voter that holds its whole log. */
  private maybeHandOverAfterRemoval(to: NodeId, pr: Progress): void {
    if (this.role !== "leader" || isVoter(this.confState, this.id)) return;
    if (!isVoter(this.confState, to) || isWitness(this.confState, to) || pr.match !== this.log.lastIndex()) return;
    if (this.leadTransferee !== NO_NODE && this.leadTransferee !== to) return;
    this.leadTransferee = to;
    this.logLine(`${this.id} (removed) hands over to ${to}: caught up at ${pr.match}`);
    this.send({ kind: "timeoutNow", to });
  }

  /**
   * Leaves an auto-leave joint configuration once everything before it is applied. Checked on
   * every advance, not only when the joint entry is applied: a leader elected after that (the
   * proposer lost, W6) must still finish the change (etcd-io/raft does the same in advance()).
   * A witness leader proposes no config change (W5); the full voter it hands over to leaves.
   */
  private maybeAutoLeave(): void {
    if (this.role !== "leader" || !leavesJointConfig(this.confState, this.id)) return;
    if (!isJoint(this.confState) || !this.confState.autoLeave || this.pendingConfIndex > this.log.applied) return;
    const leave = this.appendLeaderEntry("config", encodeConfChange({ kind: "leaveJoint" }));
    if (leave.ok) this.pendingConfIndex = leave.index;
  }

  private syncProgressWithConfig(): void {
    const members = new Set(allMembers(this.confState));
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const id of members) {
      if (!this.progress.has(id)) {
        const pr = new Progress(this.log.lastIndex() + 1, this.config.inflightMessagesMax);
        if (id === this.id) pr.maybeUpdate(this.log.stableIndex);
        this.progress.set(id, pr);
        // Contact a new member at once (an empty append starts probing), not at the next proposal.
        if (id !== this.id) this.catchUpProbes.add(id);
      }
    }
  }

  /**
   * A log loaded with entries kept below its snapshot (churn issue 4, PersistedState.logStart):
   * rebuild the membership history between the log start and the snapshot from the config entries
   * there, on the membership stored with the start (the marker a new witness gets needs it).
   */
  private replayRetainedConfChanges(): void {
    let cs = this.confAtStart;
    for (let i = this.log.startIndex() + 1; i <= this.log.snapshotIndex(); i++) {
      const e = this.log.entry(i);
      if (e?.type !== "config") continue;
      const result = applyConfChange(cs, decodeConfChange(e.data));
      if (!result.ok) continue;
      cs = result.confState;
      this.confHistory.push({ index: i, confState: cs });
    }
  }

  /**
   * What storage keeps the log from when it records this core's latest snapshot
   * (RaftStorage.saveSnapshotAndCompact's logStart): null, as plain Raft (every entry at or below
   * the snapshot goes), unless this member keeps its log below the snapshot for a witness (W1/W3,
   * churn issue 4); then its log start: index, term and membership there.
   */
  storageLogStart(): SnapshotMetadata | null {
    const start = this.log.startIndex();
    if (start >= this.log.snapshotIndex()) return null;
    return { index: start, term: this.log.startTermOf(), confState: this.confStateAt(start) };
  }

  /** On restart with appliedIndex beyond the snapshot, re-apply config entries up to it. */
  private replayAppliedConfChanges(): void {
    for (let i = this.log.snapshotIndex() + 1; i <= this.log.applied; i++) {
      const e = this.log.entry(i);
      if (e?.type !== "config") continue;
      const result = applyConfChange(this.confState, decodeConfChange(e.data));
      if (result.ok) {
        this.confState = result.confState;
        this.confIndex = i;
        this.confHistory.push({ index: i, confState: result.confState });
      }
    }
  }

  // ---------------------------------------------------------------- helpers

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** The hard state a Ready hands over; the skipPersistVote bug drops the vote from it. */
  private persistableHardState(hs: HardState): HardState {
    return this.config.bugs.skipPersistVote ? { ...hs, vote: NO_NODE } : hs;
  }

  private softState(): SoftState {
    return { leader: this.leader, role: this.role, term: this.term };
  }

  private assertNoOutstandingReady(): void {
    assert(this.outstanding === null, "core input while a Ready is outstanding; call advance() first");
  }

  private logLine(line: string): void {
    this.config.logger?.(line);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role && a.term === b.term;
}
