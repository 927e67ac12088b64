import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { scriptedRpc, scriptedTransport } from "../testing/kits/scripted_transport.ts";
import { SEQ_MAX, SeqAllocator, SessionPool } from "./sessions.ts";

describe("seq allocation", () => {
  it("starts at 1 and grows by one per request", () => {
    const s = new SeqAllocator();
    assert.deepEqual([s.next(), s.next(), s.next()], [1, 2, 3]);
  });

  it("a blocking call reserves seq + 1: the next request gets seq + 2", () => {
    const s = new SeqAllocator();
    assert.equal(s.next(), 1);
    assert.equal(s.next({ blocking: true }), 2); // the server may withdraw with 3
    assert.equal(s.next(), 4);
    assert.equal(s.next({ blocking: true }), 5);
    assert.equal(s.next({ blocking: true }), 7);
    assert.equal(s.peek(), 9);
  });

  it("the pool never hands one session to two callers at once and reuses returned ones", () => {
    const pool = new SessionPool("c");
    const a = pool.take();
    const b = pool.take();
    assert.notEqual(a.clientId, b.clientId);
    a.seqs.next();
    pool.give(a);
    const c = pool.take();
    assert.equal(c, a);
    assert.equal(c.seqs.next(), 2, "a reused session continues its sequence");
    const f = pool.fresh();
    assert.ok(![a.clientId, b.clientId].includes(f.clientId));
    assert.equal(f.seqs.next(), 1, "a fresh client id starts at seq 1 (the server wants 1 for an unknown client)");
  });

  it("at the top of the seq space a session moves to a new client_id at seq 1, never sending a seq the server refuses", () => {
    assert.equal(SEQ_MAX, 2 ** 53 - 2, "server/api/validate.ts SEQ_MAX");
    const pool = new SessionPool("c");
    const s = pool.fresh(SEQ_MAX - 1);
    const first = s.clientId;
    assert.equal(s.seqs.next(), SEQ_MAX - 1);
    assert.equal(s.clientId, first);
    assert.equal(s.seqs.next(), SEQ_MAX, "the largest seq with a successor is still sent");
    assert.equal(s.clientId, first);
    assert.equal(s.seqs.next(), 1, "2^53 - 1 is never sent: a new client id starts over");
    assert.notEqual(s.clientId, first);
    assert.equal(s.seqs.next(), 2);
    // A blocking call needs seq + 1 as well: SEQ_MAX - 1 is the last it may take.
    const b = pool.fresh(SEQ_MAX);
    const before = b.clientId;
    assert.equal(b.seqs.next({ blocking: true }), 1);
    assert.notEqual(b.clientId, before);
    const c = pool.fresh(SEQ_MAX - 1);
    const cFirst = c.clientId;
    assert.equal(c.seqs.next({ blocking: true }), SEQ_MAX - 1, "its reserved seq + 1 = SEQ_MAX is still a valid seq");
    assert.equal(c.seqs.next(), 1, "after the reservation nothing is left on that client id");
    assert.notEqual(c.clientId, cFirst);
    assert.ok(
      [first, s.clientId, before, b.clientId, cFirst, c.clientId].every((id, i, all) => all.indexOf(id) === i),
      "ids are never reused",
    );
  });

  it("the SDK's calls switch client_id instead of sending seq 2^53 - 1", async () => {
    const { transport, calls } = scriptedTransport([], () => ({ leaseId: "1" }), ["a"]);
    class TopPool extends SessionPool {
      override fresh(): ReturnType<SessionPool["fresh"]> {
        return super.fresh(SEQ_MAX);
      }
    }
    const rpc = scriptedRpc(transport, { pool: new TopPool("t") });
    for (let i = 0; i < 3; i++) await rpc.mutate("Lease", "Grant", { ttlMs: 1000 });
    await rpc.mutate("Lock", "Acquire", { name: "n" }, { blocking: true });
    assert.deepEqual(
      calls.map(({ request: r }) => `${String(r["clientId"])}#${String(r["seq"])}`),
      [`t.1#${SEQ_MAX}`, "t.2#1", "t.2#2", "t.2#3"],
    );
    assert.ok(calls.every(({ request: r }) => Number(r["seq"]) <= SEQ_MAX));
  });

  it("take(eligible) hands out the most recently returned session it accepts, or a new one", () => {
    const pool = new SessionPool("t");
    const [a, b, c] = [pool.take(), pool.take(), pool.take()];
    for (const s of [a, b, c]) pool.give(s);
    a.grantedLeases = 2;
    c.grantedLeases = 5;
    c.leaseGrantCap = 5;
    const roomy = (s: { grantedLeases: number; leaseGrantCap: number }) => s.grantedLeases < s.leaseGrantCap;
    assert.equal(pool.take(roomy), b, "c is full; b was returned after a");
    assert.equal(pool.take(roomy), a);
    const fresh = pool.take(roomy);
    assert.ok(fresh !== c && fresh.clientId === "t.4", "none left with room: a new client id");
    assert.equal(pool.take(), c, "without a filter, any free one");
  });
});
