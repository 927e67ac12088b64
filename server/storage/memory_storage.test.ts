import { MemoryDisk, MemoryStorage } from "./memory_storage.ts";
import type { RaftStorage } from "./raft_storage.ts";
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
