// What a simulated member's storage checks when it starts, the simulator's model of production's
// open-time checks (server/storage/startup_checks.ts, storage_checks.ts verifyLoadedState) with
// the recovery of issue 13 point 2 instead of a refusal:
//
// 1. No ack record: the disk was wiped (production: no identity, no record). Refused: the
//    member stays down; it may come back only under a new id, through a membership change.
// 2. Every entry's stored checksum against its content AT ITS INDEX (entryChecksum covers the
//    index, so a record that landed at another index fails as a flipped bit does). The first
//    that fails and everything after it are dropped: the log is only trusted up to there.
// 3. The log against the ack record: ending below the record's last durable index means data it
//    may have acknowledged is gone (a cut WAL, the dropped records): the core starts with
//    `recovery: { untilIndex }` (RaftConfig.recovery), the record's index or an earlier
//    unfinished recovery's target, whichever is higher (kept in the record, sim_ack_record.ts).
// 4. Term and vote never go back: when the record's term is higher (or equal with a vote the
//    disk lost), the hard state takes the record's term and vote, which it holds exactly.
//    Commit is cut to the log that is left (the member learns it again from a leader).
//
// The repaired state is written before the core starts, so a crash right after starting finds
// the same log and the same (still recorded) loss.

import type { HardState, Index, PersistedState } from "../../server/core/types.ts";
import { entryChecksum } from "../../server/storage/checksum.ts";
import { lastIndexOf, type SimDisk } from "./sim_disk.ts";

export type StartupCheck =
  | { readonly kind: "refused"; readonly detail: string }
  | {
      readonly kind: "ok";
      readonly state: PersistedState;
      readonly recovery: { readonly untilIndex: Index } | null;
      /** What was found and repaired, for the debug log (null: nothing). */
      readonly detail: string | null;
    };

export function checkAtStart(disk: SimDisk): StartupCheck {
  const record = disk.ackRecord();
  if (record === null) return { kind: "refused", detail: "no ack record and no identity: the disk was wiped" };
  const found: string[] = [];
  const loaded = disk.load();
  const snapIndex = loaded.snapshot?.metadata.index ?? 0;
  const first = (loaded.logStart?.index ?? snapIndex) + 1;
  let keep = loaded.entries.length;
  for (let i = 0; i < loaded.entries.length; i++) {
    const stored = loaded.entries[i];
    if (stored === undefined) break;
    const index = first + i;
    // The row's key is its position; the checksum was computed over the index it was written for.
    if (entryChecksum({ ...stored, index }) !== disk.storedChecksum(index, stored)) {
      found.push(`entry ${index}: checksum mismatch, dropped with the ${loaded.entries.length - i - 1} after it`);
      keep = i;
      break;
    }
  }
  const entries = keep === loaded.entries.length ? loaded.entries : loaded.entries.slice(0, keep);
  const lastIndex = entries.at(-1)?.index ?? snapIndex;
  let until = record.recoveringUntil;
  if (lastIndex < record.lastIndex) {
    found.push(`last index ${lastIndex} < ${record.lastIndex} recorded durable`);
    until = Math.max(until, record.lastIndex);
  }
  const hs = loaded.hardState;
  const voteLost = record.term === hs.term && hs.vote === "" && record.vote !== "";
  let hardState: HardState = hs;
  if (record.term > hs.term || voteLost) {
    found.push(`term ${hs.term} vote "${hs.vote}" < recorded term ${record.term} vote "${record.vote}"`);
    hardState = { ...hardState, term: record.term, vote: record.vote };
  }
  if (hardState.commit > lastIndex) hardState = { ...hardState, commit: lastIndex };
  const state: PersistedState = entries === loaded.entries && hardState === hs ? loaded : { ...loaded, entries, hardState };
  if (state !== loaded) disk.repair(state);
  const progress = { term: hardState.term, vote: hardState.vote, commit: hardState.commit, lastIndex: lastIndexOf(state) };
  disk.ackTracker()?.restart(progress, until);
  return {
    kind: "ok",
    state,
    recovery: until > 0 ? { untilIndex: until } : null,
    detail: found.length > 0 ? found.join("; ") : until > 0 ? `still recovering until ${until}` : null,
  };
}
