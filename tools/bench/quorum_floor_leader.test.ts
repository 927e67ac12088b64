// The quorum floor's leader keeps the promises its figures rest on: a batch is answered only once
// its own fdatasync is done AND a follower acknowledged it; batches commit in order; a blocking
// acquire of a held name waits and gets the name, FIFO, in the apply of the holder's release.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type FloorCommand, FloorLeader, frameSeq } from "./quorum_floor_leader.ts";

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
};

function harness() {
  const dir = mkdtempSync(join(tmpdir(), "quorum-floor-"));
  const frames: Buffer[] = [];
  const leader = new FloorLeader(join(dir, "log"), [{ send: (f) => frames.push(f) }]);
  const replies: string[] = [];
  const propose = (label: string, command: FloorCommand): void =>
    leader.propose(command, (error, response) => replies.push(`${label} ${error ? `error ${error.code}` : JSON.stringify(response)}`));
  return {
    dir,
    frames,
    leader,
    replies,
    propose,
    done: () => {
      leader.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("a batch is answered only after its own fdatasync and a follower's acknowledgement, in order", async () => {
  const h = harness();
  try {
    h.propose("g1", { kind: "grant" });
    h.propose("g2", { kind: "grant" });
    await turn();
    assert.equal(h.frames.length, 1, "one turn's requests share one frame");
    h.propose("g3", { kind: "grant" });
    await turn();
    assert.deepEqual(h.frames.map(frameSeq), [1, 2]);
    await settle(); // both fdatasyncs done, nothing acknowledged
    assert.deepEqual(h.replies, []);
    h.leader.acked(2); // covers 1 and 2
    assert.deepEqual(h.replies, ['g1 {"leaseId":"1"}', 'g2 {"leaseId":"2"}', 'g3 {"leaseId":"3"}']);
    assert.ok(readFileSync(join(h.dir, "log")).length > 0, "the leader wrote its own copy");
  } finally {
    h.done();
  }
});

test("a follower's acknowledgement before the leader's own fdatasync does not commit the batch", async () => {
  const h = harness();
  try {
    h.propose("g1", { kind: "grant" });
    await turn(); // the batch left and its fdatasync is in flight: no poll phase has run since
    h.leader.acked(1);
    assert.deepEqual(h.replies, [], "answered before the leader's own write was durable");
    await settle();
    assert.deepEqual(h.replies, ['g1 {"leaseId":"1"}']);
  } finally {
    h.done();
  }
});

test("a blocking acquire of a held name gets it, FIFO, when the holder releases; a stale token releases nothing", async () => {
  const h = harness();
  const commit = async (): Promise<void> => {
    await turn();
    await settle();
    h.leader.acked(h.frames.length);
  };
  try {
    h.propose("a", { kind: "acquire", name: "x", wait: true });
    await commit();
    h.propose("b", { kind: "acquire", name: "x", wait: true });
    h.propose("c", { kind: "acquire", name: "x", wait: true });
    h.propose("try", { kind: "acquire", name: "x", wait: false });
    await commit();
    assert.deepEqual(h.replies, ['a {"token":"1"}', "try error 9"]);
    h.propose("stale", { kind: "release", name: "x", token: "7" });
    h.propose("rel-a", { kind: "release", name: "x", token: "1" });
    await commit();
    assert.deepEqual(h.replies.slice(2), ['stale {"released":false}', 'b {"token":"2"}', 'rel-a {"released":true}']);
    h.propose("rel-b", { kind: "release", name: "x", token: "2" });
    await commit();
    assert.deepEqual(h.replies.slice(5), ['c {"token":"3"}', 'rel-b {"released":true}']);
  } finally {
    h.done();
  }
});
