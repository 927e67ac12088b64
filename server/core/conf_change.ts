// Membership changes by joint consensus (Raft thesis §4.3; etcd-io/raft confchange/). PURE.
//
// Any change to the voter set goes through a joint configuration: enterJoint makes both the old
// and the new voter sets majorities; leaveJoint drops the old one. A "simple" change may only
// touch learners, so Ongaro's single-server counterexample cannot arise.

import { assert, assertNever } from "./assert.ts";
import type { ConfState, NodeId } from "./types.ts";

export type ConfChangeOp = "addVoter" | "addLearner" | "removeNode";

export interface ConfChangeSingle {
  readonly op: ConfChangeOp;
  readonly nodeId: NodeId;
  /** For addVoter/addLearner: the member keeps the log but never applies it (witness role). */
  readonly witness: boolean;
}

export type ConfChange =
  | { readonly kind: "simple"; readonly change: ConfChangeSingle }
  | {
      readonly kind: "enterJoint";
      readonly changes: readonly ConfChangeSingle[];
      readonly autoLeave: boolean;
    }
  | { readonly kind: "leaveJoint" };

export type ConfChangeResult = { readonly ok: true; readonly confState: ConfState } | { readonly ok: false; readonly reason: string };

export function isJoint(cs: ConfState): boolean {
  return cs.votersOutgoing.length > 0;
}

/** allMembers per configuration: a ConfState is immutable, and the leader and the checkers ask
 *  for the same one's members on every message and event. */
const allMembersMemo = new WeakMap<ConfState, readonly NodeId[]>();

/** Everyone who receives the log: voters of both halves and learners (sorted; shared, frozen). */
export function allMembers(cs: ConfState): readonly NodeId[] {
  let members = allMembersMemo.get(cs);
  if (members === undefined) {
    members = Object.freeze([...new Set<NodeId>([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext])].sort());
    allMembersMemo.set(cs, members);
  }
  return members;
}

export function allVoters(cs: ConfState): NodeId[] {
  return [...new Set<NodeId>([...cs.voters, ...cs.votersOutgoing])].sort();
}

export function isVoter(cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.votersOutgoing.includes(id);
}

export function isWitness(cs: ConfState, id: NodeId): boolean {
  return cs.witnesses.includes(id);
}

/** Returns the configuration after `cc`, or why it is not allowed from `cs`. */
export function applyConfChange(cs: ConfState, cc: ConfChange): ConfChangeResult {
  switch (cc.kind) {
    case "simple":
      return applySimple(cs, cc.change);
    case "enterJoint":
      return enterJoint(cs, cc.changes, cc.autoLeave);
    case "leaveJoint":
      return leaveJoint(cs);
    default:
      return assertNever(cc, "conf change");
  }
}

function applySimple(cs: ConfState, change: ConfChangeSingle): ConfChangeResult {
  if (isJoint(cs)) return { ok: false, reason: "configuration is joint; leave it first" };
  if (change.op === "addVoter" || cs.voters.includes(change.nodeId)) {
    return { ok: false, reason: "changing the voter set needs a joint change (enterJoint)" };
  }
  const out = mutate(cs);
  applyOne(out, change);
  return finish(out);
}

function enterJoint(cs: ConfState, changes: readonly ConfChangeSingle[], autoLeave: boolean): ConfChangeResult {
  if (isJoint(cs)) return { ok: false, reason: "configuration is already joint" };
  if (changes.length === 0) return { ok: false, reason: "enterJoint needs at least one change" };
  const ids = new Set(changes.map((c) => c.nodeId));
  if (ids.size !== changes.length) return { ok: false, reason: "a node appears twice in one change" };
  const out = mutate(cs);
  // The deliberate bug (testOnlyBugSkipJointConsensus): no outgoing half, the new set at once.
  if (!bugSkipJointConsensus) out.votersOutgoing = [...cs.voters];
  for (const change of changes) applyOne(out, change);
  out.autoLeave = autoLeave && !bugSkipJointConsensus;
  return finish(out);
}

let bugSkipJointConsensus = false;

/**
 * TEST-ONLY DELIBERATE BUG (the simulator's `skipJointConsensus` switch, testing/sim): while `run`
 * runs, enterJoint does not enter a joint configuration but switches straight to the new voter
 * set, so once the entry is applied only the NEW configuration's majority counts (commit,
 * elections, CheckQuorum, ReadIndex) and the old one is never asked. Replacing a voter then lets
 * two disjoint majorities decide apart ({b,c} of the old {a,b,c} and {a,d} of the new {a,b,d}).
 * This module is pure and takes no RaftConfig, so the switch is module state scoped to `run`
 * (restored when it returns or throws) rather than a BugSwitches field; nothing outside testing/
 * calls it, and every real configuration runs with it off.
 */
export function testOnlyBugSkipJointConsensus<T>(run: () => T): T {
  const before = bugSkipJointConsensus;
  bugSkipJointConsensus = true;
  try {
    return run();
  } finally {
    bugSkipJointConsensus = before;
  }
}

function leaveJoint(cs: ConfState): ConfChangeResult {
  if (!isJoint(cs)) return { ok: false, reason: "configuration is not joint" };
  const out = mutate(cs);
  out.learners = [...new Set([...out.learners, ...out.learnersNext])];
  out.learnersNext = [];
  out.votersOutgoing = [];
  out.autoLeave = false;
  return finish(out);
}

interface MutableConfState {
  voters: NodeId[];
  votersOutgoing: NodeId[];
  learners: NodeId[];
  learnersNext: NodeId[];
  witnesses: NodeId[];
  autoLeave: boolean;
}

function mutate(cs: ConfState): MutableConfState {
  return {
    voters: [...cs.voters],
    votersOutgoing: [...cs.votersOutgoing],
    learners: [...cs.learners],
    learnersNext: [...cs.learnersNext],
    witnesses: [...cs.witnesses],
    autoLeave: cs.autoLeave,
  };
}

const without = (list: NodeId[], id: NodeId): NodeId[] => list.filter((x) => x !== id);

function applyOne(out: MutableConfState, change: ConfChangeSingle): void {
  const id = change.nodeId;
  assert(id.length > 0, "conf change names an empty node id");
  switch (change.op) {
    case "addVoter":
      out.learners = without(out.learners, id);
      out.learnersNext = without(out.learnersNext, id);
      if (!out.voters.includes(id)) out.voters.push(id);
      break;
    case "addLearner":
      out.voters = without(out.voters, id);
      // Still a voter of the outgoing half: it becomes a learner when the joint state is left.
      if (out.votersOutgoing.includes(id)) {
        if (!out.learnersNext.includes(id)) out.learnersNext.push(id);
      } else if (!out.learners.includes(id)) {
        out.learners.push(id);
      }
      break;
    case "removeNode":
      out.voters = without(out.voters, id);
      out.learners = without(out.learners, id);
      out.learnersNext = without(out.learnersNext, id);
      break;
    default:
      assertNever(change.op, "conf change op");
  }
  if (change.op !== "removeNode") {
    out.witnesses = without(out.witnesses, id);
    if (change.witness) out.witnesses.push(id);
  }
}

function finish(out: MutableConfState): ConfChangeResult {
  if (out.voters.length === 0) return { ok: false, reason: "the configuration would have no voters" };
  const members = new Set([...out.voters, ...out.votersOutgoing, ...out.learners, ...out.learnersNext]);
  out.witnesses = out.witnesses.filter((id) => members.has(id));
  for (const id of out.learners) {
    if (out.voters.includes(id) || out.votersOutgoing.includes(id)) {
      return { ok: false, reason: `${id} would be both voter and learner` };
    }
  }
  // A witness can never be the only full (applying) voter of a half: it holds no state to serve.
  const fullIncoming = out.voters.filter((id) => !out.witnesses.includes(id));
  if (fullIncoming.length === 0) return { ok: false, reason: "the configuration would have only witness voters" };
  const sorted = (l: NodeId[]): NodeId[] => [...l].sort();
  return {
    ok: true,
    confState: {
      voters: sorted(out.voters),
      votersOutgoing: sorted(out.votersOutgoing),
      learners: sorted(out.learners),
      learnersNext: sorted(out.learnersNext),
      witnesses: sorted(out.witnesses),
      autoLeave: out.autoLeave,
    },
  };
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return textEncoder.encode(JSON.stringify(cc));
}

/** Decodes a committed config entry. A malformed one is a bug (it was validated at propose). */
export function decodeConfChange(data: Uint8Array): ConfChange {
  const parsed: unknown = JSON.parse(textDecoder.decode(data));
  assert(isConfChange(parsed), "config entry does not hold a valid conf change");
  return parsed;
}

function isSingle(x: unknown): x is ConfChangeSingle {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    (r["op"] === "addVoter" || r["op"] === "addLearner" || r["op"] === "removeNode") &&
    typeof r["nodeId"] === "string" &&
    typeof r["witness"] === "boolean"
  );
}

export function isConfChange(x: unknown): x is ConfChange {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Record<string, unknown>;
  if (r["kind"] === "leaveJoint") return true;
  if (r["kind"] === "simple") return isSingle(r["change"]);
  if (r["kind"] === "enterJoint") {
    return Array.isArray(r["changes"]) && r["changes"].every(isSingle) && typeof r["autoLeave"] === "boolean";
  }
  return false;
}

export function describeConfState(cs: ConfState): string {
  const w = (id: NodeId): string => (cs.witnesses.includes(id) ? `${id}(w)` : id);
  let s = `voters=(${cs.voters.map(w).join(" ")})`;
  if (isJoint(cs)) s += `&&(${cs.votersOutgoing.map(w).join(" ")})`;
  if (cs.learners.length > 0) s += ` learners=(${cs.learners.map(w).join(" ")})`;
  if (cs.learnersNext.length > 0) s += ` learners_next=(${cs.learnersNext.map(w).join(" ")})`;
  if (cs.autoLeave) s += " autoleave";
  return s;
}
