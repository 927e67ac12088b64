// Checks shared by SqliteStorage and MemoryStorage, so both refuse exactly the same things.
//
// Two kinds, per the error model (style anchors 5.4):
// - assertWrite*/assertCompact*: a caller bug (a gap, a term going backwards, a committed entry
//   rewritten). They throw AssertionError BEFORE anything is written, so the store is unchanged.
// - verifyLoadedState/decodeConfState: what was read back is not a valid log. They throw
//   StorageCorruptError; a corrupt store is refused, never served.

import { assert } from "../core/assert.ts";
import { NO_NODE } from "../core/types.ts";
import type { ConfState, Entry, HardState, Index, PersistedState, Snapshot, SnapshotMetadata, Term } from "../core/types.ts";
import { StorageCorruptError } from "./raft_storage.ts";
import { OPERATOR_ADVICE } from "./startup_checks.ts";
import type { StorageIdentity, StorageWrite } from "./raft_storage.ts";

/** What the write checks need to know about the stored log, read inside the write transaction. */
export interface LogView {
  readonly hardState: HardState;
  readonly snapshot: { readonly index: Index; readonly term: Term } | null;
  /** Last stored entry index; the snapshot index when no entries; 0 for an empty store. */
  readonly lastIndex: Index;
  /** Term of the stored entry at `index`, or null when no entry is stored there. */
  termAt(index: Index): Term | null;
}

export function corruptError(where: string, table: string, detail: string): StorageCorruptError {
  return new StorageCorruptError(`${where}: table ${table}: ${detail}; refusing to serve it. ${OPERATOR_ADVICE}`);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

export function assertEntryShape(entry: Entry): void {
  assert(isCount(entry.index) && entry.index >= 1, `entry index ${entry.index} invalid`);
  assert(isCount(entry.term) && entry.term >= 1, `entry ${entry.index}: term invalid`);
  assert(entry.type === "normal" || entry.type === "config", `entry ${entry.index}: type`);
  assert(entry.data instanceof Uint8Array, `entry ${entry.index}: data is not a Uint8Array`);
}

function assertSnapshotShape(snapshot: Snapshot): void {
  const { index, term, confState } = snapshot.metadata;
  // Index 0 / term 0 is the bootstrap snapshot that carries a new cluster's first membership.
  assert(isCount(index), `snapshot index ${index} invalid`);
  assert(isCount(term) && (term >= 1 || index === 0), `snapshot term ${term} invalid at index ${index}`);
  assert(isConfState(confState), "snapshot confState invalid");
  assert(snapshot.data instanceof Uint8Array, "snapshot data is not a Uint8Array");
}

export function assertIdentityShape(identity: StorageIdentity): void {
  assert(typeof identity.clusterId === "string" && identity.clusterId !== "", "clusterId");
  assert(typeof identity.nodeId === "string" && identity.nodeId !== "", "nodeId");
}

/** Term never goes back, one vote per term, commit never goes back (Raft's persisted state). */
function assertHardStateAdvances(stored: HardState, next: HardState): void {
  assert(isCount(next.term) && isCount(next.commit), "hard state term/commit invalid");
  assert(typeof next.vote === "string", "hard state vote invalid");
  assert(next.term >= stored.term, `hard state term ${next.term} < stored ${stored.term}`);
  if (next.term === stored.term && stored.vote !== NO_NODE) {
    assert(next.vote === stored.vote, `second vote in term ${next.term}`);
  }
  assert(next.commit >= stored.commit, `commit ${next.commit} < stored ${stored.commit}`);
}

/** Entries are contiguous with non-decreasing terms. */
function assertEntriesChain(entries: readonly Entry[]): void {
  let previous: Entry | null = null;
  for (const entry of entries) {
    assertEntryShape(entry);
    if (previous !== null) {
      assert(entry.index === previous.index + 1, `entries not contiguous at ${entry.index}`);
      assert(entry.term >= previous.term, `entry ${entry.index}: term goes back`);
    }
    previous = entry;
  }
}

/** Where the appended entries land relative to the stored log (no write yet). */
function assertEntriesFit(view: LogView, entries: readonly Entry[], first: Entry): void {
  const snapshotIndex = view.snapshot?.index ?? 0;
  assert(first.index > snapshotIndex, `entry ${first.index} at or below snapshot index`);
  assert(first.index <= view.lastIndex + 1, `gap: entry ${first.index} after ${view.lastIndex}`);
  const previousTerm = first.index - 1 === snapshotIndex ? (view.snapshot?.term ?? 0) : view.termAt(first.index - 1);
  assert(previousTerm !== null, `no stored entry before ${first.index}`);
  assert(first.term >= previousTerm, `entry ${first.index}: term below the stored previous`);
  // Raft truncates only above the commit index; rewriting a committed entry with another term
  // would silently change history, so it is a bug in the caller.
  const last = entries[entries.length - 1] ?? first;
  const committedEnd = Math.min(view.hardState.commit, view.lastIndex, last.index);
  for (let index = first.index; index <= committedEnd; index++) {
    const incoming = entries[index - first.index];
    assert(incoming !== undefined, `no incoming entry ${index}`);
    assert(view.termAt(index) === incoming.term, `would rewrite committed entry ${index}`);
  }
}

/**
 * A write without fsync (StorageWrite.sync false) may change the commit index only: entries, a
 * snapshot, a term or a vote promised to a peer must be durable before the message leaves.
 */
function assertUnsyncedWriteValid(view: LogView, write: StorageWrite): void {
  assert(write.entries.length === 0 && write.snapshot === null, "entries or a snapshot written without sync");
  const next = write.hardState;
  if (next === null) return;
  assert(next.term === view.hardState.term && next.vote === view.hardState.vote, "a term or vote change written without sync");
}

/** Every check a save() needs, done before the first row is touched. */
export function assertWriteValid(view: LogView, write: StorageWrite): void {
  if (write.sync === false) assertUnsyncedWriteValid(view, write);
  if (write.hardState !== null) assertHardStateAdvances(view.hardState, write.hardState);
  assertEntriesChain(write.entries);
  const first = write.entries[0];
  const last = write.entries[write.entries.length - 1];
  if (write.snapshot !== null) {
    assertSnapshotShape(write.snapshot);
    const { index, term } = write.snapshot.metadata;
    assert(index >= (view.snapshot?.index ?? 0), `snapshot ${index} older than the stored one`);
    if (first !== undefined) {
      assert(first.index === index + 1, "entries must follow the installed snapshot");
      assert(first.term >= term, `entry ${first.index}: term below the snapshot term`);
    }
  } else if (first !== undefined) {
    assertEntriesFit(view, write.entries, first);
  }
  const lastIndexAfter = last?.index ?? write.snapshot?.metadata.index ?? view.lastIndex;
  const commit = (write.hardState ?? view.hardState).commit;
  assert(commit <= lastIndexAfter, `commit ${commit} beyond last index ${lastIndexAfter}`);
}

/**
 * A node's own snapshot: covers stored entries only and agrees with the log at its index. With
 * `logStart` (a log kept below the snapshot for a witness, churn issue 4) the entries after
 * logStart.index are kept: it must lie below the snapshot, the entry after it must be stored, and
 * its term must agree with the log (index 0 has term 0).
 */
export function assertCompactValid(view: LogView, snapshot: Snapshot, logStart: SnapshotMetadata | null): void {
  assertSnapshotShape(snapshot);
  const { index, term } = snapshot.metadata;
  if (logStart !== null) {
    const start = logStart.index;
    assert(isCount(start) && start < index, `log start ${start} not below the snapshot ${index}`);
    assert(isCount(logStart.term) && isConfState(logStart.confState), `log start ${start}: term or confState invalid`);
    assert(view.termAt(start + 1) !== null, `log start ${start}: entry ${start + 1} is not stored`);
    const storedIndex = view.snapshot?.index ?? 0;
    const termAtStart = start === 0 ? 0 : start === storedIndex ? (view.snapshot?.term ?? null) : view.termAt(start);
    assert(termAtStart === null || termAtStart === logStart.term, `log start ${start}: term ${logStart.term} disagrees with the log`);
  }
  const storedIndex = view.snapshot?.index ?? 0;
  assert(index >= storedIndex, `snapshot ${index} older than the stored ${storedIndex}`);
  assert(index <= view.lastIndex, `snapshot ${index} beyond last index ${view.lastIndex}`);
  const termThere = index === storedIndex ? (view.snapshot?.term ?? null) : view.termAt(index);
  assert(termThere === term, `snapshot term ${term} disagrees with the log at ${index}`);
}

/**
 * The loaded log must be a valid Raft log: no gaps, terms never going back, commit in range. With
 * a log start below the snapshot (kept for a witness, saveSnapshotAndCompact's logStart) the
 * entries follow the start, reach the snapshot's index and agree with its term there.
 */
export function verifyLoadedState(state: PersistedState, where: string): void {
  const snapshot = state.snapshot;
  const snapshotIndex = snapshot?.metadata.index ?? 0;
  const snapshotTerm = snapshot?.metadata.term ?? 0;
  const logStart = state.logStart;
  const retained = logStart !== undefined;
  if (retained && logStart.index >= snapshotIndex) {
    throw corruptError(where, "log_start", `log start ${logStart.index} not below the snapshot ${snapshotIndex}`);
  }
  let previousIndex = retained ? logStart.index : snapshotIndex;
  let previousTerm = retained ? logStart.term : snapshotTerm;
  for (const entry of state.entries) {
    if (entry.index !== previousIndex + 1) {
      const detail = `index ${entry.index} follows ${previousIndex} (gap or missing head)`;
      throw corruptError(where, "entries", detail);
    }
    if (entry.term < previousTerm) {
      throw corruptError(where, "entries", `index ${entry.index}: term ${entry.term} goes back`);
    }
    if (entry.index === snapshotIndex && entry.term !== snapshotTerm) {
      const detail = `index ${entry.index}: term ${entry.term} disagrees with the snapshot's ${snapshotTerm}`;
      throw corruptError(where, "entries", detail);
    }
    previousIndex = entry.index;
    previousTerm = entry.term;
  }
  if (retained && previousIndex < snapshotIndex) {
    const detail = `the log kept below the snapshot ends at ${previousIndex}, before the snapshot's ${snapshotIndex}`;
    throw corruptError(where, "entries", detail);
  }
  if (state.hardState.commit > previousIndex) {
    const detail = `commit ${state.hardState.commit} beyond last index ${previousIndex}`;
    throw corruptError(where, "hard_state", detail);
  }
}

function isNodeIdList(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function isConfState(value: unknown): value is ConfState {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    isNodeIdList(record["voters"]) &&
    isNodeIdList(record["votersOutgoing"]) &&
    isNodeIdList(record["learners"]) &&
    isNodeIdList(record["learnersNext"]) &&
    isNodeIdList(record["witnesses"]) &&
    typeof record["autoLeave"] === "boolean"
  );
}

/** Parses the stored ConfState JSON; a checksum-valid but malformed value is still corruption. */
export function decodeConfState(json: string, where: string): ConfState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw corruptError(where, "snapshot", "conf_state is not JSON");
  }
  if (!isConfState(parsed)) throw corruptError(where, "snapshot", "conf_state has a bad shape");
  return copyConfState(parsed);
}

export function isSafeCount(value: unknown): value is number {
  return isCount(value);
}

// Deep copies: a caller must never alias arrays or bytes the store keeps. `new Uint8Array(x)`
// copies (Buffer#slice would not) and yields a plain Uint8Array even from a Buffer.

export function copyConfState(confState: ConfState): ConfState {
  return {
    voters: [...confState.voters],
    votersOutgoing: [...confState.votersOutgoing],
    learners: [...confState.learners],
    learnersNext: [...confState.learnersNext],
    witnesses: [...confState.witnesses],
    autoLeave: confState.autoLeave,
  };
}

export function copyEntry(entry: Entry): Entry {
  const data = new Uint8Array(entry.data);
  return { term: entry.term, index: entry.index, type: entry.type, data };
}

export function copySnapshot(snapshot: Snapshot): Snapshot {
  const { index, term, confState } = snapshot.metadata;
  return {
    metadata: { index, term, confState: copyConfState(confState) },
    data: new Uint8Array(snapshot.data),
  };
}

export function copyHardState(hardState: HardState): HardState {
  return { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
}
