// peer_message_checks.ts and the snapshot image checks: what an authenticated member may not send.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Driver } from "../../testing/kits/state_test_kit.ts";
import type { Message } from "../core/messages.ts";
import type { SnapshotMetadata } from "../core/types.ts";
import { DEFAULT_STATE_CONFIG } from "../state/limits.ts";
import {
  INDEX_MAX,
  TERM_MAX,
  checkPeerMessage,
  confEntryProblem,
  confStateProblem,
  receiverConflict,
  witnessImageCheck,
} from "./peer_message_checks.ts";
import { isAdmissibleMember } from "./peer_admission.ts";
import { machineImageCheck } from "./snapshot_image_check.ts";

const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
const head = { from: "b", to: "a", term: 3 };
const heartbeat = (commit: number, term = 3): Message => ({ ...head, term, kind: "heartbeat", commit, readContext: 0, witnessFloor: 0 });
const encode = (x: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(x));

/** A state machine image with a lease holding a lock, at applied index 3. */
function realImage(): Uint8Array {
  const d = new Driver();
  const grant = d.client("c1", { kind: "LeaseGrant", ttlMs: 10_000 });
  assert.ok(grant.ok);
  const leaseId = (grant as unknown as { leaseId: number }).leaseId;
  const acquired = d.client("c1", { kind: "LockAcquire", name: "l", leaseId, wait: false });
  assert.ok(acquired.ok, JSON.stringify(acquired));
  return d.machine.snapshot();
}

describe("checkPeerMessage", () => {
  it("refuses terms and indexes above TERM_MAX / INDEX_MAX (2^48), so a next term always exists", () => {
    assert.equal(TERM_MAX, 2 ** 48);
    assert.equal(checkPeerMessage(heartbeat(0, TERM_MAX)), null);
    assert.match(checkPeerMessage(heartbeat(0, 2 ** 53 - 2)) ?? "", /above TERM_MAX/);
    assert.match(checkPeerMessage(heartbeat(INDEX_MAX + 1)) ?? "", /above INDEX_MAX/);
    const vote: Message = { ...head, kind: "vote", preVote: true, transfer: false, lastIndex: 1, lastTerm: TERM_MAX + 1 };
    assert.match(checkPeerMessage(vote) ?? "", /lastTerm/);
    const append: Message = { ...head, kind: "append", prevIndex: INDEX_MAX, prevTerm: 1, commit: 0, witnessFloor: 0, entries: [] };
    assert.equal(checkPeerMessage(append), null);
    const past: Message = { ...append, entries: [{ term: 3, index: INDEX_MAX + 1, type: "normal", data: new Uint8Array(0) }] };
    assert.match(checkPeerMessage(past) ?? "", /INDEX_MAX|maximum/);
    const response: Message = { ...head, kind: "appendResponse", index: 1, reject: true, rejectHintIndex: 1, rejectHintTerm: TERM_MAX + 1 };
    assert.match(checkPeerMessage(response) ?? "", /rejectHintTerm/);
  });

  it("refuses a vote response's commit hint beyond the bounds, or with a term of 0 or above the message's", () => {
    const vote = (committedIndex: number, committedTerm: number): Message => ({
      ...head,
      kind: "voteResponse",
      preVote: false,
      reject: true,
      committedIndex,
      committedTerm,
    });
    assert.equal(checkPeerMessage({ ...head, kind: "voteResponse", preVote: false, reject: true }), null);
    assert.equal(checkPeerMessage(vote(40, head.term)), null);
    assert.match(checkPeerMessage(vote(INDEX_MAX + 1, 1)) ?? "", /committedIndex .* above INDEX_MAX/);
    assert.match(checkPeerMessage(vote(40, 0)) ?? "", /committed_term 0 must be in 1\.\./);
    assert.match(checkPeerMessage(vote(40, head.term + 1)) ?? "", /committed_term \d+ must be in 1\.\.the message's term/);
  });

  it("refuses a config entry that would not apply (the core asserts at apply, after persisting it)", () => {
    assert.equal(confEntryProblem(encode({ kind: "leaveJoint" })), null);
    assert.equal(confEntryProblem(encode({ kind: "simple", change: { op: "addVoter", nodeId: "d", witness: false } })), null);
    assert.match(confEntryProblem(new Uint8Array([0xff, 0x00])) ?? "", /not JSON/);
    assert.match(confEntryProblem(encode({ kind: "simple", change: { op: "nuke", nodeId: "d" } })) ?? "", /not a conf change/);
    assert.match(confEntryProblem(encode({ kind: "simple", change: { op: "addVoter", nodeId: "", witness: false } })) ?? "", /node id/);
    const append: Message = {
      ...head,
      kind: "append",
      prevIndex: 4,
      prevTerm: 3,
      commit: 4,
      witnessFloor: 0,
      entries: [{ term: 3, index: 5, type: "config", data: encode({ kind: "nonsense" }) }],
    };
    assert.match(checkPeerMessage(append) ?? "", /entries\[0\]: config entry data is not a conf change/);
    // A normal entry's data is the state machine's business: it answers INVALID_ARGUMENT, never crashes.
    assert.equal(checkPeerMessage({ ...append, entries: [{ term: 3, index: 5, type: "normal", data: new Uint8Array([1]) }] }), null);
  });

  it("receiverConflict: a heartbeat that commits, or an acknowledgement in our term, beyond the receiver's log", () => {
    const receiver = { term: 3, lastIndex: 10 };
    assert.equal(receiverConflict(heartbeat(10), receiver), null);
    assert.match(receiverConflict(heartbeat(11), receiver) ?? "", /beyond this member's last index 10/);
    assert.match(receiverConflict(heartbeat(11, 4), receiver) ?? "", /beyond/);
    // A stale heartbeat is ignored by the core, whatever it says.
    assert.equal(receiverConflict(heartbeat(99, 2), receiver), null);
    // A recovering receiver takes no commit from a heartbeat: it must get it to answer it.
    assert.equal(receiverConflict(heartbeat(11), { ...receiver, recovering: true }), null);
    const ack = (index: number, term = 3): Message => ({
      ...head,
      term,
      kind: "appendResponse",
      index,
      reject: false,
      rejectHintIndex: 0,
      rejectHintTerm: 0,
    });
    assert.equal(receiverConflict(ack(10), receiver), null);
    assert.match(receiverConflict(ack(11), receiver) ?? "", /acknowledges 11, beyond/);
    assert.equal(receiverConflict(ack(11, 4), receiver), null, "a newer term: the core steps down on it");
    assert.equal(checkPeerMessage(heartbeat(11)), null, "not a shape problem: the frame is not refused for it");
  });

  it("refuses a snapshot whose configuration the core could not have made", () => {
    assert.equal(confStateProblem(confState), null);
    assert.match(confStateProblem({ ...confState, learners: ["a"] }) ?? "", /both voter and learner/);
    assert.match(confStateProblem({ ...confState, witnesses: ["z"] }) ?? "", /not a member/);
    assert.match(confStateProblem({ ...confState, witnesses: ["a", "b", "c"] }) ?? "", /only witness voters/);
    const snap: Message = {
      ...head,
      kind: "snapshot",
      snapshot: { metadata: { index: 5, term: 3, confState: { ...confState, learners: ["b"] } }, data: new Uint8Array([1]) },
    };
    assert.match(checkPeerMessage(snap) ?? "", /conf_state/);
  });
});

describe("snapshot image checks", () => {
  const check = machineImageCheck(DEFAULT_STATE_CONFIG);
  const md = (index: number): SnapshotMetadata => ({ index, term: 1, confState });

  it("tenured's check passes a real image and refuses a random, a truncated, an empty and an inconsistent one", () => {
    const image = realImage();
    assert.equal(check(image, md(3)), null);
    const random = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff);
    assert.match(check(random, md(3)) ?? "", /does not restore/);
    assert.match(check(image.subarray(0, image.byteLength - 7), md(3)) ?? "", /does not restore/);
    assert.match(check(new Uint8Array(0), md(3)) ?? "", /empty image/);
    // Well-formed JSON of the right shape, but the lock names a lease the image does not hold.
    const parsed = JSON.parse(new TextDecoder().decode(image)) as { leases: unknown[] };
    parsed.leases = [];
    assert.match(check(encode(parsed), md(3)) ?? "", /does not restore: .*missing lease/);
    // An image ahead of its metadata would fail RaftNode's start-up assertion on every restart.
    assert.match(check(image, md(2)) ?? "", /beyond the snapshot's index 2/);
    const snap: Message = { ...head, kind: "snapshot", snapshot: { metadata: md(3), data: random } };
    assert.match(checkPeerMessage(snap, { checkSnapshotImage: check }) ?? "", /^snapshot image: does not restore/);
  });

  it("the witness's check keeps any image (it never restores one)", () => {
    assert.equal(witnessImageCheck(new Uint8Array([1, 2, 3]), md(3)), null);
  });
});

describe("isAdmissibleMember", () => {
  it("admits the configuration (joint halves, learners, witnesses) and the leader followed, nobody else", () => {
    const cs = { ...confState, votersOutgoing: ["a", "b", "d"], learners: ["e"], learnersNext: ["d"], witnesses: [] };
    for (const id of ["a", "b", "c", "d", "e"]) assert.ok(isAdmissibleMember({ confState: cs, leader: "" }, id), id);
    assert.ok(!isAdmissibleMember({ confState: cs, leader: "" }, "mallory"));
    // A removed leader still handing over is heard by the followers that applied its removal.
    assert.ok(isAdmissibleMember({ confState: { ...confState, voters: ["b", "c"] }, leader: "a" }, "a"));
    assert.ok(!isAdmissibleMember({ confState: { ...confState, voters: ["b", "c"] }, leader: "b" }, "a"));
    // No configuration yet (an empty disk): it cannot tell, so every certified member.
    const empty = { voters: [], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
    assert.ok(isAdmissibleMember({ confState: empty, leader: "" }, "anyone"));
  });
});
