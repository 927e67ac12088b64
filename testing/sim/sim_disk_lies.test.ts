// The disk lies (sim_disk_lies.ts), the ack record that sees them (sim_ack_record.ts) and the start
// that repairs and recovers (sim_startup.ts): each lie on a disk written through SimStorage as the
// Ready loop writes it, then what the member's next start finds.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bootstrapState } from "../../server/core/bootstrap.ts";
import { makeRaftConfig } from "../../server/core/config.ts";
import { SeededRandom } from "../../server/core/random.ts";
import type { Entry, HardState } from "../../server/core/types.ts";
import { checksumOf, entryChecksum } from "../../server/storage/checksum.ts";
import { EXACT_ACK_POLICY, PRODUCTION_ACK_POLICY, type SimAckPolicy } from "./sim_ack_record.ts";
import { SimDisk } from "./sim_disk.ts";
import { diskLieRandom, drawDiskLies, drawLie, tellLie, type DiskLieKind } from "./sim_disk_lies.ts";
import { SimNode } from "./sim_node.ts";
import { checkAtStart } from "./sim_startup.ts";
import { SimStorage } from "./sim_storage.ts";

const text = new TextEncoder();

function entry(index: number, term: number): Entry {
  return { index, term, type: "normal", data: text.encode(`e${index}`) };
}

/** A disk of member a of {a, b, c} holding entries 1..n (term 2 from 5 on), hard state (term 3, vote b, commit 4). */
function writtenDisk(
  n: number,
  policy: SimAckPolicy = EXACT_ACK_POLICY,
  nowMs: () => number = () => 0,
): { disk: SimDisk; storage: SimStorage } {
  const disk = new SimDisk(bootstrapState(["a", "b", "c"]), { ackPolicy: policy, nowMs });
  const storage = new SimStorage("a", disk);
  storage.save({ snapshot: null, entries: [], hardState: { term: 1, vote: "a", commit: 0 } });
  storage.save({ snapshot: null, entries: [], hardState: { term: 3, vote: "b", commit: 0 } });
  for (let i = 1; i <= n; i++) storage.save({ snapshot: null, entries: [entry(i, i < 5 ? 1 : 2)], hardState: null });
  storage.save({ snapshot: null, entries: [], hardState: { term: 3, vote: "b", commit: 4 } });
  return { disk, storage };
}

/** Tells one lie of `kind` with the first seed whose draws apply it (every kind applies to a 10-entry log). */
function lie(disk: SimDisk, kind: DiskLieKind, seed = 1): string {
  const outcome = tellLie(disk, kind, new SeededRandom(seed));
  assert.ok(outcome, `${kind} told nothing`);
  return outcome.detail;
}

describe("the ack record (production's ack_tracker rules)", () => {
  it("takes term and vote at once, the watermark every watermarkEntries, and is lowered before a save that shortens the log", () => {
    const { disk, storage } = writtenDisk(10, PRODUCTION_ACK_POLICY);
    const r = disk.ackRecord();
    assert.deepEqual([r?.term, r?.vote], [3, "b"], "term and vote exact");
    assert.deepEqual([r?.lastIndex, r?.commit], [0, 0], "10 entries and a commit are under the 256-entry watermark: not yet recorded");
    storage.save({ snapshot: null, entries: [], hardState: { term: 4, vote: "", commit: 4 } });
    assert.deepEqual([disk.ackRecord()?.term, disk.ackRecord()?.lastIndex], [4, 10], "a term change writes the whole progress");
    const exact = writtenDisk(10).disk.ackRecord();
    // The simulator's default: the last index exact at every save (a commit-only move waits, as in production).
    assert.deepEqual([exact?.lastIndex, exact?.commit], [10, 0]);
    // A conflicting append at 7 leaves the log at 7: lowered first (exact record at 10 -> 7).
    const { disk: d2, storage: s2 } = writtenDisk(10);
    s2.save({ snapshot: null, entries: [entry(7, 3)], hardState: null });
    assert.equal(d2.ackRecord()?.lastIndex, 7);
  });

  it("catches the watermark up after watermarkIntervalMs (the timer), and a crash stops the timer", () => {
    let now = 0;
    const { disk } = writtenDisk(10, PRODUCTION_ACK_POLICY, () => now);
    now = 999;
    disk.ackTracker()?.poll();
    assert.equal(disk.ackRecord()?.lastIndex, 0);
    now = 1000;
    disk.ackTracker()?.poll();
    assert.equal(disk.ackRecord()?.lastIndex, 10);
    const { disk: crashed } = writtenDisk(10, PRODUCTION_ACK_POLICY, () => now);
    crashed.crash();
    now = 5000;
    crashed.ackTracker()?.poll();
    assert.equal(crashed.ackRecord()?.lastIndex, 0, "the process is gone, and its timer with it");
  });
});

describe("the disk lies and the start that sees them", () => {
  it("corrupt: a flipped entry fails its checksum; it and everything after it are dropped, the member recovers up to the recorded index", () => {
    const { disk } = writtenDisk(10);
    const record = disk.ackRecord();
    const detail = lie(disk, "corrupt");
    assert.equal(disk.ackRecord(), record, "a lie never touches the ack record");
    const at = Number(/\/(\d+) flipped/.exec(detail)?.[1]);
    const check = checkAtStart(disk);
    assert.equal(check.kind, "ok");
    if (check.kind !== "ok") return;
    assert.equal(check.state.entries.at(-1)?.index ?? 0, at - 1, detail);
    assert.deepEqual(check.recovery, { untilIndex: 10 });
    assert.equal(disk.load(), check.state, "the repaired state is what the disk holds before the core starts");
  });

  it("misdirected: a valid record at the wrong index; only the index in the checksum catches it", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { disk } = writtenDisk(10);
      const detail = lie(disk, "misdirected", seed);
      const [, fromIndex, toIndex] = /of \d+\/(\d+) landed at (\d+)/.exec(detail)?.map(Number) ?? [];
      assert.ok(fromIndex !== undefined && toIndex !== undefined);
      const landed = disk.load().entries[toIndex - 1];
      assert.ok(landed);
      // The record is intact: its content verifies at the index it was written for ...
      assert.equal(entryChecksum({ ...landed, index: fromIndex }), disk.storedChecksum(toIndex, landed));
      // ... and a checksum without the index would pass it.
      const noIndex = (e: Entry): number => checksumOf(["entry", e.term, e.type, e.data]);
      const written = entry(fromIndex, fromIndex < 5 ? 1 : 2);
      assert.equal(noIndex(landed), noIndex(written));
      const check = checkAtStart(disk);
      assert.ok(check.kind === "ok" && check.state.entries.length === toIndex - 1, `seed ${seed}: ${detail}`);
      assert.deepEqual(check.kind === "ok" ? check.recovery : null, { untilIndex: 10 });
    }
  });

  it("lost: the tail vanishes and the hard state rolls back; term and vote come back from the record, the member recovers", () => {
    let rolledBack = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const { disk } = writtenDisk(10);
      const detail = lie(disk, "lost", seed);
      const lostHs: HardState = disk.load().hardState;
      if (lostHs.term < 3 || lostHs.vote !== "b") rolledBack++;
      const check = checkAtStart(disk);
      assert.ok(check.kind === "ok", detail);
      if (check.kind !== "ok") return;
      assert.ok(check.state.entries.length < 10, detail);
      assert.deepEqual(check.recovery, { untilIndex: 10 });
      assert.deepEqual([check.state.hardState.term, check.state.hardState.vote], [3, "b"], `seed ${seed}: term and vote never go back`);
      assert.ok(check.state.hardState.commit <= (check.state.entries.at(-1)?.index ?? 0));
    }
    assert.ok(rolledBack > 3, `the hard state rolled back in only ${rolledBack} of 20`);
  });

  it("wiped: no ack record, no identity: the start is refused", () => {
    const { disk } = writtenDisk(10);
    lie(disk, "wiped");
    assert.equal(disk.ackRecord(), null);
    assert.equal(checkAtStart(disk).kind, "refused");
  });

  it("an honest disk starts as it was, without recovery", () => {
    const { disk } = writtenDisk(10);
    const before = disk.load();
    const check = checkAtStart(disk);
    assert.ok(check.kind === "ok" && check.recovery === null && check.state === before && check.detail === null);
  });

  it("a recovery survives a crash in the middle of it (the member's own saves lower lastIndex) and ends when the core caught up", () => {
    const { disk } = writtenDisk(10);
    lie(disk, "corrupt");
    const first = checkAtStart(disk);
    assert.ok(first.kind === "ok");
    const storage = new SimStorage("a", disk);
    // Catching up from a leader: a conflicting entry at 3 shortens the log (the record is lowered to 3).
    storage.save({ snapshot: null, entries: [entry(3, 3)], hardState: null });
    assert.equal(disk.ackRecord()?.lastIndex, 3);
    disk.crash();
    const again = checkAtStart(disk);
    assert.deepEqual(again.kind === "ok" ? again.recovery : null, { untilIndex: 10 });
    disk.ackTracker()?.recoveryDone();
    const done = checkAtStart(disk);
    assert.deepEqual(done.kind === "ok" ? done.recovery : undefined, null);
  });

  it("a SimNode whose disk lied starts its core recovering, and records the end once the core caught up", () => {
    const node = new SimNode({
      id: "a",
      initial: bootstrapState(["a", "b", "c"]),
      makeConfig: (appliedIndex, recovery) => makeRaftConfig({ id: "a", random: new SeededRandom(1), appliedIndex, recovery }),
      snapshotEveryEntries: 1000,
      sendBeforePersist: false,
      observer: { onSend: () => {}, onApply: () => {}, onRestoreSnapshot: () => {}, onDiskEntries: () => {} },
    });
    const storage = new SimStorage("a", node.disk);
    for (let i = 1; i <= 6; i++)
      storage.save({ snapshot: null, entries: [entry(i, 1)], hardState: i === 1 ? { term: 1, vote: "", commit: 0 } : null });
    tellLie(node.disk, "lost", new SeededRandom(2));
    assert.equal(node.start(), true);
    assert.equal(node.startedRecovering, 6);
    assert.equal(node.core?.recovering(), true);
    // Leader b of term 1 verifies the whole log up to 6: the core ends its recovery, the disk forgets it.
    const entries = Array.from({ length: 6 }, (_, i) => entry(i + 1, 1));
    node.core?.step({ kind: "append", from: "b", to: "a", term: 1, prevIndex: 0, prevTerm: 0, entries, commit: 0, witnessFloor: 0 });
    node.processReadies();
    assert.equal(node.core?.recovering(), false);
    assert.equal(node.disk.ackRecord()?.recoveringUntil, 0);
  });
});

describe("the seed's lie rates", () => {
  it("come from their own stream and vary over seeds; every kind is drawn", () => {
    const a = drawDiskLies(diskLieRandom(7));
    assert.deepEqual(drawDiskLies(diskLieRandom(7)), a);
    const kinds = new Set<DiskLieKind>();
    let lying = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const r = diskLieRandom(seed);
      const o = drawDiskLies(r);
      if (o.perRestartProbability > 0) lying++;
      for (let i = 0; i < 20; i++) {
        const k = drawLie(r, o);
        if (k !== null) kinds.add(k);
      }
    }
    assert.ok(lying > 60 && lying < 160, `${lying} of 200 seeds lie`);
    assert.deepEqual([...kinds].sort(), ["corrupt", "lost", "misdirected", "wiped"]);
  });
});
