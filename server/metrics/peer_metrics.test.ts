import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { helpOf, parseExposition, samplesOf, sampleValue } from "../../testing/kits/prom_text.ts";
import type { Message } from "../core/messages.ts";
import type { PeerTransport, PeerTransportStats } from "../transport/peer_transport.ts";
import { isLeaderConflict, type LeaderView, MeteredTransport } from "./peer_metrics.ts";
import { createRegistry } from "./registry.ts";

class FakeTransport implements PeerTransport {
  readonly sent: Message[] = [];
  handler: (m: Message) => void = () => undefined;
  send(messages: readonly Message[]): void {
    this.sent.push(...messages);
  }
  onMessage(handler: (m: Message) => void): void {
    this.handler = handler;
  }
  setPeers(): void {}
  stats(): PeerTransportStats {
    return { sentMessages: 5, droppedMessages: 1, receivedMessages: 7, rejectedBatches: 2 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const heartbeat = (from: string, to: string, term: number): Message => ({
  kind: "heartbeat",
  from,
  to,
  term,
  commit: 0,
  readContext: 0,
  witnessFloor: 0,
});
const answer = (from: string, to: string, term: number): Message => ({ kind: "heartbeatResponse", from, to, term, readContext: 0 });

describe("peer metrics", () => {
  it("isLeaderConflict: leader messages of our term from another than our leader, or to a leader", () => {
    const follower: LeaderView = { id: "a", role: "follower", term: 5, leader: "b" };
    assert.equal(isLeaderConflict(heartbeat("b", "a", 5), follower), false);
    assert.equal(isLeaderConflict(heartbeat("c", "a", 5), follower), true);
    assert.equal(isLeaderConflict(heartbeat("c", "a", 6), follower), false, "a newer term: a new leader");
    assert.equal(isLeaderConflict(heartbeat("c", "a", 5), { ...follower, leader: "" }), false, "no leader known yet");
    assert.equal(isLeaderConflict(answer("c", "a", 5), follower), false, "not a leader message");
    const leader: LeaderView = { id: "a", role: "leader", term: 5, leader: "a" };
    assert.equal(isLeaderConflict(heartbeat("c", "a", 5), leader), true);
    assert.equal(isLeaderConflict(answer("c", "a", 5), leader), false);
  });

  it("times heartbeat round trips per peer, counts conflicts, reads the transport's counts", async () => {
    const registry = createRegistry();
    const inner = new FakeTransport();
    let nowMs = 0;
    let view: LeaderView = { id: "a", role: "leader", term: 5, leader: "a" };
    const logged: Record<string, unknown>[] = [];
    const t = new MeteredTransport(inner, registry, {
      peerIds: ["b", "c"],
      view: () => view,
      nowMs: () => nowMs,
      log: (f) => logged.push(f),
    });
    const delivered: Message[] = [];
    t.onMessage((m) => delivered.push(m));
    t.send([heartbeat("a", "b", 5), heartbeat("a", "c", 5)]);
    nowMs = 4;
    t.send([heartbeat("a", "b", 5)]); // b has one unanswered: the oldest is timed
    nowMs = 10;
    inner.handler(answer("b", "a", 5));
    nowMs = 12;
    inner.handler(answer("c", "a", 5));
    inner.handler(answer("c", "a", 5)); // a second answer with nothing outstanding: no sample
    inner.handler(answer("zz", "a", 5)); // not a peer
    assert.equal(inner.sent.length, 3, "every message still sent");
    assert.equal(delivered.length, 4, "every message still delivered");
    view = { id: "a", role: "follower", term: 5, leader: "b" };
    inner.handler(heartbeat("c", "a", 5));
    inner.handler(heartbeat("b", "a", 5));
    const text = await registry.metrics();
    const s = parseExposition(text);
    assert.equal(sampleValue(s, "tenure_peer_rtt_seconds_count", { peer: "b" }), 1);
    assert.ok(Math.abs(sampleValue(s, "tenure_peer_rtt_seconds_sum", { peer: "b" }) - 0.01) < 1e-9);
    assert.equal(sampleValue(s, "tenure_peer_rtt_seconds_count", { peer: "c" }), 1);
    assert.ok(Math.abs(sampleValue(s, "tenure_peer_rtt_seconds_sum", { peer: "c" }) - 0.012) < 1e-9);
    assert.equal(samplesOf(s, "tenure_peer_rtt_seconds_count", { peer: "zz" }).length, 0);
    assert.equal(sampleValue(s, "tenure_leader_conflicts_total"), 1);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.["event"], "leader_conflict");
    assert.match(helpOf(text, "tenure_leader_conflicts_total") ?? "", /SAFETY/);
    assert.equal(sampleValue(s, "tenure_peer_messages_sent_total"), 5);
    assert.equal(sampleValue(s, "tenure_peer_messages_dropped_total"), 1);
    assert.equal(sampleValue(s, "tenure_peer_messages_received_total"), 7);
    assert.equal(sampleValue(s, "tenure_peer_batches_rejected_total"), 2);
  });

  it("setPeers: a removed peer is no longer timed, an added one is", async () => {
    const registry = createRegistry();
    const inner = new FakeTransport();
    const t = new MeteredTransport(inner, registry, {
      peerIds: ["b"],
      view: () => ({ id: "a", role: "leader", term: 1, leader: "a" }),
      nowMs: () => 0,
    });
    t.onMessage(() => undefined);
    t.setPeers([{ id: "d", address: "x:1" }]);
    t.send([heartbeat("a", "b", 1), heartbeat("a", "d", 1)]);
    inner.handler(answer("b", "a", 1));
    inner.handler(answer("d", "a", 1));
    const s = parseExposition(await registry.metrics());
    assert.equal(sampleValue(s, "tenure_peer_rtt_seconds_count", { peer: "d" }), 1);
    assert.equal(samplesOf(s, "tenure_peer_rtt_seconds_count", { peer: "b" }).length, 0, "b is no peer any more");
  });
});
