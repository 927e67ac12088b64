// What still stops a member after the inbound checks: random peer messages (every kind, terms and
// indexes in a small range so they collide with the receiver's log, config entries, snapshots),
// sent through the codec, checkPeerMessage and receiverConflict into a real RaftCore that also
// ticks, campaigns and proposes. The only assertion a message may still fire is the deliberate
// one, two leaders in one term (README, Trust boundary): anything else would be a crash a peer
// can cause, and this test names it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bootstrapState } from "../core/bootstrap.ts";
import { encodeConfChange } from "../core/conf_change.ts";
import { makeRaftConfig } from "../core/config.ts";
import type { Message } from "../core/messages.ts";
import { SeededRandom } from "../core/random.ts";
import { RaftCore } from "../core/raft.ts";
import type { Entry } from "../core/types.ts";
import { ReadyLoop } from "../node/ready_loop.ts";
import { decodeMessage, encodeMessage } from "./peer_codec.ts";
import { checkPeerMessage, receiverConflict } from "./peer_message_checks.ts";

const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
const TWO_LEADERS = /^leader a got (append|heartbeat|snapshot) from [bc] in its own term \d+$/;

function randomMessage(rnd: SeededRandom): Message {
  const n = (max: number): number => rnd.nextInt(max);
  const head = { from: n(2) === 0 ? "b" : "c", to: "a", term: n(6) };
  const index = (): number => n(14);
  switch (n(8)) {
    case 0: {
      const prevIndex = index();
      const prevTerm = Math.min(head.term, n(6));
      const entries: Entry[] = [];
      let term = Math.max(1, prevTerm);
      for (let i = 0, count = n(4); i < count; i++) {
        term = Math.min(head.term, term + n(2));
        const config = n(5) === 0;
        const data = config
          ? encodeConfChange({ kind: "simple", change: { op: "addLearner", nodeId: "d", witness: false } })
          : new Uint8Array(0);
        entries.push({ term, index: prevIndex + 1 + i, type: config ? "config" : "normal", data });
      }
      return { ...head, kind: "append", prevIndex, prevTerm, entries, commit: index(), witnessFloor: n(3) === 0 ? index() : 0 };
    }
    case 1:
      return { ...head, kind: "appendResponse", index: index(), reject: n(2) === 0, rejectHintIndex: index(), rejectHintTerm: n(6) };
    case 2:
      return { ...head, kind: "heartbeat", commit: index(), readContext: n(3), witnessFloor: n(3) === 0 ? index() : 0 };
    case 3:
      return { ...head, kind: "heartbeatResponse", readContext: n(4) };
    case 4:
      return { ...head, kind: "vote", preVote: n(2) === 0, transfer: n(4) === 0, lastIndex: index(), lastTerm: n(6) };
    case 5:
      return { ...head, kind: "voteResponse", preVote: n(2) === 0, reject: n(3) === 0 };
    case 6: {
      const metadata = { index: 1 + index(), term: Math.max(1, Math.min(head.term, n(6))), confState };
      return { ...head, kind: "snapshot", snapshot: { metadata, data: new Uint8Array([1]) } };
    }
    default:
      return { ...head, kind: "timeoutNow" };
  }
}

describe("random peer messages after the inbound checks", () => {
  it("fire no assertion in the core but two leaders in one term", () => {
    const rnd = new SeededRandom(20261202);
    const others = new Map<string, number>();
    let stepped = 0;
    let twoLeaders = 0;
    for (let run = 0; run < 600; run++) {
      const core = new RaftCore(makeRaftConfig({ id: "a", random: rnd.fork() }), bootstrapState(["a", "b", "c"]));
      // The production loop with nothing behind it: the fuzz is about the core, not the disk.
      const loop = new ReadyLoop({
        core,
        storage: { save: () => {}, saveSnapshotAndCompact: () => {} },
        transport: { send: () => {} },
        applier: { restoreSnapshot: () => {}, applyEntry: () => {}, afterAdvance: () => {} },
        readiesPerPassMax: 1000,
      });
      try {
        for (let i = 0; i < 60; i++) {
          const roll = rnd.nextInt(12);
          if (roll < 3) core.tick();
          else if (roll === 3 && core.status().role === "leader") core.propose(new Uint8Array([1]));
          else {
            const decoded = decodeMessage(encodeMessage(randomMessage(rnd)));
            if (!decoded.ok) continue; // the codec's refusal: never reaches the core
            const m = decoded.value;
            const s = core.status();
            if (checkPeerMessage(m) !== null || receiverConflict(m, { term: s.term, lastIndex: s.lastIndex }) !== null) continue;
            stepped += 1;
            core.step(m);
          }
          while (loop.process() > 0);
        }
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (TWO_LEADERS.test(message)) twoLeaders += 1;
        else others.set(message, (others.get(message) ?? 0) + 1);
      }
    }
    assert.deepEqual([...others], [], "assertions a peer message can fire besides two leaders in one term");
    assert.ok(stepped > 20_000, `only ${stepped} messages reached the core`);
    assert.ok(twoLeaders > 0, "the generator reaches the leader: the deliberate assertion fires");
  });
});
