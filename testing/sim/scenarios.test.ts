// Runs every data-driven Raft script in testing/testdata/raft (etcd-io/raft's interaction_test.go).
// Each file gets a fresh InteractionEnv. REWRITE=1 regenerates the expected outputs; commit such
// a rewrite only after reading the diff and agreeing with every changed line.
//
// The safety checker's "SAFETY VIOLATION" lines (and PANIC lines: a core assertion fired) are
// allowed only in *_bug.txt scripts, which run the core with a deliberate bug switch and must
// show the damage; every other script must be clean.
//
// Golden output is not enough (a rewrite accepts anything), so every script asserts its own
// property with assert-* commands, and the runner checks properties after every step
// (interaction_env.ts). The second suite proves those assertions have teeth: each script runs
// against one deliberate change of behaviour (MUTATIONS) with its expected output IGNORED, as if
// it had been rewritten, and must fail on an assertion or a checked property.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { runDataDriven } from "./datadriven.ts";
import { InteractionEnv, ScriptAssertionError, type Mutation } from "./interaction_env.ts";

const dir = join(fileURLToPath(new URL(".", import.meta.url)), "..", "testdata", "raft");
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".txt"))
  .sort();

/** Per script: the property it asserts, and a change of behaviour its assertions must catch. */
export const MUTATIONS: Readonly<Record<string, { readonly property: string; readonly mutation: Mutation; readonly why: string }>> = {
  "checkquorum.txt": {
    property: "the leader that hears no quorum steps down; c leads term 2; a's pre-elections raise no term",
    mutation: { overrides: { checkQuorum: false } },
    why: "CheckQuorum off: a is still leader after a round that heard nobody",
  },
  "figure8.txt": {
    property: "the old-term entry 2/2 on a majority is never committed by counting; 3/2 commits only with 5/3",
    mutation: { bugs: ["commitOldTermByCounting"] },
    why: "commitOldTermByCounting: node 1 commits 2/2 at (c)",
  },
  "figure8_bug.txt": {
    property: "with the counting bug, 2/2 and then 3/2 are both committed at index 2 and the checkers see it",
    mutation: { bugs: "none" },
    why: "the bug switch off (the correct core): node 1 never commits 2/2, nothing is caught",
  },
  "joint_replace.txt": {
    property:
      "simple voter changes refused; the learner catches up by snapshot; the replace goes through (a b d)&&(a b c) and ends in (a b d)",
    mutation: { skipJointConsensus: true },
    why: "skipJointConsensus: (a b c) -> (a b d) in one step, quorums {a,c} and {b,d} disjoint",
  },
  "membership_ongaro.txt": {
    property: "single voter changes refused; S2's committed removal survives; S1's pre-votes fail the log check",
    mutation: { bugs: ["voteWithoutLogCheck"] },
    why: "voteWithoutLogCheck: S1 wins term 3 with a log missing S2's committed entries",
  },
  "prevote.txt": {
    property: "the isolated follower's pre-elections never raise a term; a stays leader of term 1",
    mutation: { overrides: { preVote: false } },
    why: "PreVote off: c's elections raise its term while it is cut off",
  },
  "readindex.txt": {
    property:
      "a read is answered only after a quorum acks, at an index covering the write; never by a new leader before its no-op commits, never by a cut-off leader",
    mutation: { staleReads: true },
    why: "stale reads (answered at once from the leader's commit index): a answers ctx=1 before b's ack",
  },
  "snapshot.txt": {
    property: "the lagging follower is restored from the snapshot and ends with [x y z w], also after a restart",
    mutation: { ignoreSnapshotImage: true },
    why: "the application ignores the snapshot's image: c applies only [z w]",
  },
  "transfer.txt": {
    property: "proposals are refused during the transfer; c leads term 2 with every committed entry",
    mutation: { stripTransferFlag: true },
    why: "TimeoutNow votes lose their transfer mark: a and b ignore c under the leader lease, c never leads",
  },
  "witness_link_cut.txt": {
    property: "only a's side commits; b's pre-votes raise no term; the witness truncates only to b's match",
    mutation: { bugs: ["truncateWitnessAtCommit"] },
    why: "truncateWitnessAtCommit: w truncates to its commit 3, past b's match 1",
  },
  "witness_replace.txt": {
    property:
      "the witness is replaced in one joint step with C down; b leaves the joint configuration after a's crash; b and w2 commit without a",
    mutation: { skipJointConsensus: true },
    why: "skipJointConsensus: (a b w) -> (a b w2) in one step, quorums {a,w} and {b,w2} disjoint",
  },
  "witness_s3.txt": {
    property: "w truncates only to b's match; w leads, refuses proposals, catches b up and hands over; b leads with every committed entry",
    mutation: { bugs: ["truncateWitnessAtCommit"] },
    why: "truncateWitnessAtCommit: w truncates to its commit 4 while b holds only index 1",
  },
};

describe("raft interaction scripts", () => {
  it("finds the scripts", () => assert.ok(files.length > 0, `no scripts in ${dir}`));
  for (const f of files) {
    it(f, () => {
      const path = join(dir, f);
      const bug = f.endsWith("_bug.txt");
      const env = new InteractionEnv({ expectViolations: bug });
      runDataDriven(path, (cmd) => env.handle(cmd));
      const text = readFileSync(path, "utf8");
      const violations = /^ *(SAFETY VIOLATION:|PANIC )/m.test(text); // output lines, not comments
      if (bug) assert.ok(violations, `${f} runs a bug switch but shows no SAFETY VIOLATION`);
      else assert.ok(!violations, `${f} shows a SAFETY VIOLATION or PANIC`);
      assert.match(text, /^assert-/m, `${f} asserts nothing: add assert-* commands for the property it exists for`);
    });
  }
});

describe("raft interaction scripts: the assertions catch a changed behaviour that a rewrite would hide", () => {
  it("every script has a mutation", () =>
    assert.deepEqual(
      files.filter((f) => !(f in MUTATIONS)),
      [],
    ));
  for (const f of files) {
    const m = MUTATIONS[f];
    if (!m) continue;
    it(`${f}: ${m.why}`, () => {
      // Expected output ignored, violations of a *_bug script recorded but not thrown: only the
      // script's assertions and the runner's properties can fail it.
      const env = new InteractionEnv({ expectViolations: f.endsWith("_bug.txt"), mutation: m.mutation });
      let caught: unknown = null;
      try {
        runDataDriven(join(dir, f), (cmd) => env.handle(cmd), { compareOutput: false });
      } catch (err) {
        caught = err;
      }
      assert.ok(caught !== null, `${f} passed under the mutation: its assertions do not pin "${m.property}"`);
      const cause = (caught as { cause?: unknown }).cause;
      assert.ok(cause instanceof ScriptAssertionError, `${f} failed, but not on an assertion: ${String(caught)}`);
    });
  }
});
