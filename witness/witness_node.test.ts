// WitnessNode on the shared Ready loop and the in-memory store: it keeps full entries durably
// (W1), acks only after persisting, applies nothing (W2), truncates only up to the leader's floor
// with a metadata-only marker (W3), and restarts from that marker. Its WitnessApplier is the one
// the simulator's witness runs.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { bootstrapState } from "../server/core/bootstrap.ts";
import { makeRaftConfig } from "../server/core/config.ts";
import type { Message } from "../server/core/messages.ts";
import { SeededRandom } from "../server/core/random.ts";
import type { Entry, NodeId } from "../server/core/types.ts";
import { MemoryDisk, MemoryStorage } from "../server/storage/memory_storage.ts";
import type { PeerAddress, PeerTransport, PeerTransportStats } from "../server/transport/peer_transport.ts";
import type { Snapshot } from "../server/core/types.ts";
import { WitnessApplier, WitnessNode } from "./witness_node.ts";

class RecordingTransport implements PeerTransport {
  readonly sent: Message[] = [];
  send(messages: readonly Message[]): void {
    this.sent.push(...messages);
  }
  onMessage(): void {}
  setPeers(_peers: readonly PeerAddress[]): void {}
  stats(): PeerTransportStats {
    return { sentMessages: this.sent.length, droppedMessages: 0, receivedMessages: 0, rejectedBatches: 0 };
  }
  async close(): Promise<void> {}
}

function open(
  disk: MemoryDisk,
  witnesses: readonly NodeId[] = ["w"],
): { node: WitnessNode; transport: RecordingTransport; storage: MemoryStorage } {
  const storage = MemoryStorage.open(disk);
  if (storage.identity() === null) {
    storage.setIdentity({ clusterId: "t", nodeId: "w" });
    storage.save({ hardState: null, snapshot: bootstrapState(["a", "b", "w"], witnesses).snapshot, entries: [] });
  }
  const transport = new RecordingTransport();
  const node = new WitnessNode({
    raftConfig: makeRaftConfig({ id: "w", random: new SeededRandom(7) }),
    storage,
    transport,
    requestProcess: () => {},
    log: () => {},
  });
  return { node, transport, storage };
}

const entries = (from: number, to: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({
    term: 1,
    index: from + i,
    type: "normal" as const,
    data: new TextEncoder().encode(`cmd${from + i}`),
  }));

function append(prevIndex: number, es: Entry[], commit: number, witnessFloor: number): Message {
  return { kind: "append", from: "a", to: "w", term: 1, prevIndex, prevTerm: prevIndex === 0 ? 0 : 1, entries: es, commit, witnessFloor };
}

describe("WitnessNode", () => {
  it("persists full entries before acking, applies nothing, truncates only to the floor", () => {
    const disk = new MemoryDisk();
    const { node, transport, storage } = open(disk);
    node.receive(append(0, entries(1, 6), 6, 3));
    node.process();
    const ack = transport.sent.find((m) => m.kind === "appendResponse");
    assert.ok(ack && ack.kind === "appendResponse" && !ack.reject && ack.index === 6, "no ack for the entries");
    const s = node.status();
    assert.equal(s.commitIndex, 6);
    assert.equal(s.appliedIndex, 0, "a witness applies nothing");
    assert.equal(s.lastIndex, 6);
    assert.equal(s.firstIndex, 4, "truncated up to the floor 3, not to the commit index 6");
    const stored = storage.load();
    assert.equal(stored.snapshot?.metadata.index, 3);
    assert.equal(stored.snapshot?.data.length, 0, "the marker carries no state");
    assert.deepEqual(stored.snapshot?.metadata.confState.witnesses, ["w"]);
    assert.deepEqual(
      stored.entries.map((e) => e.index),
      [4, 5, 6],
    );
    assert.equal(new TextDecoder().decode(stored.entries[2]?.data), "cmd6", "W1: the data is kept, not only metadata");
    // A higher floor from a heartbeat moves the truncation on, never past the commit index.
    node.receive({ kind: "heartbeat", from: "a", to: "w", term: 1, commit: 6, readContext: 0, witnessFloor: 9 });
    node.process();
    assert.equal(storage.load().snapshot?.metadata.index, 6);
    storage.close();
  });

  it("restarts from its marker and log", () => {
    const disk = new MemoryDisk();
    const first = open(disk);
    first.node.receive(append(0, entries(1, 5), 5, 2));
    first.node.process();
    first.storage.close();
    const again = open(disk);
    const s = again.node.status();
    assert.deepEqual([s.term, s.firstIndex, s.lastIndex, s.appliedIndex], [1, 3, 5, 0]);
    again.node.receive(append(5, entries(6, 6), 6, 6));
    again.node.process();
    assert.equal(again.node.status().lastIndex, 6);
    again.storage.close();
  });

  it("refuses to run on a member the stored configuration does not list as a witness", () => {
    assert.throws(() => open(new MemoryDisk(), []), /does not list w as a witness/);
  });

  it("WitnessApplier applies nothing and persists the floor marker after advance; the simulator runs it", () => {
    const confState = bootstrapState(["a", "b", "w"], ["w"]).snapshot?.metadata.confState;
    assert.ok(confState);
    const marker: Snapshot = { metadata: { index: 3, term: 1, confState }, data: new Uint8Array(0) };
    const markers: (Snapshot | null)[] = [marker, null]; // the floor moves once
    const logged: unknown[] = [];
    const applier = new WitnessApplier("w", { compactWitnessLog: () => markers.shift() ?? null }, (f) => logged.push(f["event"]));
    applier.applyEntry();
    applier.softStateChanged({ role: "leader", term: 2, leader: "w" });
    const compacted: Snapshot[] = [];
    const rd = {
      softState: null,
      hardState: null,
      snapshot: null,
      entries: [],
      committedEntries: [],
      messages: [],
      readStates: [],
      mustSync: false,
    };
    applier.afterAdvance(rd, (s) => compacted.push(s));
    applier.afterAdvance(rd, (s) => compacted.push(s));
    assert.deepEqual(compacted, [marker]);
    assert.deepEqual(logged, ["witnessLeader", "truncated"]);
    // The witness simulation must run this class, not a copy of the witness rules.
    const simNode = readFileSync(new URL("../testing/sim/sim_node.ts", import.meta.url), "utf8");
    assert.match(simNode, /import \{ WitnessApplier \} from "\.\.\/\.\.\/witness\/witness_node\.ts"/);
  });
});
