// What the store checks at open against the evidence: the WAL's own frame chain, and the ack
// record (ack_record.ts) against the WAL and against what SQLite then loads. Every refusal is a
// StorageCorruptError that says what was expected, what was found, and what the operator can do.
//
// Refusing is the whole answer here: a member that lost data it acknowledged must not vote or
// count towards a commit with that loss (DESIGN §2). Catching up from the quorum without voting
// is a core-side recovery not built yet (issue 13, point 2); until then the member stays down.

import type { HardState, Index } from "../core/types.ts";
import type { AckRecord } from "./ack_record.ts";
import { StorageCorruptError } from "./raft_storage.ts";
import type { WalCheck } from "./wal_check.ts";

export const OPERATOR_ADVICE =
  "Do not delete files to make it start. Restore this data directory from a copy taken while the member was stopped, " +
  "or remove the member from the cluster and add a new one with a new id and an empty data directory " +
  "(a member that rejoins without voting until it has caught up is not implemented yet)";

export interface WalEvidence {
  readonly walPath: string;
  readonly recordPath: string;
  readonly record: AckRecord | null;
  readonly wal: WalCheck;
}

/** Before SQLite opens the database (it would silently act on what it reads). */
export function checkWalEvidence(evidence: WalEvidence): void {
  const { walPath, recordPath, record, wal } = evidence;
  if (wal.kind === "corrupt") {
    throw new StorageCorruptError(
      `${walPath}: corrupt at frame ${wal.frame} (byte offset ${wal.offsetBytes}): ${wal.detail}. SQLite would silently drop ` +
        `that frame and every transaction after it, acknowledged ones included; refusing to start. ${OPERATOR_ADVICE}`,
    );
  }
  if (record === null || !record.open) return; // a clean close checkpointed the WAL away
  const claims = `${recordPath} (generation ${record.generation}) says the store was open and not closed cleanly`;
  if (wal.kind === "absent") {
    throw new StorageCorruptError(
      `${walPath} is missing, but ${claims}: the WAL held acknowledged writes not yet in raft.db ` +
        `(term >= ${record.term}, last index >= ${record.lastIndex}); refusing to start. ${OPERATOR_ADVICE}`,
    );
  }
  const recorded = record.wal;
  if (recorded === null) return;
  const bytes = wal.bytes;
  const sameSalts = "salts" in wal && wal.salts.salt1 === recorded.salt1 && wal.salts.salt2 === recorded.salt2;
  // A WAL with the same salts only grows (SQLite writes a new generation, with new salts, from
  // its start); one without a readable header has lost its beginning.
  const headerless = wal.kind === "empty" || wal.kind === "headerIgnored";
  if ((sameSalts || headerless) && bytes < recorded.bytes) {
    throw new StorageCorruptError(
      `${walPath} is ${bytes} bytes, but ${claims} with a WAL of >= ${recorded.bytes} bytes ` +
        `(salts ${recorded.salt1}/${recorded.salt2}): it was truncated; refusing to start. ${OPERATOR_ADVICE}`,
    );
  }
}

/** What the store holds, to compare with the record. */
export interface StoredProgress {
  readonly hardState: HardState;
  /** The last entry's index, or the snapshot's when no entry follows it. */
  readonly lastIndex: Index;
}

/** The store must hold at least what the record says was durable. */
export function checkAgainstRecord(where: string, recordPath: string, record: AckRecord, found: StoredProgress): void {
  const losses: string[] = [];
  const { term, vote, commit } = found.hardState;
  if (term < record.term) losses.push(`term: expected >= ${record.term}, found ${term}`);
  if (term === record.term && record.vote !== "" && vote !== record.vote) {
    losses.push(`vote in term ${term}: expected "${record.vote}", found "${vote}"`);
  }
  if (commit < record.commit) losses.push(`commit index: expected >= ${record.commit}, found ${commit}`);
  if (found.lastIndex < record.lastIndex) losses.push(`last log index: expected >= ${record.lastIndex}, found ${found.lastIndex}`);
  if (losses.length === 0) return;
  throw new StorageCorruptError(
    `${where}: lost acknowledged data: ${losses.join("; ")} (from ${recordPath}, generation ${record.generation}). ` +
      `The disk dropped writes it had confirmed; this member must not vote or serve on that. ${OPERATOR_ADVICE}`,
  );
}
