// What the store checks at open against the evidence: the WAL's own frame chain, and the ack
// record (ack_record.ts) against the WAL and against what SQLite then loads. A finding is a value
// (WalFinding, the list of losses); sqlite_storage.ts decides what to do with it:
//
// - with an intact ack record, lost or damaged log data is RECOVERED (README "Recovery"): the
//   evidence is kept, the store is cut back to what is provably intact (or rebuilt empty), term
//   and vote are raised to the record's, and the member starts in recovery (RaftConfig.recovery):
//   it does not vote or count towards a commit until it has caught up from a leader to the last
//   index it had acknowledged (Protocol-Aware Recovery, FAST 2018);
// - without one (lost, damaged, or a store older than ack records), nothing bounds what it
//   acknowledged or whom it voted for: it refuses, with REPLACE_ADVICE.

import type { HardState, Index } from "../core/types.ts";
import type { AckRecord } from "./ack_record.ts";
import type { WalCheck } from "./wal_check.ts";

/**
 * What an operator can do when the member refuses to start. The refusals that remain are the
 * ones recovery cannot make safe: what this member acknowledged, or whom it voted for, is unknown.
 */
export const OPERATOR_ADVICE =
  "A member whose log data is lost or damaged recovers by itself when its ack record is intact (it keeps the evidence " +
  "and rejoins without voting until it has caught up; server/storage/README.md, Recovery); this one cannot, because " +
  "what it acknowledged or voted for is not known. Do not delete files to make it start. Restore this data directory " +
  "from a copy taken while the member was stopped, or replace the member: on the leader call " +
  'tenure.v1.Cluster/ReplaceMember {"old_node_id": "<this id>", "new_node_id": "<a new id>"} (or RemoveMember ' +
  '{"node_id": "<this id>"}, then AddMember {"node_id": "<a new id>"}) and start the new member with an empty data ' +
  "directory; a member that lost its votes must not rejoin under its old id";

export interface WalEvidence {
  readonly walPath: string;
  readonly recordPath: string;
  readonly record: AckRecord | null;
  readonly wal: WalCheck;
}

/** What the WAL shows before SQLite opens it (SQLite would silently act on what it reads). */
export type WalFinding =
  /** Damage followed by a later commit: SQLite would drop acknowledged transactions. */
  | { readonly kind: "corrupt"; readonly detail: string; readonly cutAtBytes: number }
  /** The record says the store was open (so the WAL existed), but there is none. */
  | { readonly kind: "missing"; readonly detail: string }
  /** Same salts as recorded, fewer bytes: cut short. */
  | { readonly kind: "truncated"; readonly detail: string };

export function assessWal(evidence: WalEvidence): WalFinding | null {
  const { walPath, recordPath, record, wal } = evidence;
  if (wal.kind === "corrupt") {
    return {
      kind: "corrupt",
      detail:
        `${walPath}: corrupt at frame ${wal.frame} (byte offset ${wal.offsetBytes}): ${wal.detail}. SQLite would silently drop ` +
        "that frame and every transaction after it, acknowledged ones included",
      cutAtBytes: wal.cutAtBytes,
    };
  }
  if (record === null || !record.open) return null; // a clean close checkpointed the WAL away
  const claims = `${recordPath} (generation ${record.generation}) says the store was open and not closed cleanly`;
  if (wal.kind === "absent") {
    return {
      kind: "missing",
      detail:
        `${walPath} is missing, but ${claims}: the WAL held acknowledged writes not yet in raft.db ` +
        `(term >= ${record.term}, last index >= ${record.lastIndex})`,
    };
  }
  const recorded = record.wal;
  if (recorded === null) return null;
  const bytes = wal.bytes;
  const sameSalts = "salts" in wal && wal.salts.salt1 === recorded.salt1 && wal.salts.salt2 === recorded.salt2;
  // A WAL with the same salts only grows (SQLite writes a new generation, with new salts, from
  // its start); one without a readable header has lost its beginning.
  const headerless = wal.kind === "empty" || wal.kind === "headerIgnored";
  if ((sameSalts || headerless) && bytes < recorded.bytes) {
    return {
      kind: "truncated",
      detail:
        `${walPath} is ${bytes} bytes, but ${claims} with a WAL of >= ${recorded.bytes} bytes ` +
        `(salts ${recorded.salt1}/${recorded.salt2}): it was truncated`,
    };
  }
  return null;
}

/** What the store holds, to compare with the record. */
export interface StoredProgress {
  readonly hardState: HardState;
  /** The last entry's index, or the snapshot's when no entry follows it. */
  readonly lastIndex: Index;
}

/** Everything the store holds less of than the record says was durable (empty: nothing lost). */
export function lossesAgainstRecord(record: AckRecord, found: StoredProgress): string[] {
  const losses: string[] = [];
  const { term, vote, commit } = found.hardState;
  if (term < record.term) losses.push(`term: expected >= ${record.term}, found ${term}`);
  if (term === record.term && record.vote !== "" && vote !== record.vote) {
    losses.push(`vote in term ${term}: expected "${record.vote}", found "${vote}"`);
  }
  if (commit < record.commit) losses.push(`commit index: expected >= ${record.commit}, found ${commit}`);
  if (found.lastIndex < record.lastIndex) losses.push(`last log index: expected >= ${record.lastIndex}, found ${found.lastIndex}`);
  return losses;
}

/** One line for a log or an error: what was lost, against which record. */
export function describeLosses(recordPath: string, record: AckRecord, losses: readonly string[]): string {
  return `lost acknowledged data: ${losses.join("; ")} (from ${recordPath}, generation ${record.generation})`;
}

/**
 * The hard state a recovering store must start from: term and vote never go back, so when the
 * record's (exact: rewritten on every change) are ahead of the store's, the record's win; the
 * commit index stays the store's (a leader re-sends what it committed). null: nothing to raise.
 */
export function raisedHardState(record: AckRecord, stored: HardState): HardState | null {
  const behind = record.term > stored.term || (record.term === stored.term && record.vote !== "" && stored.vote !== record.vote);
  return behind ? { term: record.term, vote: record.vote, commit: stored.commit } : null;
}

/** A record that claims nothing (a store that never held Raft state): no loss can be shown against it. */
export function recordClaimsNothing(record: AckRecord): boolean {
  return record.term === 0 && record.vote === "" && record.commit === 0 && record.lastIndex === 0;
}
