import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SeqAllocator, SessionPool } from "./sessions.ts";

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
});
