// The one behaviour suite every RaftStorage must pass (memory twin and sqlite alike), so the
// simulator's MemoryStorage cannot drift from what production writes to disk.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssertionError } from "../../server/core/assert.ts";
import { EMPTY_CONF_STATE, EMPTY_PERSISTED_STATE } from "../../server/core/types.ts";
import type { ConfState, Entry, EntryType, HardState, Snapshot } from "../../server/core/types.ts";
import type { MemoryCorruption } from "../../server/storage/memory_storage.ts";
import { StorageCorruptError } from "../../server/storage/raft_storage.ts";
import type { RaftStorage, StorageWrite } from "../../server/storage/raft_storage.ts";

export type StorageCorruption = MemoryCorruption;

export interface StorageHarness {
  readonly store: RaftStorage;
  /** Closes the current store if open (a clean shutdown) and opens the same data again. */
  readonly reopen: () => RaftStorage;
  /** Closes whatever is open and removes the data. */
  readonly cleanup: () => void;
  /** Closes the current store if open, then damages the stored data as a disk fault would. */
  readonly corrupt?: (corruption: StorageCorruption) => void;
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

function entry(index: number, term: number, type: EntryType = "normal"): Entry {
  return { index, term, type, data: bytes(index & 0xff, term & 0xff, 0xee) };
}

function entryRange(from: number, to: number, term: number): Entry[] {
  const result: Entry[] = [];
  for (let index = from; index <= to; index++) result.push(entry(index, term));
  return result;
}

function write(parts: Partial<StorageWrite>): StorageWrite {
  return { hardState: null, snapshot: null, entries: [], ...parts };
}

function snapshot(index: number, term: number, confState: ConfState = EMPTY_CONF_STATE): Snapshot {
  return { metadata: { index, term, confState }, data: bytes(0x53, index & 0xff) };
}

const hard = (term: number, vote: string, commit: number): HardState => ({ term, vote, commit });

const CONF: ConfState = {
  voters: ["a", "b"],
  votersOutgoing: ["a", "b", "c"],
  learners: ["l"],
  learnersNext: ["c"],
  witnesses: ["w"],
  autoLeave: true,
};

function isCorrupt(pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof StorageCorruptError && pattern.test(error.message);
}

export function runStorageContract(name: string, makeStore: () => StorageHarness): void {
  /** Runs `body` on a fresh store; always cleans up. */
  function withStore(body: (harness: StorageHarness) => void): void {
    const harness = makeStore();
    try {
      body(harness);
    } finally {
      harness.cleanup();
    }
  }

  describe(`RaftStorage contract: ${name}`, () => {
    it("an empty store loads the empty state and has no identity", () => {
      withStore(({ store, reopen }) => {
        assert.deepStrictEqual(store.load(), EMPTY_PERSISTED_STATE);
        assert.equal(store.identity(), null);
        store.save(write({}));
        assert.deepStrictEqual(reopen().load(), EMPTY_PERSISTED_STATE);
      });
    });

    it("hard state round trips; a null hard state leaves it unchanged", () => {
      withStore(({ store, reopen }) => {
        store.save(write({ hardState: hard(3, "b", 0) }));
        assert.deepStrictEqual(store.load().hardState, hard(3, "b", 0));
        store.save(write({ entries: entryRange(1, 2, 3) }));
        assert.deepStrictEqual(store.load().hardState, hard(3, "b", 0));
        store.save(write({ hardState: hard(4, "", 2) }));
        assert.deepStrictEqual(reopen().load().hardState, hard(4, "", 2));
      });
    });

    it("entries round trip byte for byte as plain Uint8Arrays", () => {
      withStore(({ store, reopen }) => {
        const everyByte = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
        const backing = bytes(9, 9, 1, 2, 3, 9);
        const view = backing.subarray(2, 5); // only [1, 2, 3] belongs to the entry
        const stored: Entry[] = [
          { index: 1, term: 1, type: "normal", data: new Uint8Array(0) },
          { index: 2, term: 1, type: "config", data: everyByte },
          { index: 3, term: 2, type: "normal", data: view },
        ];
        store.save(write({ hardState: hard(2, "a", 1), entries: stored }));
        const expected = stored.map((e) => ({ ...e, data: new Uint8Array(e.data) }));
        assert.deepStrictEqual(store.load().entries, expected);
        assert.deepStrictEqual(reopen().load().entries, expected);
      });
    });

    it("appends continue the log; conflict truncation replaces the stored suffix", () => {
      withStore(({ store, reopen }) => {
        store.save(write({ hardState: hard(1, "a", 0), entries: entryRange(1, 3, 1) }));
        store.save(write({ entries: entryRange(4, 5, 1) }));
        assert.deepStrictEqual(store.load().entries, entryRange(1, 5, 1));
        store.save(write({ hardState: hard(2, "", 2), entries: entryRange(3, 4, 2) }));
        const expected = [...entryRange(1, 2, 1), ...entryRange(3, 4, 2)];
        assert.deepStrictEqual(store.load().entries, expected);
        assert.deepStrictEqual(reopen().load().entries, expected);
      });
    });

    it("committed entries may be rewritten identically but never changed", () => {
      withStore(({ store }) => {
        store.save(write({ hardState: hard(2, "a", 3), entries: entryRange(1, 5, 1) }));
        store.save(write({ entries: [...entryRange(2, 3, 1), entry(4, 2)] }));
        const before = store.load();
        assert.deepStrictEqual(before.entries, [...entryRange(1, 3, 1), entry(4, 2)]);
        assert.throws(() => store.save(write({ entries: [entry(3, 2)] })), AssertionError);
        assert.deepStrictEqual(store.load(), before);
      });
    });

    it("a save that fails a check writes nothing (one transaction)", () => {
      withStore(({ store, reopen }) => {
        store.save(write({ hardState: hard(1, "a", 1), entries: entryRange(1, 2, 1) }));
        const before = store.load();
        const gap = write({ hardState: hard(5, "b", 2), entries: [entry(4, 5)] });
        assert.throws(() => store.save(gap), AssertionError);
        const termBack = [entry(3, 1), entry(4, 0)];
        assert.throws(() => store.save(write({ entries: termBack })), AssertionError);
        assert.deepStrictEqual(store.load(), before);
        assert.deepStrictEqual(reopen().load(), before);
      });
    });

    it("refuses a hard state that goes back, votes twice or commits past the log", () => {
      withStore(({ store }) => {
        store.save(write({ hardState: hard(5, "a", 1), entries: entryRange(1, 2, 5) }));
        const refused = [hard(4, "a", 1), hard(5, "b", 1), hard(5, "a", 0), hard(5, "a", 3)];
        for (const hardState of refused) {
          assert.throws(() => store.save(write({ hardState })), AssertionError);
        }
        store.save(write({ hardState: hard(6, "b", 2) }));
        assert.deepStrictEqual(store.load().hardState, hard(6, "b", 2));
      });
    });

    it("installing a snapshot drops every entry, then appends after it", () => {
      withStore(({ store, reopen }) => {
        store.save(write({ hardState: hard(1, "a", 2), entries: entryRange(1, 5, 1) }));
        const installed = snapshot(10, 3, CONF);
        const expected = {
          hardState: hard(3, "", 10),
          snapshot: installed,
          entries: entryRange(11, 12, 3),
        };
        store.save(write(expected));
        assert.deepStrictEqual(store.load(), expected);
        assert.deepStrictEqual(reopen().load(), expected);
      });
    });

    it("installing a snapshot without entries leaves an empty log after it", () => {
      withStore(({ store, reopen }) => {
        store.save(write({ hardState: hard(1, "a", 0), entries: entryRange(1, 3, 1) }));
        store.save(write({ hardState: hard(2, "", 7), snapshot: snapshot(7, 2) }));
        const expected = { hardState: hard(2, "", 7), snapshot: snapshot(7, 2), entries: [] };
        assert.deepStrictEqual(reopen().load(), expected);
      });
    });

    it("saveSnapshotAndCompact keeps the entries above the snapshot", () => {
      withStore(({ store, reopen }) => {
        const log = [...entryRange(1, 3, 1), ...entryRange(4, 6, 2)];
        store.save(write({ hardState: hard(2, "a", 5), entries: log }));
        store.saveSnapshotAndCompact(snapshot(4, 2, CONF));
        const compacted = store.load();
        assert.deepStrictEqual(compacted.snapshot, snapshot(4, 2, CONF));
        assert.deepStrictEqual(compacted.entries, entryRange(5, 6, 2));
        let reopened = reopen();
        reopened.save(write({ entries: [entry(7, 2)] }));
        reopened = reopen();
        assert.deepStrictEqual(reopened.load().entries, entryRange(5, 7, 2));
        assert.deepStrictEqual(reopened.load().snapshot, snapshot(4, 2, CONF));
      });
    });

    it("saveSnapshotAndCompact with a log start keeps the entries after it, below the snapshot, and loads them", () => {
      withStore(({ store, reopen }) => {
        const log = [...entryRange(1, 3, 1), ...entryRange(4, 8, 2)];
        store.save(write({ hardState: hard(2, "a", 7), entries: log }));
        const start = { index: 2, term: 1, confState: CONF }; // a witness's W3 window from 2
        store.saveSnapshotAndCompact(snapshot(6, 2, CONF), start);
        const kept = [...entryRange(3, 3, 1), ...entryRange(4, 8, 2)];
        assert.deepStrictEqual(store.load().entries, kept);
        let reopened = reopen();
        const expected = { hardState: hard(2, "a", 7), snapshot: snapshot(6, 2, CONF), entries: kept, logStart: start };
        assert.deepStrictEqual(reopened.load(), expected);
        reopened.save(write({ entries: [entry(9, 2)] }));
        // A later compaction with a higher start drops the window up to it.
        const later = { index: 4, term: 2, confState: EMPTY_CONF_STATE };
        reopened.saveSnapshotAndCompact(snapshot(7, 2, CONF), later);
        reopened = reopen();
        assert.deepStrictEqual(reopened.load().entries, entryRange(5, 9, 2));
        assert.deepStrictEqual(reopened.load().logStart, later);
        // Refused: a start at or above the snapshot, one not stored, one with the wrong term.
        const bad = [
          { index: 8, term: 2, confState: CONF },
          { index: 2, term: 1, confState: CONF },
          { index: 5, term: 1, confState: CONF },
        ];
        for (const b of bad) assert.throws(() => reopened.saveSnapshotAndCompact(snapshot(8, 2, CONF), b), AssertionError);
        // Without a log start: plain compaction, the start is gone.
        reopened.saveSnapshotAndCompact(snapshot(8, 2, CONF));
        reopened = reopen();
        assert.deepStrictEqual(reopened.load(), { hardState: hard(2, "a", 7), snapshot: snapshot(8, 2, CONF), entries: [entry(9, 2)] });
      });
    });

    it("a leader's snapshot in a Ready clears the log kept below the snapshot", () => {
      withStore(({ store, reopen }) => {
        store.save(write({ hardState: hard(2, "a", 6), entries: entryRange(1, 6, 2) }));
        store.saveSnapshotAndCompact(snapshot(5, 2, CONF), { index: 2, term: 2, confState: CONF });
        store.save(write({ hardState: hard(3, "", 9), snapshot: snapshot(9, 3, CONF) }));
        assert.deepStrictEqual(reopen().load(), { hardState: hard(3, "", 9), snapshot: snapshot(9, 3, CONF), entries: [] });
      });
    });

    it("compaction refuses a snapshot beyond the log, with the wrong term, or older", () => {
      withStore(({ store }) => {
        store.save(write({ hardState: hard(2, "a", 3), entries: entryRange(1, 4, 2) }));
        store.saveSnapshotAndCompact(snapshot(2, 2));
        const before = store.load();
        for (const bad of [snapshot(5, 2), snapshot(3, 1), snapshot(1, 2)]) {
          assert.throws(() => store.saveSnapshotAndCompact(bad), AssertionError);
        }
        assert.throws(() => store.save(write({ entries: [entry(2, 2)] })), AssertionError);
        assert.deepStrictEqual(store.load(), before);
      });
    });

    it("identity is written once, refused twice and survives reopen", () => {
      withStore(({ store, reopen }) => {
        store.setIdentity({ clusterId: "c-1", nodeId: "a" });
        assert.deepStrictEqual(store.identity(), { clusterId: "c-1", nodeId: "a" });
        assert.throws(() => store.setIdentity({ clusterId: "c-2", nodeId: "b" }), /already/);
        assert.deepStrictEqual(reopen().identity(), { clusterId: "c-1", nodeId: "a" });
      });
    });

    it("callers cannot alias what the store keeps", () => {
      withStore(({ store }) => {
        const data = bytes(1, 2, 3);
        const voters = ["a"];
        const conf: ConfState = { ...EMPTY_CONF_STATE, voters };
        const firstEntry: Entry = { index: 1, term: 1, type: "normal", data };
        store.save(write({ hardState: hard(1, "a", 1), entries: [firstEntry] }));
        store.saveSnapshotAndCompact({ metadata: { index: 1, term: 1, confState: conf }, data });
        store.save(write({ entries: [{ ...firstEntry, index: 2 }] }));
        data[0] = 99;
        voters.push("z");
        const loaded = store.load();
        (loaded.entries[0]?.data as Uint8Array)[1] = 99;
        (loaded.snapshot?.metadata.confState.voters as string[] | undefined)?.push("y");
        const second = store.load();
        assert.deepStrictEqual(second.entries[0]?.data, bytes(1, 2, 3));
        assert.deepStrictEqual(second.snapshot?.metadata.confState.voters, ["a"]);
        assert.deepStrictEqual(second.snapshot?.data, bytes(1, 2, 3));
      });
    });

    it("reopen returns exactly the persisted state", () => {
      withStore(({ store, reopen }) => {
        store.setIdentity({ clusterId: "c-9", nodeId: "w" });
        const entries = [entry(6, 4, "config"), entry(7, 4)];
        store.save(write({ hardState: hard(4, "b", 6), snapshot: snapshot(5, 3, CONF), entries }));
        const before = store.load();
        const reopened = reopen();
        assert.deepStrictEqual(reopened.load(), before);
        assert.deepStrictEqual(reopened.identity(), { clusterId: "c-9", nodeId: "w" });
      });
    });

    it("refuses a store with a flipped byte, a missing entry or a damaged hard state", (t) => {
      let canCorrupt = false;
      withStore((harness) => {
        canCorrupt = harness.corrupt !== undefined;
      });
      if (!canCorrupt) {
        t.skip("this harness cannot inject corruption");
        return;
      }
      const cases: { corruption: StorageCorruption; pattern: RegExp }[] = [
        { corruption: { kind: "flipEntryByte", index: 3 }, pattern: /entries.*index 3.*checksum/ },
        { corruption: { kind: "deleteEntry", index: 3 }, pattern: /entries.*index 4 follows 2/ },
        { corruption: { kind: "deleteEntry", index: 1 }, pattern: /entries.*index 2 follows 0/ },
        { corruption: { kind: "flipHardStateTerm" }, pattern: /hard_state.*checksum/ },
      ];
      for (const { corruption, pattern } of cases) {
        withStore(({ store, reopen, corrupt }) => {
          store.save(write({ hardState: hard(2, "a", 2), entries: entryRange(1, 5, 2) }));
          corrupt?.(corruption);
          assert.throws(() => reopen().load(), isCorrupt(pattern), JSON.stringify(corruption));
        });
      }
    });
  });
}
