// The commit hint of a vote response (messages.ts VoteResponseMessage.committedIndex): every
// voter that answers a vote or pre-vote says its commit index and the term of its entry there; a
// candidate holding that very entry commits up to it, one that does not (another term there, or
// no entry) ignores it. A member that lost log data (recovery) gives one (what it kept is
// right; only a tail is missing) and, never campaigning, takes none.
// End to end, the simulator seeds in testing/sim/vopr_presets.test.ts lose liveness without it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";
import type { Message, VoteResponseMessage } from "./messages.ts";
import type { PersistedState } from "./types.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * a leads a, b, c; its last entry committed on a and b, while c holds it but was never told it
 * committed (a's commit message to c was lost).
 */
function cWithoutTheLastCommit(): { c: TestCluster; last: { index: number; term: number }; cCommit: number } {
  const c = new TestCluster(["a", "b", "c"]);
  c.node("a").campaign();
  c.stabilize();
  for (const s of ["x", "y"]) assert.ok(c.node("a").propose(bytes(s)).ok);
  c.stabilize();
  c.tickAll(1);
  assert.ok(c.node("a").propose(bytes("z")).ok);
  const deliver = (ms: Message[], keep: (m: Message) => boolean = () => true): void => {
    for (const m of ms) if (keep(m)) c.deliver(m);
  };
  deliver(c.processOnly("a")); // the append of z
  deliver([...c.processOnly("b"), ...c.processOnly("c")]); // both acknowledge it
  deliver(c.processOnly("a"), (m) => m.to === "b"); // a commits z; the news reaches b only
  c.processOnly("b");
  c.processOnly("c");
  const a = c.node("a").status();
  const cs = c.node("c").status();
  assert.equal(a.commit, a.lastIndex, "a committed z");
  assert.equal(c.node("b").status().commit, a.lastIndex, "b learned it");
  assert.equal(cs.lastIndex, a.lastIndex, "c holds z");
  assert.ok(cs.commit < cs.lastIndex, "c was not told z committed");
  return { c, last: { index: a.lastIndex, term: a.lastTerm }, cCommit: cs.commit };
}

function hint(to: string, term: number, committedIndex: number, committedTerm: number): VoteResponseMessage {
  return { kind: "voteResponse", from: "b", to, term, preVote: true, reject: true, committedIndex, committedTerm };
}

describe("vote responses carry the commit index", () => {
  it("a candidate holding the responder's committed entry commits up to it, granted or refused", () => {
    for (const reject of [true, false]) {
      const { c, last } = cWithoutTheLastCommit();
      const cand = c.node("c");
      cand.campaign();
      assert.equal(cand.status().role, "preCandidate");
      c.processOnly("c"); // its pre-votes, undelivered
      // A grant carries the term the pre-vote is for; a refusal, the refuser's own term.
      const term = cand.status().term + (reject ? 0 : 1);
      cand.step({ ...hint("c", term, last.index, last.term), reject });
      assert.equal(cand.status().commit, last.index);
      c.processOnly("c");
      assert.equal(c.applied.get("c")?.at(-1)?.index, last.index, "and applies it");
    }
  });

  it("is ignored when the candidate's entry there has another term, or it has no entry there", () => {
    const { c, last, cCommit } = cWithoutTheLastCommit();
    const cand = c.node("c");
    cand.campaign();
    c.processOnly("c");
    const term = cand.status().term;
    cand.step(hint("c", term, last.index, last.term + 1));
    assert.equal(cand.status().commit, cCommit, "another term at that index: another log");
    cand.step(hint("c", term, last.index + 1, last.term));
    assert.equal(cand.status().commit, cCommit, "beyond its log");
  });

  it("a voter says its commit index and term when it grants and when it refuses", () => {
    const { c, last } = cWithoutTheLastCommit();
    const term = c.node("b").status().term;
    // transfer: true passes b's leader lease, as a candidate started by TimeoutNow would.
    const vote = (lastIndex: number): Message => ({
      kind: "vote",
      from: "c",
      to: "b",
      term: term + 1,
      preVote: true,
      transfer: true,
      lastIndex,
      lastTerm: last.term,
    });
    for (const [lastIndex, reject] of [
      [last.index, false],
      [last.index - 1, true],
    ] as const) {
      c.deliver(vote(lastIndex));
      const responses = c.processOnly("b").filter((m): m is VoteResponseMessage => m.kind === "voteResponse");
      assert.equal(responses.length, 1);
      const r = responses[0];
      assert.ok(r);
      assert.equal(r.reject, reject);
      assert.equal(r.committedIndex, last.index);
      assert.equal(r.committedTerm, last.term);
    }
  });

  it("a member that lost log data (recovery) refuses, with the hint of what it kept up to its commit index", () => {
    const { c, last } = cWithoutTheLastCommit();
    const b = c.node("b");
    const entries = Array.from({ length: last.index }, (_, i) => b.entryAt(i + 1)).filter((e) => e !== undefined);
    const st = b.status();
    const persisted: PersistedState = {
      hardState: { term: st.term, vote: st.vote, commit: st.commit },
      snapshot: null,
      entries,
    };
    const recovering = c.restartNode("b", persisted, { recovery: { untilIndex: last.index + 5 } });
    assert.equal(recovering.status().recovering, true);
    c.deliver({
      kind: "vote",
      from: "c",
      to: "b",
      term: st.term + 1,
      preVote: true,
      transfer: true,
      lastIndex: last.index,
      lastTerm: last.term,
    });
    const r = c.processOnly("b").find((m): m is VoteResponseMessage => m.kind === "voteResponse");
    assert.ok(r);
    assert.equal(r.reject, true);
    assert.equal(r.committedIndex, st.commit);
    assert.equal(r.committedTerm, b.entryAt(st.commit)?.term);
  });
});
