import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventQueue } from "./event_queue.ts";

describe("EventQueue", () => {
  it("pops by time, then by insertion order, whatever the push order", () => {
    // A small LCG: deterministic input with many equal times, so the tie-break is exercised.
    let x = 12345;
    const next = (): number => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x;
    };
    const q = new EventQueue<number>(10_000);
    const pushed: { atMs: number; order: number }[] = [];
    for (let round = 0; round < 20; round++) {
      for (let k = 0; k < 200; k++) {
        const atMs = next() % 50;
        q.push(atMs, pushed.length);
        pushed.push({ atMs, order: pushed.length });
      }
      // Pop part of it between rounds, so pushes land on a heap of every shape.
      for (let k = 0; k < 150; k++) q.pop();
    }
    const rest: number[] = [];
    for (let e = q.pop(); e !== undefined; e = q.pop()) rest.push(e.event);
    assert.equal(q.size(), 0);
    assert.equal(q.pop(), undefined);
    // Replay the same pushes and pops on a sorted array: the reference order.
    const ref: { atMs: number; order: number }[] = [];
    let i = 0;
    const refPop = (): { atMs: number; order: number } | undefined => {
      ref.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
      return ref.shift();
    };
    for (let round = 0; round < 20; round++) {
      for (let k = 0; k < 200; k++) ref.push(pushed[i++] as { atMs: number; order: number });
      for (let k = 0; k < 150; k++) refPop();
    }
    const expected: number[] = [];
    for (let e = refPop(); e !== undefined; e = refPop()) expected.push(e.order);
    assert.deepEqual(rest, expected);
  });

  it("refuses a push over its limit", () => {
    const q = new EventQueue<string>(2);
    q.push(1, "a");
    q.push(1, "b");
    assert.throws(() => q.push(1, "c"), /over its limit of 2/);
  });
});
