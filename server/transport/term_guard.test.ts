// term_guard.ts: higher-term messages other than votes are ignored while the receiver is in a
// leader lease (as the transport observed it), and only then.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message } from "../core/messages.ts";
import type { Role } from "../core/ready.ts";
import { TermGuard, type TermGuardView } from "./term_guard.ts";

const hb = (from: string, term: number): Message => ({
  kind: "heartbeat",
  from,
  to: "a",
  term,
  commit: 0,
  readContext: 0,
  witnessFloor: 0,
});

function setup(role: Role, leader: string) {
  let nowMs = 0;
  const view: { -readonly [K in keyof TermGuardView]: TermGuardView[K] } = { selfId: "a", term: 5, role, leader, voters: ["a", "b", "c"] };
  const guard = new TermGuard({ leaseMs: 500, view: () => view, nowMs: () => nowMs });
  return { guard, view, advance: (ms: number) => void (nowMs += ms) };
}

describe("TermGuard", () => {
  it("a follower that heard its leader within the lease ignores higher terms from anyone, votes excepted", () => {
    const { guard, advance } = setup("follower", "b");
    assert.equal(guard.ignores(hb("c", 6)), false, "no contact yet: no lease");
    guard.heard(hb("b", 5));
    assert.equal(guard.ignores(hb("c", 6)), true);
    assert.equal(
      guard.ignores({
        kind: "appendResponse",
        from: "c",
        to: "a",
        term: 6,
        index: 0,
        reject: false,
        rejectHintIndex: 0,
        rejectHintTerm: 0,
      }),
      true,
    );
    assert.equal(
      guard.ignores({ kind: "vote", from: "c", to: "a", term: 6, preVote: false, transfer: true, lastIndex: 1, lastTerm: 1 }),
      false,
    );
    assert.equal(guard.ignores(hb("c", 5)), false, "the same term is the core's business");
    advance(499);
    assert.equal(guard.ignores(hb("c", 6)), true);
    advance(2);
    assert.equal(guard.ignores(hb("c", 6)), false, "the leader fell silent: the new term is heard");
  });

  it("a leader is in a lease while it heard a majority in its term", () => {
    const { guard, view, advance } = setup("leader", "a");
    assert.equal(guard.ignores(hb("c", 6)), false);
    guard.heard(hb("b", 5));
    assert.equal(guard.ignores(hb("c", 6)), true, "itself and b: a majority of three");
    advance(300);
    guard.heard(hb("b", 4)); // another term: not contact in ours
    advance(300);
    assert.equal(guard.ignores(hb("c", 6)), false);
    view.role = "candidate";
    guard.heard(hb("b", 5));
    assert.equal(guard.ignores(hb("c", 6)), false, "candidates are never guarded");
  });

  it("remembers voters only", () => {
    const { guard, view } = setup("follower", "x");
    guard.heard(hb("x", 5));
    assert.equal(guard.ignores(hb("c", 6)), false, "x is not a voter: no lease from it");
    view.voters = ["a", "b"];
    guard.heard(hb("b", 5));
    view.leader = "b";
    assert.equal(guard.ignores(hb("c", 6)), true);
  });
});
