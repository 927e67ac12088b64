// Command interpreter for the data-driven Raft scripts (etcd-io/raft's rafttest/interaction_env*).
// It drives real RaftCore instances through the production Ready loop (server/node/ready_loop.ts),
// one Ready per process-ready; messages wait in one in-memory queue until a command delivers or
// drops them, so a script fixes the exact schedule. Each node persists what its Readys hand over
// on a simulated disk (SimStorage over SimDisk: hard state, snapshot, entries with suffix
// truncation) and restarts from that alone, so crash/restart shows exactly what durability buys.
// A safety checker watches every step and prints "SAFETY VIOLATION" lines (two leaders in one
// term; an index committed with two different terms), so a script of a deliberate bug shows the
// damage in its expected output.
//
// Golden output alone proves little: a rewrite (REWRITE=1) accepts whatever the code does now.
// So every script also ASSERTS the property it exists for, with assert-* commands (below) that
// fail the script whatever its expected output says, and the runner checks properties after
// every step, silently (they print nothing, so golden outputs are unchanged): election safety
// and applied-term agreement (the printed checks), committed entries agree across nodes, a
// node's term never decreases, a new leader holds every entry committed in an earlier term, a
// ReadState never reads below what was committed when the read was asked, a witness never sends
// a snapshot, and a configuration change never leaves two disjoint quorums of the configuration
// before and after it (joint consensus). A failed assertion or property throws
// ScriptAssertionError, except in *_bug scripts (EnvOptions.expectViolations), whose violations
// are recorded for assert-safety-violated. EnvOptions.mutation runs a script against a
// deliberately changed behaviour (scenarios.test.ts shows each script's assertions catch one).

import { AssertionError } from "../../server/core/assert.ts";
import {
  applyConfChange,
  decodeConfChange,
  describeConfState,
  testOnlyBugSkipJointConsensus,
  type ConfChange,
  type ConfChangeSingle,
} from "../../server/core/conf_change.ts";
import { makeRaftConfig, NO_BUGS, type BugSwitches } from "../../server/core/config.ts";
import { describeMessage, type Message } from "../../server/core/messages.ts";
import { SeededRandom, type Random } from "../../server/core/random.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { Ready } from "../../server/core/ready.ts";
import {
  EMPTY_PERSISTED_STATE,
  type ConfState,
  type Entry,
  type NodeId,
  type PersistedState,
  type Snapshot,
} from "../../server/core/types.ts";
import { ReadyLoop } from "../../server/node/ready_loop.ts";
import { disjointQuorums } from "./checkers.ts";
import type { ArgValue, TestCommand } from "./datadriven.ts";
import { SimDisk } from "./sim_disk.ts";
import { SimStorage } from "./sim_storage.ts";

interface NodeOptions {
  electionTicks: number;
  heartbeatTicks: number;
  maxEntries: number;
  preVote: boolean;
  checkQuorum: boolean;
  bugs: BugSwitches;
}
const DEFAULTS: NodeOptions = { electionTicks: 10, heartbeatTicks: 1, maxEntries: 512, preVote: false, checkQuorum: false, bugs: NO_BUGS };

/** A script's assertion or a checked property failed (never a golden-output mismatch). */
export class ScriptAssertionError extends Error {
  override readonly name = "ScriptAssertionError";
}

/**
 * A deliberate change of behaviour (test-only) that leaves every output well-formed, for showing
 * that a script's assertions catch it (scenarios.test.ts). Each field is one mutation.
 */
export interface Mutation {
  /** Bug switches turned on for every node (server/core/config.ts), or "none" to turn off a script's own. */
  readonly bugs?: readonly (keyof BugSwitches)[] | "none";
  /** conf_change.ts testOnlyBugSkipJointConsensus: enterJoint switches straight to the new voters. */
  readonly skipJointConsensus?: boolean;
  /** add-nodes settings forced over the script's own (e.g. CheckQuorum or PreVote off). */
  readonly overrides?: Partial<Pick<NodeOptions, "preVote" | "checkQuorum">>;
  /** A leader answers read-index at once from its commit index, without the quorum round (a lease read with no lease). */
  readonly staleReads?: boolean;
  /** The application ignores a snapshot's image on restore (keeps its own state). */
  readonly ignoreSnapshotImage?: boolean;
  /** Vote requests lose their transfer mark on the wire (a TimeoutNow campaign looks disruptive). */
  readonly stripTransferFlag?: boolean;
}

export interface EnvOptions {
  /** A *_bug script: violations are recorded (and printed, as before), never thrown. */
  readonly expectViolations?: boolean;
  readonly mutation?: Mutation;
}

/** Records the election timeout the core drew, so tick-election can tick exactly that long. */
class TrackedRandom implements Random {
  constructor(
    private readonly inner: SeededRandom,
    private readonly electionTicks: number,
    public timeout = electionTicks,
  ) {}
  nextInt(max: number): number {
    const v = this.inner.nextInt(max);
    // Only reset() draws with these bounds (a witness draws from twice the range, rule W4).
    if (max === this.electionTicks || max === 2 * this.electionTicks) this.timeout = max + v;
    return v;
  }
  nextFloat = (): number => this.inner.nextFloat();
}

interface SimNode {
  readonly id: NodeId;
  readonly options: NodeOptions;
  readonly random: TrackedRandom;
  core: RaftCore | null; // null while crashed
  /** The Ready loop of the running core (null while crashed). */
  loop: ReadyLoop | null;
  readonly disk: SimDisk;
  /** The disk as the running process sees it (every save synced but a commit-index-only one). */
  storage: SimStorage;
  /** The toy state machine: data of applied normal entries (restored from snapshot data). */
  applied: string[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class InteractionEnv {
  private readonly nodes = new Map<NodeId, SimNode>();
  private queue: Message[] = [];
  private readonly cuts = new Set<string>(); // "from>to": dropped at delivery
  private out: string[] = [];
  private indent = "";
  private rootRandom = new SeededRandom(1);
  private defaults = DEFAULTS;
  // Safety checker state.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committedTerm = new Map<number, { term: number; by: NodeId }>();
  private readonly violations = new Set<string>();
  // Silent property state (see the header): committed index -> term (and the leader term that
  // committed it), per-node commit watermark and highest term, ReadStates and read floors.
  private readonly committedAt = new Map<number, { term: number; by: NodeId }>();
  private readonly commitTermOf = new Map<number, number>();
  private readonly commitSeen = new Map<NodeId, number>();
  private readonly termSeen = new Map<NodeId, number>();
  private readonly ledTerm = new Map<NodeId, number>();
  private termMax = 0;
  private readonly readStates = new Map<string, number>();
  private readonly readFloor = new Map<string, number>();
  private readonly snapshotsRestored = new Map<NodeId, number[]>();
  private readonly confChained = new Map<NodeId, { core: ConfState; after: ConfState }>();
  /** Every configuration each node applied from a config entry, in order. */
  private readonly confsApplied = new Map<NodeId, ConfState[]>();
  private readonly propertyViolations: string[] = [];
  private lastResult = "none";
  private line = 0;

  constructor(private readonly envOptions: EnvOptions = {}) {}

  handle(cmd: TestCommand): string {
    this.out = [];
    this.indent = "";
    this.line = cmd.line;
    if (this.envOptions.mutation?.skipJointConsensus) testOnlyBugSkipJointConsensus(() => this.dispatch(cmd));
    else this.dispatch(cmd);
    this.check();
    return this.out.join("\n");
  }

  /** Every violation recorded so far (printed safety violations and silent properties). */
  recordedViolations(): readonly string[] {
    return [...this.violations, ...this.propertyViolations];
  }

  private dispatch(cmd: TestCommand): void {
    const p = cmd.positional;
    const id = p[0] ?? ""; // the node most commands act on; node() rejects ""
    const result = (r: { ok: true; index?: number; term?: number } | { ok: false; reason: string; detail: string }): void => {
      this.lastResult = r.ok ? "ok" : `refused=${r.reason}`;
      this.print(!r.ok ? `refused: ${r.reason} (${r.detail})` : r.index ? `proposed at ${r.term}/${r.index}` : "ok");
    };
    switch (cmd.name) {
      // add-nodes voters=(a b c) [learners=(d)] [witnesses=(c)] [index=1] [pre-vote=true] [check-quorum=true]
      //   [election-ticks=10] [heartbeat-ticks=1] [max-entries=1] [seed=7] [bugs=(commitOldTermByCounting)]
      // Bootstraps every listed node from a snapshot at `index` holding the configuration.
      // index>0 makes a node added later (add-node) need a snapshot, as in etcd's scripts.
      case "add-nodes":
        return this.addNodes(cmd);
      // add-node d: a fresh node with an empty disk; it learns the configuration from a snapshot.
      case "add-node":
        return this.addNode(id, EMPTY_PERSISTED_STATE);
      // campaign a: the node starts an election (a pre-election when pre-vote is on).
      case "campaign":
        return this.core(id).campaign();
      // tick a [n]: n ticks (default 1).
      case "tick":
        return this.tick(id, Number(p[1] ?? "1"), false);
      // tick-heartbeat a: one heartbeat interval.
      case "tick-heartbeat":
        return this.tick(id, this.node(id).options.heartbeatTicks, false);
      // tick-election a: a leader ticks one election timeout (one CheckQuorum round); any other
      // node ticks its current randomized timeout, stopping early when its role changes.
      case "tick-election":
        return this.tickElection(id);
      // propose a data: prints the index/term the leader assigned, or why it refused.
      case "propose":
        return result(this.core(id).propose(enc.encode(p[1] ?? "")));
      // propose-conf-change a add-learner=d            (a simple learner change)
      // propose-conf-change a enter-joint add-voter=d remove=c auto-leave=true
      // propose-conf-change a leave-joint
      case "propose-conf-change":
        return result(this.core(id).proposeConfChange(parseConfChange(cmd)));
      // transfer-leader a b: leader a hands leadership to b.
      case "transfer-leader":
        return result(this.core(id).transferLeadership(p[1] ?? ""));
      // read-index a ctx=7: registers a linearizable read; its ReadState shows in a later Ready.
      case "read-index":
        return this.readIndex(id, Number(str(cmd.args.get("ctx") ?? "1")), result);
      // process-ready [a b ...]: take, print, persist, apply and advance one Ready per node.
      case "process-ready":
        for (const id of this.ids(p)) this.processReady(id, true);
        return;
      // deliver-msgs [from=a|(a b)] [to=b|(b c)] [kind=append] [drop=true]: delivers (or drops)
      // every queued message that matches, in queue order; cut links and down nodes drop them.
      case "deliver-msgs":
        return this.deliver(cmd);
      // stabilize [a b ...]: process-ready and deliver among these nodes until nothing moves.
      case "stabilize":
        return this.stabilize(this.ids(p));
      // cut a b: both directions. cut-one-way from=(b c) to=a. isolate a. heal.
      case "cut":
        return this.cut([id], [p[1] ?? ""], true);
      case "cut-one-way":
        return this.cut(list(cmd.args.get("from")), list(cmd.args.get("to")), false);
      case "isolate":
        return this.cut([id], [...this.nodes.keys()], true);
      case "heal":
        this.cuts.clear();
        return;
      // crash a: the process dies; only what process-ready persisted survives. Messages queued
      // for it, and any sent to it while it is down, are lost.
      case "crash": {
        const n = this.node(id);
        n.core = null;
        n.loop = null;
        n.storage.close();
        this.print(`${id} crashed`);
        for (const m of this.queue.filter((q) => q.to === id)) this.print(`dropped (${id} is down): ${this.describe(m)}`);
        this.queue = this.queue.filter((q) => q.to !== id);
        return;
      }
      // restart a: a new core built from a's persisted state (its application restarts at 0).
      case "restart":
        return this.restart(id);
      // compact-witness w: the witness truncates its log up to the floor its leader sent (W3)
      // and persists the metadata-only marker.
      case "compact-witness": {
        const n = this.node(id);
        const marker = this.core(n.id).compactWitnessLog();
        if (!marker) return this.print(`${n.id} has nothing to truncate`);
        n.storage.saveSnapshotAndCompact(marker, null);
        return this.print(
          `${n.id} truncated its log through ${marker.metadata.term}/${marker.metadata.index} (marker, ${marker.data.length} bytes of state)`,
        );
      }
      // compact a: the application snapshots its applied state; the log before it is dropped.
      case "compact": {
        const n = this.node(id);
        const snap = this.core(n.id).createSnapshot(enc.encode(JSON.stringify(n.applied)));
        n.storage.saveSnapshotAndCompact(snap, this.core(n.id).storageLogStart());
        return this.print(`${n.id} compacted the log through ${snap.metadata.term}/${snap.metadata.index}`);
      }
      // status a: one node in detail, with the leader's view of each follower's progress.
      case "status":
        return this.status(id);
      // raft-state: role, term, leader, commit and last index of every node.
      case "raft-state":
        for (const n of this.nodes.values()) this.print(this.stateLine(n));
        return;
      // raft-log a: a's log (term/index type data), in memory or, if it is down, on disk.
      case "raft-log":
        return this.raftLog(id);
      // applied a: the data a's state machine has applied.
      case "applied":
        return this.print(`${id} applied [${this.node(id).applied.join(" ")}]`);
      default:
        if (cmd.name.startsWith("assert-")) return this.assertion(cmd);
        throw new Error(`unknown command ${cmd.name}`);
    }
  }

  private addNodes(cmd: TestCommand): void {
    const a = cmd.args;
    const bool = (k: string, d: boolean): boolean => (a.has(k) ? str(a.get(k)) === "true" : d);
    const num = (k: string, d: number): number => (a.has(k) ? Number(str(a.get(k))) : d);
    const D = DEFAULTS;
    const bugs: Record<string, boolean> = { ...NO_BUGS };
    for (const b of list(a.get("bugs"))) {
      if (!(b in bugs)) throw new Error(`unknown bug switch ${b}`);
      bugs[b] = true;
    }
    const mutation = this.envOptions.mutation;
    if (mutation?.bugs === "none") Object.assign(bugs, NO_BUGS);
    else for (const b of mutation?.bugs ?? []) bugs[b] = true;
    this.rootRandom = new SeededRandom(num("seed", 1));
    this.defaults = {
      ...{ electionTicks: num("election-ticks", D.electionTicks), heartbeatTicks: num("heartbeat-ticks", D.heartbeatTicks) },
      ...{
        preVote: bool("pre-vote", D.preVote),
        checkQuorum: bool("check-quorum", D.checkQuorum),
        maxEntries: num("max-entries", D.maxEntries),
      },
      bugs: bugs as unknown as BugSwitches,
      ...mutation?.overrides,
    };
    const voters = list(a.get("voters"));
    const learners = list(a.get("learners"));
    const witnesses = list(a.get("witnesses")); // members flagged witness (DESIGN.md §4)
    const index = num("index", 0);
    const confState = { voters, votersOutgoing: [], learners, learnersNext: [], witnesses, autoLeave: false };
    const snapshot: Snapshot = { metadata: { index, term: index > 0 ? 1 : 0, confState }, data: enc.encode("[]") };
    for (const id of [...voters, ...learners]) {
      this.addNode(id, { hardState: { term: 0, vote: "", commit: index }, snapshot, entries: [] });
    }
  }

  private addNode(id: NodeId, persisted: PersistedState): void {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`);
    const options = this.defaults;
    const random = new TrackedRandom(this.rootRandom.fork(), options.electionTicks);
    const disk = new SimDisk(persisted);
    const n: SimNode = { id, options, random, core: null, loop: null, disk, storage: new SimStorage(id, disk), applied: [] };
    this.nodes.set(id, n);
    this.startCore(n);
  }

  private restart(id: NodeId): void {
    const n = this.node(id);
    if (n.core) throw new Error(`${id} is running; crash it first`);
    this.startCore(n);
    const s = this.core(id).status();
    this.print(`${id} restarted: term=${s.term} vote=${s.vote || "none"} commit=${s.commit} last=${s.lastTerm}/${s.lastIndex}`);
  }

  private startCore(n: SimNode): void {
    const o = n.options;
    const config = makeRaftConfig({
      ...{ id: n.id, random: n.random, preVote: o.preVote, checkQuorum: o.checkQuorum, bugs: o.bugs },
      ...{ electionTimeoutTicks: o.electionTicks, heartbeatIntervalTicks: o.heartbeatTicks, entriesPerMessageMax: o.maxEntries },
      logger: (line) => this.print(line),
    });
    // A new process opens the disk afresh; the application rebuilds from the snapshot and the
    // core re-hands every later committed entry.
    n.storage = new SimStorage(n.id, n.disk);
    const persisted = n.storage.load();
    n.applied = persisted.snapshot ? parseApplied(persisted.snapshot.data) : [];
    const core = new RaftCore(config, persisted);
    n.core = core;
    n.loop = new ReadyLoop({
      core,
      storage: n.storage,
      transport: { send: (messages) => this.enqueue(messages) },
      applier: {
        restoreSnapshot: (snapshot) => {
          this.snapshotsRestored.set(n.id, [...(this.snapshotsRestored.get(n.id) ?? []), snapshot.metadata.index]);
          if (!this.envOptions.mutation?.ignoreSnapshotImage) n.applied = parseApplied(snapshot.data);
        },
        applyEntry: (e) => this.applyEntry(n, e),
        afterAdvance: () => {}, // compaction and witness truncation are script commands
      },
      readiesPerPassMax: 1,
      onReady: (rd) => {
        this.printReady(rd);
        for (const r of rd.readStates) this.noteReadState(n.id, r.context, r.index);
      },
    });
  }

  private tick(id: NodeId, n: number, stopOnRoleChange: boolean): void {
    const core = this.core(id);
    const role = core.status().role;
    for (let i = 0; i < n; i++) {
      core.tick();
      this.check();
      if (stopOnRoleChange && core.status().role !== role) return;
    }
  }

  private tickElection(id: NodeId): void {
    const n = this.node(id);
    const leader = this.core(id).status().role === "leader";
    this.tick(id, leader ? n.options.electionTicks : n.random.timeout, !leader);
  }

  private processReady(id: NodeId, verbose: boolean): boolean {
    const n = this.node(id);
    if (!n.core || !n.loop) {
      if (verbose) this.print(`> ${id} is down`);
      return false;
    }
    if (!n.core.hasReady()) {
      if (verbose) this.print(`> ${id} has no Ready`);
      return false;
    }
    this.print(`> ${id} handling Ready`);
    this.indent = "  ";
    n.loop.processOne(); // prints the Ready (onReady), persists, sends, applies, advances
    this.indent = "";
    this.check();
    return true;
  }

  private enqueue(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.kind === "snapshot" && this.nodes.get(m.from)?.core?.status().confState.witnesses.includes(m.from)) {
        this.property(`witness ${m.from} sends a snapshot to ${m.to} (IW6)`);
      }
      // A message to a process that is down is lost, not delivered after it restarts.
      if (this.nodes.get(m.to)?.core) this.queue.push(m);
      else this.print(`dropped (${m.to} is down): ${this.describe(m)}`);
    }
  }

  private printReady(rd: Ready): void {
    const { softState: s, hardState: h, snapshot } = rd;
    if (s) this.print(`State: ${s.role} term=${s.term} leader=${s.leader || "none"}`);
    if (h) this.print(`HardState term=${h.term} vote=${h.vote || "none"} commit=${h.commit}`);
    const m = snapshot?.metadata;
    if (m) this.print(`Snapshot ${m.term}/${m.index} ${describeConfState(m.confState)}`);
    const section = (title: string, lines: string[]): void => {
      if (lines.length === 0) return;
      this.print(`${title}:`);
      for (const l of lines) this.print(l);
    };
    section("Entries", rd.entries.map(describeEntry));
    section("CommittedEntries", rd.committedEntries.map(describeEntry));
    section(
      "Messages",
      rd.messages.map((m) => this.describe(m)),
    );
    section(
      "ReadStates",
      rd.readStates.map((r) => `ctx=${r.context} index=${r.index}`),
    );
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.type === "config") this.checkConfChange(n, e);
    // A witness has no state machine (W2): the core only moves its applied index.
    const witness = n.core?.status().confState.witnesses.includes(n.id) ?? false;
    if (e.type === "normal" && e.data.length > 0 && !witness) n.applied.push(dec.decode(e.data));

    const prior = this.committedTerm.get(e.index);
    if (!prior) this.committedTerm.set(e.index, { term: e.term, by: n.id });
    else if (prior.term !== e.term) {
      this.violation(`index ${e.index} applied by ${n.id} with term ${e.term}, but ${prior.by} applied term ${prior.term}`);
    }
  }

  private deliver(cmd: TestCommand): void {
    const from = cmd.args.has("from") ? list(cmd.args.get("from")) : null;
    const to = cmd.args.has("to") ? list(cmd.args.get("to")) : null;
    const kind = cmd.args.has("kind") ? list(cmd.args.get("kind")) : null;
    const drop = str(cmd.args.get("drop") ?? "false") === "true";
    const matches = (m: Message): boolean =>
      (!from || from.includes(m.from)) && (!to || to.includes(m.to)) && (!kind || kind.includes(m.kind));
    const picked = this.queue.filter(matches);
    this.queue = this.queue.filter((m) => !matches(m));
    if (picked.length === 0) this.print("no messages");
    for (const m of picked) {
      if (drop) this.print(`dropped: ${this.describe(m)}`);
      else this.deliverOne(m);
    }
  }

  private deliverOne(delivered: Message): void {
    const m =
      delivered.kind === "vote" && delivered.transfer && this.envOptions.mutation?.stripTransferFlag
        ? { ...delivered, transfer: false }
        : delivered;
    const target = this.nodes.get(m.to);
    if (this.cuts.has(`${m.from}>${m.to}`)) return this.print(`dropped (cut): ${this.describe(m)}`);
    if (!target?.core) return this.print(`dropped (${m.to} is down): ${this.describe(m)}`);
    this.print(this.describe(m));
    try {
      target.core.step(m);
    } catch (err) {
      // A broken invariant stops the process in production (assert.ts); here the node goes down
      // and the script shows it. Only *_bug.txt scripts may contain a PANIC.
      if (!(err instanceof AssertionError)) throw err;
      this.print(`PANIC ${m.to}: ${err.message} (node stopped)`);
      target.core = null;
    }
    this.check();
  }

  private stabilize(ids: NodeId[]): void {
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (const id of ids) if (this.node(id).core?.hasReady()) moved = this.processReady(id, false) || moved;
      for (const id of ids) {
        const inbox = this.queue.filter((m) => m.to === id);
        if (inbox.length === 0) continue;
        moved = true;
        this.queue = this.queue.filter((m) => m.to !== id);
        this.print(`> ${id} receiving messages`);
        this.indent = "  ";
        for (const m of inbox) this.deliverOne(m);
        this.indent = "";
      }
      if (!moved) return;
    }
    throw new Error("stabilize: still moving after 1000 rounds");
  }

  private cut(from: NodeId[], to: NodeId[], both: boolean): void {
    for (const f of from) {
      for (const t of to.filter((x) => x !== f)) {
        this.cuts.add(`${f}>${t}`);
        if (both) this.cuts.add(`${t}>${f}`);
      }
    }
    this.print(
      `cut: ${[...this.cuts]
        .sort()
        .map((c) => c.replace(">", "->"))
        .join(" ")}`,
    );
  }

  private stateLine(n: SimNode): string {
    if (!n.core) return `${n.id}: down`;
    const s = n.core.status();
    return `${n.id}: ${s.role} term=${s.term} leader=${s.leader || "none"} commit=${s.commit} last=${s.lastTerm}/${s.lastIndex}`;
  }

  private status(id: NodeId): void {
    const n = this.node(id);
    this.print(this.stateLine(n));
    if (!n.core) return;
    const s = n.core.status();
    this.print(`vote=${s.vote || "none"} applied=${s.applied} first=${s.firstIndex} conf: ${describeConfState(s.confState)}`);
    if (s.leadTransferee) this.print(`transferring to ${s.leadTransferee}`);
    if (s.role !== "leader") return;
    for (const other of this.nodes.keys()) {
      const pr = n.core.progressOf(other);
      if (pr !== "none") this.print(`  ${other}: ${pr}`);
    }
  }

  private raftLog(id: NodeId): void {
    const n = this.node(id);
    if (!n.core) {
      this.print(`${id} is down; on disk:`);
      const persisted = n.disk.load();
      const snap = persisted.snapshot;
      if (snap) this.print(`snapshot ${snap.metadata.term}/${snap.metadata.index}`);
      for (const e of persisted.entries) this.print(describeEntry(e));
      return;
    }
    const s = n.core.status();
    if (s.firstIndex > 1) this.print(`snapshot ${n.core.termAt(s.firstIndex - 1) ?? "?"}/${s.firstIndex - 1}`);
    for (let i = s.firstIndex; i <= s.lastIndex; i++) {
      const e = n.core.entryAt(i);
      this.print(e ? describeEntry(e) : `?/${i} missing`);
    }
    if (s.lastIndex < s.firstIndex) this.print("log is empty");
  }

  /** Runs after every core input: a second leader in a term is a violation the moment it exists. */
  private check(): void {
    for (const n of this.nodes.values()) {
      const s = n.core?.status();
      if (s?.role !== "leader") continue;
      const prior = this.leaderOfTerm.get(s.term);
      if (prior === undefined) this.leaderOfTerm.set(s.term, n.id);
      else if (prior !== n.id) this.violation(`two leaders in term ${s.term}: ${prior} and ${n.id}`);
    }
    this.checkProperties();
  }

  private violation(what: string): void {
    if (this.violations.has(what)) return;
    this.violations.add(what);
    this.print(`SAFETY VIOLATION: ${what}`);
    if (!this.envOptions.expectViolations) throw new ScriptAssertionError(`line ${this.line}: safety violation: ${what}`);
  }

  // ------------------------------------------------------------------ silent properties

  /** A property that failed: thrown (the script fails), or recorded in a *_bug script. */
  private property(what: string): void {
    if (this.propertyViolations.includes(what)) return;
    this.propertyViolations.push(what);
    if (!this.envOptions.expectViolations) throw new ScriptAssertionError(`line ${this.line}: property violated: ${what}`);
  }

  private checkProperties(): void {
    for (const n of this.nodes.values()) {
      const core = n.core;
      if (!core) continue;
      const s = core.status();
      // Terms are persisted: they never go back, not even across a crash and restart.
      const termBefore = this.termSeen.get(n.id) ?? 0;
      if (s.term < termBefore) this.property(`${n.id}'s term went from ${termBefore} back to ${s.term}`);
      this.termSeen.set(n.id, Math.max(termBefore, s.term));
      this.termMax = Math.max(this.termMax, s.term);
      // Committed entries agree everywhere (checked on the commit index, before anything applies).
      const from = Math.max(this.commitSeen.get(n.id) ?? 0, s.firstIndex - 1);
      for (let i = from + 1; i <= s.commit; i++) {
        const t = core.termAt(i);
        if (t === undefined) continue;
        if (s.role === "leader" && !this.commitTermOf.has(i)) this.commitTermOf.set(i, s.term);
        const known = this.committedAt.get(i);
        if (!known) this.committedAt.set(i, { term: t, by: n.id });
        else if (known.term !== t) this.property(`index ${i} committed with term ${t} on ${n.id}, with term ${known.term} on ${known.by}`);
      }
      this.commitSeen.set(n.id, Math.max(this.commitSeen.get(n.id) ?? 0, s.commit));
      // Leader completeness: a new leader holds every entry committed in an earlier term.
      if (s.role === "leader" && this.ledTerm.get(n.id) !== s.term) {
        this.ledTerm.set(n.id, s.term);
        for (const [i, c] of this.committedAt) {
          if (i < s.firstIndex || (this.commitTermOf.get(i) ?? s.term) >= s.term) continue;
          if (core.termAt(i) !== c.term) this.property(`${n.id} leads term ${s.term} without committed entry ${c.term}/${i}`);
        }
      }
    }
  }

  /** read-index: the read must not see less than what any node had committed when it was asked. */
  private readIndex(id: NodeId, ctx: number, result: (r: { ok: true } | { ok: false; reason: string; detail: string }) => void): void {
    const core = this.core(id);
    const floor = Math.max(0, ...[...this.nodes.values()].map((n) => n.core?.status().commit ?? 0));
    this.readFloor.set(`${id}/${ctx}`, floor);
    const r = core.readIndex(ctx);
    result(r);
    if (r.ok && this.envOptions.mutation?.staleReads && core.status().role === "leader") {
      this.noteReadState(id, ctx, core.status().commit); // the mutation: answered at once, no quorum round
    }
  }

  private noteReadState(node: NodeId, ctx: number, index: number): void {
    const key = `${node}/${ctx}`;
    if (!this.readStates.has(key)) this.readStates.set(key, index);
    const floor = this.readFloor.get(key) ?? 0;
    if (index < floor) this.property(`${node}'s read ctx=${ctx} at index ${index} misses index ${floor}, committed before it was asked`);
  }

  /**
   * A configuration change may not leave two disjoint quorums of the configuration before and
   * after it (joint consensus). Config entries of one Ready are applied before the core
   * advances, so they are chained from the core's configuration.
   */
  private checkConfChange(n: SimNode, e: Entry): void {
    const core = n.core?.status().confState;
    if (!core) return;
    const chained = this.confChained.get(n.id);
    const before = chained && chained.core === core ? chained.after : core;
    const r = applyConfChange(before, decodeConfChange(e.data));
    if (!r.ok) return;
    this.confChained.set(n.id, { core, after: r.confState });
    this.confsApplied.set(n.id, [...(this.confsApplied.get(n.id) ?? []), r.confState]);
    const split = disjointQuorums(before, r.confState);
    if (split) {
      this.property(
        `${n.id} applies ${e.term}/${e.index}: ${describeConfState(before)} -> ${describeConfState(r.confState)} leaves disjoint quorums ${split[0]} and ${split[1]}`,
      );
    }
  }

  // ------------------------------------------------------------------ assertions

  /** assert-* commands: print one "ok: ..." line, or throw ScriptAssertionError. */
  private assertion(cmd: TestCommand): void {
    const p = cmd.positional;
    const a = cmd.args;
    const num = (k: string): number => {
      const v = Number(str(a.get(k)));
      if (!a.has(k) || !Number.isSafeInteger(v)) throw new Error(`line ${cmd.line}: ${cmd.name} needs ${k}=N`);
      return v;
    };
    const fail = (what: string): never => {
      throw new ScriptAssertionError(`line ${cmd.line}: assertion failed: ${cmd.raw}: ${what}`);
    };
    const ok = (what: string): void => this.print(`ok: ${what}`);
    const ids = (): NodeId[] => (p.length > 0 ? [...p] : [...this.nodes.keys()]);
    switch (cmd.name) {
      // assert-leader a [term=N]: a leads (in term N).
      case "assert-leader": {
        const s = this.node(p[0] ?? "").core?.status();
        if (s?.role !== "leader") fail(`${p[0]} is ${s ? `${s.role} at term ${s.term}` : "down"}`);
        if (a.has("term") && s?.term !== num("term")) fail(`${p[0]} leads term ${s?.term}`);
        return ok(`${p[0]} leads term ${s?.term}`);
      }
      // assert-role a follower|preCandidate|candidate|leader|down [term=N] [leader=x]
      case "assert-role": {
        const [id = "", role = ""] = p;
        const s = this.node(id).core?.status();
        const actual = s ? s.role : "down";
        if (actual !== role) fail(`${id} is ${actual}${s ? ` at term ${s.term}` : ""}`);
        if (s && a.has("term") && s.term !== num("term")) fail(`${id} is at term ${s.term}`);
        if (s && a.has("leader") && s.leader !== str(a.get("leader"))) fail(`${id} follows ${s.leader || "none"}`);
        return ok(`${id} is ${role}${s ? ` at term ${s.term}` : ""}${a.has("leader") ? ` following ${str(a.get("leader"))}` : ""}`);
      }
      // assert-committed [a b ...] index=N [term=T]: each (live) node's commit covers N, with term T there.
      case "assert-committed": {
        const index = num("index");
        for (const id of ids()) {
          const core = this.core(id);
          const s = core.status();
          if (s.commit < index) fail(`${id}'s commit is ${s.commit}`);
          if (a.has("term") && index >= s.firstIndex && core.termAt(index) !== num("term"))
            fail(`${id} holds ${core.termAt(index) ?? "nothing"} at ${index}`);
        }
        return ok(`${ids().join(" ")} committed ${a.has("term") ? `${num("term")}/` : ""}${index}`);
      }
      // assert-not-committed [a b ...] index=N: no listed node (a down one: on disk) has commit >= N.
      case "assert-not-committed": {
        const index = num("index");
        for (const id of ids()) {
          const n = this.node(id);
          const commit = n.core?.status().commit ?? n.disk.load().hardState.commit;
          if (commit >= index) fail(`${id}'s commit is ${commit}`);
        }
        return ok(p.length > 0 ? `index ${index} not committed on ${p.join(" ")}` : `no node committed index ${index}`);
      }
      // assert-log a index=N term=T [data=x]: a's log holds T/N (with data x, or "no-op").
      case "assert-log": {
        const id = p[0] ?? "";
        const index = num("index");
        const e = this.core(id).entryAt(index);
        if (!e || e.term !== num("term")) fail(`${id} holds ${e ? `${e.term}/${index}` : "nothing"} at ${index}`);
        if (e && a.has("data")) {
          const want = str(a.get("data"));
          const have = e.type === "config" ? "conf" : e.data.length === 0 ? "no-op" : dec.decode(e.data);
          if (have !== want) fail(`${id}'s entry ${index} is ${have}`);
        }
        return ok(`${id} holds ${num("term")}/${index}${a.has("data") ? ` ${str(a.get("data"))}` : ""}`);
      }
      // assert-first a index=N: a's log starts at N (a witness truncated exactly below it).
      case "assert-first": {
        const first = this.core(p[0] ?? "").status().firstIndex;
        if (first !== num("index")) fail(`${p[0]}'s log starts at ${first}`);
        return ok(`${p[0]}'s log starts at ${first}`);
      }
      // assert-applied a data=(x y): exactly what a's state machine applied.
      case "assert-applied": {
        const id = p[0] ?? "";
        const want = list(a.get("data")).join(" ");
        const have = this.node(id).applied.join(" ");
        if (have !== want) fail(`${id} applied [${have}]`);
        return ok(`${id} applied [${have}]`);
      }
      // assert-read a ctx=N index=I | assert-read a ctx=N none: a's ReadState for ctx (or none yet).
      case "assert-read": {
        const id = p[0] ?? "";
        const ctx = num("ctx");
        const have = this.readStates.get(`${id}/${ctx}`);
        if (p.includes("none")) {
          if (have !== undefined) fail(`${id} answered ctx=${ctx} at index ${have}`);
          return ok(`${id} has not answered read ctx=${ctx}`);
        }
        if (have !== num("index")) fail(have === undefined ? `${id} has not answered ctx=${ctx}` : `${id} answered at index ${have}`);
        return ok(`${id} answered read ctx=${ctx} at index ${have}`);
      }
      // assert-conf [a b ...] voters=(...) [outgoing=(...)] [learners=(...)] [witnesses=(...)]
      case "assert-conf": {
        const want = (k: string): string => list(a.get(k)).sort().join(" ");
        for (const id of ids()) {
          const cs = this.core(id).status().confState;
          const parts: [string, readonly string[]][] = [
            ["voters", cs.voters],
            ["outgoing", cs.votersOutgoing],
            ["learners", cs.learners],
            ["witnesses", cs.witnesses],
          ];
          for (const [k, have] of parts) if ([...have].sort().join(" ") !== want(k)) fail(`${id} has ${describeConfState(cs)}`);
        }
        return ok(`${ids().join(" ")} in ${describeConfState(this.core(ids()[0] ?? "").status().confState)}`);
      }
      // assert-conf-applied [a b ...] voters=(...) [outgoing=(...)] ...: each node applied that
      // configuration at some point (e.g. the joint one a stabilize went through).
      case "assert-conf-applied": {
        const want = (k: string): string => list(a.get(k)).sort().join(" ");
        const same = (cs: ConfState): boolean =>
          (
            [
              ["voters", cs.voters],
              ["outgoing", cs.votersOutgoing],
              ["learners", cs.learners],
              ["witnesses", cs.witnesses],
            ] as const
          ).every(([k, have]) => [...have].sort().join(" ") === want(k));
        let shown = "";
        for (const id of ids()) {
          const seen = this.confsApplied.get(id) ?? [];
          const hit = seen.find(same);
          if (!hit) fail(`${id} applied ${seen.map(describeConfState).join(", ") || "no configuration"}`);
          shown = hit ? describeConfState(hit) : shown;
        }
        return ok(`${ids().join(" ")} applied ${shown}`);
      }
      // assert-term-max N: no node was ever at a term above N.
      case "assert-term-max": {
        const max = Number(p[0]);
        if (this.termMax > max) fail(`a node reached term ${this.termMax}`);
        return ok(`no term above ${max} (highest ${this.termMax})`);
      }
      // assert-snapshot a index=N: a restored a snapshot at N (from its Ready).
      case "assert-snapshot": {
        const id = p[0] ?? "";
        const got = this.snapshotsRestored.get(id) ?? [];
        if (!got.includes(num("index"))) fail(`${id} restored ${got.length > 0 ? `snapshots at ${got.join(" ")}` : "no snapshot"}`);
        return ok(`${id} restored the snapshot at ${num("index")}`);
      }
      // assert-last-result ok | refused=REASON: the last propose / conf change / transfer / read-index.
      case "assert-last-result": {
        const want = p.includes("ok") ? "ok" : `refused=${str(a.get("refused"))}`;
        if (this.lastResult !== want) fail(`it was ${this.lastResult}`);
        return ok(want === "ok" ? "accepted" : `refused (${str(a.get("refused"))})`);
      }
      // assert-safety-violated (only meaningful in a *_bug script): the bug was caught.
      case "assert-safety-violated": {
        const n = this.recordedViolations().length;
        if (n === 0) fail("no safety violation or failed property was recorded");
        return ok("the checkers caught the bug");
      }
      default:
        throw new Error(`unknown command ${cmd.name}`);
    }
  }

  /**
   * A message as the scripts print it. Since churn issue 4's fix every member of a configuration
   * with a witness gets the W3 floor (a full member retains its log from it); the scripts print it
   * only on messages to a witness, where it decides a truncation, as before the fix.
   */
  private describe(m: Message): string {
    if (m.kind !== "append" && m.kind !== "heartbeat") return describeMessage(m);
    const witnesses = [m.from, m.to].flatMap((id) => this.nodes.get(id)?.core?.status().confState.witnesses ?? []);
    return describeMessage(witnesses.includes(m.to) ? m : { ...m, witnessFloor: 0 });
  }

  private print(line: string): void {
    this.out.push(this.indent + line);
  }

  private node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n) return n;
    throw new Error(id ? `no node ${id}` : "missing node id");
  }

  private core(id: NodeId): RaftCore {
    const c = this.node(id).core;
    if (c) return c;
    throw new Error(`node ${id} is down`);
  }

  private ids(p: readonly string[]): NodeId[] {
    return p.length > 0 ? [...p] : [...this.nodes.keys()];
  }
}

function str(v: ArgValue | undefined): string {
  if (typeof v !== "object") return v ?? "";
  throw new Error(`expected a single value, got (${v.join(" ")})`);
}

const list = (v: ArgValue | undefined): string[] => (v === undefined ? [] : typeof v === "string" ? [v] : [...v]);

function parseApplied(data: Uint8Array): string[] {
  const parsed: unknown = JSON.parse(dec.decode(data));
  return Array.isArray(parsed) ? parsed.map(String) : [];
}

function parseConfChange(cmd: TestCommand): ConfChange {
  if (cmd.positional.includes("leave-joint")) return { kind: "leaveJoint" };
  const witnesses = list(cmd.args.get("witness"));
  const changes: ConfChangeSingle[] = [];
  const ops = [
    ["add-voter", "addVoter"],
    ["add-learner", "addLearner"],
    ["remove", "removeNode"],
  ] as const;
  for (const [key, op] of ops) {
    for (const nodeId of list(cmd.args.get(key))) changes.push({ op, nodeId, witness: witnesses.includes(nodeId) });
  }
  if (cmd.positional.includes("enter-joint")) {
    return { kind: "enterJoint", changes, autoLeave: str(cmd.args.get("auto-leave") ?? "false") === "true" };
  }
  const [change, extra] = changes;
  if (!change || extra) throw new Error("a simple conf change has exactly one change; use enter-joint for more");
  return { kind: "simple", change };
}

function describeConfChange(cc: ConfChange): string {
  if (cc.kind === "leaveJoint") return "leave-joint";
  const names = { addVoter: "add-voter", addLearner: "add-learner", removeNode: "remove" } as const;
  const one = (c: ConfChangeSingle): string => `${names[c.op]}=${c.nodeId}${c.witness ? "(w)" : ""}`;
  if (cc.kind === "simple") return one(cc.change);
  return `enter-joint ${cc.changes.map(one).join(" ")}${cc.autoLeave ? " auto-leave" : ""}`;
}

export function describeEntry(e: Entry): string {
  const head = `${e.term}/${e.index}`;
  if (e.type === "config") return `${head} conf ${describeConfChange(decodeConfChange(e.data))}`;
  return e.data.length === 0 ? `${head} no-op` : `${head} "${dec.decode(e.data)}"`;
}
