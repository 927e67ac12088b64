// A real backup for tests of the backup format and of restore: the snapshot image of an empty
// state whose id counters are given, and the header that describes it.

import { BACKUP_FORMAT_VERSION, type BackupHeader } from "../../server/backup/backup_format.ts";
import { DEFAULT_STATE_CONFIG } from "../../server/state/limits.ts";
import { LockStateMachine } from "../../server/state/machine.ts";

export interface SampleBackupOptions {
  readonly ids?: { readonly lastToken: number; readonly lastLeaseId: number };
  readonly members?: BackupHeader["members"];
  readonly takenAtMs?: number;
}

export function sampleBackup(options: SampleBackupOptions = {}): { header: BackupHeader; image: Uint8Array } {
  const machine = new LockStateMachine(DEFAULT_STATE_CONFIG, {
    appliedIndex: 17,
    nowMs: 90_000,
    timersTerm: 3,
    ids: { ...(options.ids ?? { lastToken: 41, lastLeaseId: 0 }) },
    leases: [],
    locks: [],
    elections: [],
    sessions: [],
    idle: [],
  });
  const image = machine.snapshot();
  const tokens = machine.tokens();
  const header: BackupHeader = {
    formatVersion: BACKUP_FORMAT_VERSION,
    clusterId: "old",
    appliedIndex: 17,
    term: 3,
    tokenEpoch: tokens.epoch,
    lastToken: tokens.lastToken,
    lastLeaseId: tokens.lastLeaseId,
    imageBytes: image.length,
    members: options.members ?? [],
    takenAtMs: options.takenAtMs ?? 0,
    leaderId: "a",
  };
  return { header, image };
}
