// Command interpreter for the data-driven Raft scripts (etcd-io/raft's rafttest/interaction_env*).
// It drives real RaftCore instances through the production Ready loop (server/node/ready_loop.ts),
// one Ready per process-ready; messages wait in one in-memory queue until a command delivers or
// drops them, so a script fixes the exact schedule. Each node persists what its Readys hand over
// on a simulated disk (SimStorage over SimDisk: hard state, snapshot, entries with suffix
// truncation) and restarts from that alone, so crash/restart shows exactly what durability buys.
// A safety checker watches every step and prints "SAFETY VIOLATION" lines (two leaders in one
// term; an index committed with two different terms), so a script of a deliberate bug shows the
// damage in its expected output.

import { AssertionError } from "../../server/core/assert.ts";
import { decodeConfChange, describeConfState, type ConfChange, type ConfChangeSingle } from "../../server/core/conf_change.ts";
import { makeRaftConfig, NO_BUGS, type BugSwitches } from "../../server/core/config.ts";
import { describeMessage, type Message } from "../../server/core/messages.ts";
import { SeededRandom, type Random } from "../../server/core/random.ts";
import { RaftCore } from "../../server/core/raft.ts";
import type { Ready } from "../../server/core/ready.ts";
import { EMPTY_PERSISTED_STATE, type Entry, type NodeId, type PersistedState, type Snapshot } from "../../server/core/types.ts";
import { ReadyLoop } from "../../server/node/ready_loop.ts";
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

/** Records the election timeout the core drew, so tick-election can tick exactly that long. */
class TrackedRandom implements Random {
  constructor(private readonly inner: SeededRandom, private readonly electionTicks: number, public timeout = electionTicks) {}
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
  /** The disk as the running process sees it (every save is synced). */
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

  handle(cmd: TestCommand): string {
    this.out = [];
    this.indent = "";
    this.dispatch(cmd);
    this.check();
    return this.out.join("\n");
  }

  private dispatch(cmd: TestCommand): void {
    const p = cmd.positional;
    const id = p[0] ?? ""; // the node most commands act on; node() rejects ""
    const result = (r: { ok: true; index?: number; term?: number } | { ok: false; reason: string; detail: string }): void =>
      this.print(!r.ok ? `refused: ${r.reason} (${r.detail})` : r.index ? `proposed at ${r.term}/${r.index}` : "ok");
    switch (cmd.name) {
      // add-nodes voters=(a b c) [learners=(d)] [witnesses=(c)] [index=1] [pre-vote=true] [check-quorum=true]
      //   [election-ticks=10] [heartbeat-ticks=1] [max-entries=1] [seed=7] [bugs=(commitOldTermByCounting)]
      // Bootstraps every listed node from a snapshot at `index` holding the configuration.
      // index>0 makes a node added later (add-node) need a snapshot, as in etcd's scripts.
      case "add-nodes": return this.addNodes(cmd);
      // add-node d: a fresh node with an empty disk; it learns the configuration from a snapshot.
      case "add-node": return this.addNode(id, EMPTY_PERSISTED_STATE);
      // campaign a: the node starts an election (a pre-election when pre-vote is on).
      case "campaign": return this.core(id).campaign();
      // tick a [n]: n ticks (default 1).
      case "tick": return this.tick(id, Number(p[1] ?? "1"), false);
      // tick-heartbeat a: one heartbeat interval.
      case "tick-heartbeat": return this.tick(id, this.node(id).options.heartbeatTicks, false);
      // tick-election a: a leader ticks one election timeout (one CheckQuorum round); any other
      // node ticks its current randomized timeout, stopping early when its role changes.
      case "tick-election": return this.tickElection(id);
      // propose a data: prints the index/term the leader assigned, or why it refused.
      case "propose": return result(this.core(id).propose(enc.encode(p[1] ?? "")));
      // propose-conf-change a add-learner=d            (a simple learner change)
      // propose-conf-change a enter-joint add-voter=d remove=c auto-leave=true
      // propose-conf-change a leave-joint
      case "propose-conf-change": return result(this.core(id).proposeConfChange(parseConfChange(cmd)));
      // transfer-leader a b: leader a hands leadership to b.
      case "transfer-leader": return result(this.core(id).transferLeadership(p[1] ?? ""));
      // read-index a ctx=7: registers a linearizable read; its ReadState shows in a later Ready.
      case "read-index": return result(this.core(id).readIndex(Number(str(cmd.args.get("ctx") ?? "1"))));
      // process-ready [a b ...]: take, print, persist, apply and advance one Ready per node.
      case "process-ready":
        for (const id of this.ids(p)) this.processReady(id, true);
        return;
      // deliver-msgs [from=a|(a b)] [to=b|(b c)] [kind=append] [drop=true]: delivers (or drops)
      // every queued message that matches, in queue order; cut links and down nodes drop them.
      case "deliver-msgs": return this.deliver(cmd);
      // stabilize [a b ...]: process-ready and deliver among these nodes until nothing moves.
      case "stabilize": return this.stabilize(this.ids(p));
      // cut a b: both directions. cut-one-way from=(b c) to=a. isolate a. heal.
      case "cut": return this.cut([id], [p[1] ?? ""], true);
      case "cut-one-way": return this.cut(list(cmd.args.get("from")), list(cmd.args.get("to")), false);
      case "isolate": return this.cut([id], [...this.nodes.keys()], true);
      case "heal": this.cuts.clear(); return;
      // crash a: the process dies; only what process-ready persisted survives. Messages queued
      // for it, and any sent to it while it is down, are lost.
      case "crash": {
        const n = this.node(id);
        n.core = null;
        n.loop = null;
        n.storage.close();
        this.print(`${id} crashed`);
        for (const m of this.queue.filter((q) => q.to === id)) this.print(`dropped (${id} is down): ${describeMessage(m)}`);
        this.queue = this.queue.filter((q) => q.to !== id);
        return;
      }
      // restart a: a new core built from a's persisted state (its application restarts at 0).
      case "restart": return this.restart(id);
      // compact-witness w: the witness truncates its log up to the floor its leader sent (W3)
      // and persists the metadata-only marker.
      case "compact-witness": {
        const n = this.node(id);
        const marker = this.core(n.id).compactWitnessLog();
        if (!marker) return this.print(`${n.id} has nothing to truncate`);
        n.storage.saveSnapshotAndCompact(marker);
        return this.print(`${n.id} truncated its log through ${marker.metadata.term}/${marker.metadata.index} (marker, ${marker.data.length} bytes of state)`);
      }
      // compact a: the application snapshots its applied state; the log before it is dropped.
      case "compact": {
        const n = this.node(id);
        const snap = this.core(n.id).createSnapshot(enc.encode(JSON.stringify(n.applied)));
        n.storage.saveSnapshotAndCompact(snap);
        return this.print(`${n.id} compacted the log through ${snap.metadata.term}/${snap.metadata.index}`);
      }
      // status a: one node in detail, with the leader's view of each follower's progress.
      case "status": return this.status(id);
      // raft-state: role, term, leader, commit and last index of every node.
      case "raft-state":
        for (const n of this.nodes.values()) this.print(this.stateLine(n));
        return;
      // raft-log a: a's log (term/index type data), in memory or, if it is down, on disk.
      case "raft-log": return this.raftLog(id);
      // applied a: the data a's state machine has applied.
      case "applied": return this.print(`${id} applied [${this.node(id).applied.join(" ")}]`);
      default:
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
    this.rootRandom = new SeededRandom(num("seed", 1));
    this.defaults = {
      ...{ electionTicks: num("election-ticks", D.electionTicks), heartbeatTicks: num("heartbeat-ticks", D.heartbeatTicks) },
      ...{ preVote: bool("pre-vote", D.preVote), checkQuorum: bool("check-quorum", D.checkQuorum), maxEntries: num("max-entries", D.maxEntries) },
      bugs: bugs as unknown as BugSwitches,
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
        restoreSnapshot: (snapshot) => (n.applied = parseApplied(snapshot.data)),
        applyEntry: (e) => this.applyEntry(n, e),
        afterAdvance: () => {}, // compaction and witness truncation are script commands
      },
      readiesPerPassMax: 1,
      onReady: (rd) => this.printReady(rd),
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
      // A message to a process that is down is lost, not delivered after it restarts.
      if (this.nodes.get(m.to)?.core) this.queue.push(m);
      else this.print(`dropped (${m.to} is down): ${describeMessage(m)}`);
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
    section("Messages", rd.messages.map(describeMessage));
    section("ReadStates", rd.readStates.map((r) => `ctx=${r.context} index=${r.index}`));
  }

  private applyEntry(n: SimNode, e: Entry): void {
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
      if (drop) this.print(`dropped: ${describeMessage(m)}`);
      else this.deliverOne(m);
    }
  }

  private deliverOne(m: Message): void {
    const target = this.nodes.get(m.to);
    if (this.cuts.has(`${m.from}>${m.to}`)) return this.print(`dropped (cut): ${describeMessage(m)}`);
    if (!target?.core) return this.print(`dropped (${m.to} is down): ${describeMessage(m)}`);
    this.print(describeMessage(m));
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
    this.print(`cut: ${[...this.cuts].sort().map((c) => c.replace(">", "->")).join(" ")}`);
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
      if (!s || s.role !== "leader") continue;
      const prior = this.leaderOfTerm.get(s.term);
      if (prior === undefined) this.leaderOfTerm.set(s.term, n.id);
      else if (prior !== n.id) this.violation(`two leaders in term ${s.term}: ${prior} and ${n.id}`);
    }
  }

  private violation(what: string): void {
    if (this.violations.has(what)) return;
    this.violations.add(what);
    this.print(`SAFETY VIOLATION: ${what}`);
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
  const ops = [["add-voter", "addVoter"], ["add-learner", "addLearner"], ["remove", "removeNode"]] as const;
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
