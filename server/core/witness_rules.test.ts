// Table tests of the witness rules (witness_rules.ts) as pure functions; witness.test.ts checks them
// on a running cluster. Site A = a, site B = b, site C = w (the witness).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConfState, Entry } from "./types.ts";
import { EMPTY_CONF_STATE } from "./types.ts";
import {
  electionTimeoutTicks,
  entriesToStore,
  floorStillBinds,
  floorUsable,
  grantsWitnessCandidate,
  handsOverTo,
  leavesJointConfig,
  proposalRefusal,
  raisedFloor,
  readRefusal,
  retainedLogStart,
  sendsSnapshots,
  transferRefusal,
  truncationFloorFor,
  truncationIndex,
  witnessLeaderMaxTicks,
} from "./witness_rules.ts";

const cs: ConfState = { ...EMPTY_CONF_STATE, voters: ["a", "b", "w"], witnesses: ["w"] };
const withLearner: ConfState = { ...cs, learners: ["l"] };

describe("witness rules", () => {
  it("W1: a witness stores payloads unless the metadata-only bug is on", () => {
    const entries: Entry[] = [
      { term: 1, index: 1, type: "normal", data: new Uint8Array([1]) },
      { term: 1, index: 2, type: "config", data: new Uint8Array([2]) },
    ];
    assert.equal(entriesToStore(cs, "w", entries, false), entries);
    assert.equal(entriesToStore(cs, "a", entries, true), entries);
    const stripped = entriesToStore(cs, "w", entries, true);
    assert.deepEqual(
      stripped.map((e) => e.data.length),
      [0, 1],
      "config entries keep their payload",
    );
  });

  it("W2/W5: a witness refuses reads and proposals; nobody transfers to it", () => {
    assert.equal(readRefusal(cs, "a"), null);
    assert.match(readRefusal(cs, "w") ?? "", /W2/);
    assert.equal(proposalRefusal(cs, "a"), null);
    assert.match(proposalRefusal(cs, "w") ?? "", /no proposals/);
    assert.equal(transferRefusal(cs, "b"), null);
    assert.match(transferRefusal(cs, "w") ?? "", /w is a witness/);
    assert.equal(sendsSnapshots(cs, "a"), true);
    assert.equal(sendsSnapshots(cs, "w"), false);
    assert.equal(leavesJointConfig(cs, "a"), true);
    assert.equal(leavesJointConfig(cs, "w"), false);
  });

  it("W3: the floor is min(commit, lowest full-member match), for witnesses only", () => {
    const progress = new Map([
      ["a", { match: 0 }], // the leader itself: its durable index counts instead
      ["b", { match: 4 }],
      ["w", { match: 1 }], // a witness's own match never lowers the floor
      ["l", { match: 3 }], // a learner is a full member: it needs the entries too
    ]);
    const leader = { id: "a", committed: 7, stableIndex: 6 };
    assert.equal(truncationFloorFor(withLearner, "w", leader, progress), 3);
    const fullVotersOnly = new Map([...progress].filter(([id]) => id !== "l"));
    assert.equal(truncationFloorFor(cs, "w", leader, fullVotersOnly), 4);
    assert.equal(truncationFloorFor(cs, "w", leader, new Map([["b", { match: 9 }]])), 7);
    // Full members get it too (they retain their log from it); without a witness nobody does.
    assert.equal(truncationFloorFor(cs, "b", leader, fullVotersOnly), 4);
    assert.equal(truncationFloorFor({ ...cs, witnesses: [] }, "w", leader, progress), 0);
  });

  it("W3: a witness keeps the highest floor; truncation stops at the floor and at applied", () => {
    assert.equal(raisedFloor(3, 5), 5);
    assert.equal(raisedFloor(5, 3), 5);
    const log = { floorReceived: 4, committed: 9, applied: 6, snapshotIndex: 2 };
    assert.equal(truncationIndex(cs, "w", log, false), 4);
    assert.equal(truncationIndex(cs, "w", log, true), 6, "the bug truncates at commit, bounded by applied");
    assert.equal(truncationIndex(cs, "w", { ...log, snapshotIndex: 4 }, false), null);
    assert.equal(truncationIndex(cs, "a", log, false), null);
  });

  it("W1/W3: with a witness, a full member's log starts no higher than the floor when it compacts", () => {
    assert.equal(retainedLogStart(cs, 4, 9), 4);
    assert.equal(retainedLogStart(cs, 12, 9), 9, "never above the snapshot");
    assert.equal(retainedLogStart({ ...cs, witnesses: [] }, 4, 9), 9, "without a witness: plain Raft");
  });

  it("W3: a floor binds only a membership the leader had applied when it computed the floor", () => {
    assert.equal(floorStillBinds(9, 9), true, "computed at the change itself");
    assert.equal(floorStillBinds(12, 9), true);
    assert.equal(floorStillBinds(8, 9), false, "computed before the change the witness applied at 9");
    assert.equal(floorStillBinds(0, 0), true, "no change since the bootstrap snapshot");
  });

  it("W3: a floor is used only once the member applied up to the leader's index it was computed at", () => {
    assert.equal(floorUsable(20, 20), true);
    assert.equal(floorUsable(20, 25), true);
    assert.equal(floorUsable(21, 20), false, "computed over a configuration this member may not have applied");
  });

  it("W4: doubled election timeout; a witness candidate needs a strictly newer log", () => {
    assert.equal(electionTimeoutTicks(cs, "a", 10), 10);
    assert.equal(electionTimeoutTicks(cs, "w", 10), 20);
    const own = { lastIndex: 5, lastTerm: 2 };
    const rows: [string, string, number, number, boolean][] = [
      ["w", "a", 5, 2, false], // equal logs: the full voter can win itself
      ["w", "a", 6, 2, true],
      ["w", "a", 1, 3, true],
      ["b", "a", 5, 2, true], // a full candidate: plain Raft (the caller's up-to-date check)
      ["a", "w", 5, 2, true], // a witness voter: plain Raft
    ];
    for (const [from, self, lastIndex, lastTerm, want] of rows) {
      assert.equal(grantsWitnessCandidate(cs, self, { from, lastIndex, lastTerm }, own), want, `${from} asks ${self}`);
    }
  });

  it("W5: the leadership cap is two election timeouts; hand over only to a caught-up full voter", () => {
    assert.equal(witnessLeaderMaxTicks(10), 20);
    assert.equal(handsOverTo(cs, "w", "b", 8, 8), true);
    assert.equal(handsOverTo(cs, "w", "b", 7, 8), false);
    assert.equal(handsOverTo(cs, "a", "b", 8, 8), false, "only a witness leader hands over");
    assert.equal(handsOverTo(withLearner, "w", "l", 8, 8), false, "never to a learner");
  });
});
