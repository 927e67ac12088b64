import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryDisk, MemoryStorage } from "./memory_storage.ts";
import { type RaftStorage, StorageCorruptError } from "./raft_storage.ts";
import { verifyLoadedState } from "./storage_checks.ts";
import { runStorageContract } from "../../testing/kits/storage_contract.ts";

runStorageContract("MemoryStorage", () => {
  const disk = new MemoryDisk();
  let current: RaftStorage = MemoryStorage.open(disk);
  return {
    store: current,
    reopen: () => {
      current.close();
      current = MemoryStorage.open(disk);
      return current;
    },
    cleanup: () => current.close(),
    corrupt: (corruption) => {
      current.close();
      disk.corruptForTest(corruption);
    },
  };
});

describe("verifyLoadedState with a log kept below the snapshot (churn issue 4)", () => {
  const conf = { voters: ["a"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
  const entry = (index: number, term: number) => ({ index, term, type: "normal" as const, data: new Uint8Array(0) });
  const state = (entries: ReturnType<typeof entry>[], logStart = { index: 2, term: 1, confState: conf }) => ({
    hardState: { term: 2, vote: "a", commit: 5 },
    snapshot: { metadata: { index: 5, term: 2, confState: conf }, data: new Uint8Array(0) },
    entries,
    logStart,
  });

  it("accepts entries after the log start that reach the snapshot with its term", () => {
    verifyLoadedState(state([entry(3, 1), entry(4, 2), entry(5, 2), entry(6, 2)]), "test");
  });

  it("refuses a gap after the start, a term disagreeing with the snapshot, a log short of it, a start not below it", () => {
    const bad = [
      state([entry(4, 2), entry(5, 2)]),
      state([entry(3, 1), entry(4, 1), entry(5, 1)]),
      state([entry(3, 1), entry(4, 2)]),
      state([entry(3, 0), entry(4, 2), entry(5, 2)]),
      state([entry(6, 2)], { index: 5, term: 2, confState: conf }),
    ];
    for (const s of bad) assert.throws(() => verifyLoadedState(s, "test"), StorageCorruptError);
  });
});
