import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EPOCH_SPAN } from "../state/id_allocator.ts";
import { LockStateMachine } from "../state/machine.ts";
import { readIncarnation } from "../storage/incarnation.ts";
import { SqliteStorage } from "../storage/sqlite_storage.ts";
import { sampleBackup } from "../../testing/kits/backup_samples.ts";
import { encodeBackupFile, type BackupHeader } from "./backup_format.ts";
import { restoreEpochMin, restoreMember } from "./restore.ts";

const root = mkdtempSync(join(tmpdir(), "tenure-restore-test-"));
let fileNo = 0;

/** Writes a backup file of an empty state whose counters are `ids`; returns its path. */
function backupFile(ids: { lastToken: number; lastLeaseId: number }, edit: (h: BackupHeader) => BackupHeader = (h) => h): string {
  const { header, image } = sampleBackup({ ids });
  const path = join(root, `b${fileNo++}.bak`);
  writeFileSync(path, encodeBackupFile(edit(header), image));
  return path;
}

const MEMBERS = [{ id: "a" }, { id: "b" }, { id: "c" }];

function restoreInto(dir: string, fromFile: string, id = "a", clusterId = "new") {
  return restoreMember({ fromFile, dataDir: join(root, dir), id, clusterId, members: MEMBERS });
}

describe("restore", () => {
  after(() => rmSync(root, { recursive: true, force: true }));

  it("raises the epoch two above the backup's highest id: above anything 2^32 later grants reach", () => {
    assert.equal(restoreEpochMin({ lastToken: 41, lastLeaseId: 0 }), 2);
    // Near the top of epoch 0, E + 1 (what restoreFromBackup alone gives) is 5 grants away.
    const nearTop = EPOCH_SPAN - 5;
    assert.equal(restoreEpochMin({ lastToken: nearTop, lastLeaseId: 0 }), 2);
    const summary = restoreInto("near-top", backupFile({ lastToken: nearTop, lastLeaseId: 0 }));
    assert.equal(summary.epoch, 2);
    assert.ok(summary.firstTokenMin > nearTop + EPOCH_SPAN, "the old cluster needs over 2^32 more grants to reach it");
    // A lease-id counter ahead of the tokens counts too.
    assert.equal(restoreEpochMin({ lastToken: 3, lastLeaseId: 5 * EPOCH_SPAN + 9 }), 7);
  });

  it("writes a bootstrapped member of the new cluster holding the backup's state", () => {
    const file = backupFile({ lastToken: 41, lastLeaseId: 0 });
    const summary = restoreInto("member-a", file);
    assert.deepEqual(summary.voters, ["a", "b", "c"]);
    const storage = SqliteStorage.open({ dataDir: join(root, "member-a") });
    try {
      assert.deepEqual(storage.identity(), { clusterId: "new", nodeId: "a" });
      const state = storage.load();
      const snap = state.snapshot;
      assert.ok(snap !== null && snap !== undefined);
      assert.equal(snap.metadata.index, 17);
      assert.deepEqual(snap.metadata.confState.voters, ["a", "b", "c"]);
      assert.equal(state.hardState.commit, 17);
      const machine = LockStateMachine.restore(snap.data);
      assert.equal(machine.appliedIndex(), 17);
      assert.equal(machine.tokens().epoch, 2);
      assert.equal(machine.tokens().lastToken, 2 * EPOCH_SPAN);
      assert.equal(machine.timersTerm(), 0, "the new cluster's first leader re-arms every timer");
    } finally {
      storage.close();
    }
  });

  it("every member restored from the same file gets the same Raft state, byte for byte", () => {
    const file = backupFile({ lastToken: 1234, lastLeaseId: 7 });
    restoreInto("same-a", file, "a");
    restoreInto("same-b", file, "b");
    const snapshotOf = (dir: string): unknown => {
      const s = SqliteStorage.open({ dataDir: join(root, dir) });
      try {
        const state = s.load();
        return { hardState: state.hardState, snapshot: state.snapshot, entries: state.entries };
      } finally {
        s.close();
      }
    };
    assert.deepEqual(snapshotOf("same-b"), snapshotOf("same-a"));
    // Each restored member has an incarnation of its own, made with its data directory.
    const incarnations = ["same-a", "same-b"].map((dir) => readIncarnation(join(root, dir)));
    assert.ok(
      incarnations.every((r) => r.kind === "ok"),
      JSON.stringify(incarnations),
    );
    assert.notEqual(
      incarnations[0]?.kind === "ok" ? incarnations[0].value : "",
      incarnations[1]?.kind === "ok" ? incarnations[1].value : "",
    );
  });

  it("refuses a non-empty data dir, the old cluster id, a member list without this member, a damaged file", () => {
    const file = backupFile({ lastToken: 41, lastLeaseId: 0 });
    mkdirSync(join(root, "used"));
    writeFileSync(join(root, "used", "raft.db"), "x");
    assert.throws(
      () => restoreInto("used", file),
      /--data-dir .*used is not empty \(raft\.db\): a restore initialises a fresh directory only/,
    );
    assert.throws(
      () => restoreInto("old-id", file, "a", "old"),
      /--cluster-id old is the backed-up cluster's id: a restore starts a NEW cluster/,
    );
    assert.throws(() => restoreInto("no-self", file, "d"), /--members must include this member's --id d/);
    const damaged = Buffer.from(readFileSync(file));
    damaged[damaged.length - 40] = (damaged[damaged.length - 40] ?? 0) ^ 0xff;
    writeFileSync(join(root, "damaged.bak"), damaged);
    assert.throws(() => restoreInto("from-damaged", join(root, "damaged.bak")), /fails its SHA-256 checksum/);
    assert.throws(() => restoreInto("missing", join(root, "nope.bak")), /cannot read --from .*nope\.bak/);
  });

  it("refuses a header that does not describe its image", () => {
    const file = backupFile({ lastToken: 41, lastLeaseId: 0 }, (h) => ({ ...h, lastToken: 40 }));
    assert.throws(() => restoreInto("lying-header", file), /the header \(applied 17, last token 40, epoch 0\) does not describe its image/);
  });
});
