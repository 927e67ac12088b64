// The disk lies (issue 13, point 4): beyond dropping unsynced writes on a crash (sim_disk.ts), a
// stopped member's disk can come back damaged in four ways, each at a rate drawn from the seed:
//
// - corrupt: a synced entry's bytes or term altered, as a flipped bit would (its stored checksum
//   is the one written, so it no longer matches);
// - lost: synced writes the disk later does not have, as a truncated WAL: the log's tail from
//   some index vanishes, and half the time the hard state rolls back to an earlier synced one too
//   (term, vote and log roll back together in SQLite's WAL);
// - misdirected: the record written for index i also landed at index j, over j's record: its
//   content and checksum are a valid record, of the wrong index (caught only because the
//   checksum covers the index, as server/storage/checksum.ts's does);
// - wiped: everything gone, the ack record with it.
//
// The ack record is never touched by the first three (sim_ack_record.ts), so the start
// (sim_startup.ts) sees what is missing. Lies happen only between two runs of a member (the
// simulation applies them at its restart, vopr.ts), and only on members the configuration can
// lose (vopr.ts withinLossBound: a quorum keeps its data, or nothing can be safe).
//
// Determinism: every draw comes from the lies' own stream (diskLieRandom), so a seed's swarm,
// nemesis and crash points are what they were; its run differs from its first lie on.

import { SeededRandom } from "../../server/core/random.ts";
import type { Entry, HardState, Index } from "../../server/core/types.ts";
import { entryChecksum } from "../../server/storage/checksum.ts";
import type { SimDisk } from "./sim_disk.ts";

export type DiskLieKind = "corrupt" | "lost" | "misdirected" | "wiped";

export const DISK_LIE_KINDS: readonly DiskLieKind[] = ["corrupt", "lost", "misdirected", "wiped"];

export interface DiskLieOptions {
  /** The share of restarts at which the stopped member's disk comes back damaged. */
  readonly perRestartProbability: number;
  /** Relative weights of the four kinds. */
  readonly weights: Readonly<Record<DiskLieKind, number>>;
}

export const NO_DISK_LIES: DiskLieOptions = {
  perRestartProbability: 0,
  weights: { corrupt: 0, lost: 0, misdirected: 0, wiped: 0 },
};

/**
 * A focused run (`--disk-lies focused`, the trustCorruptLog row of vopr_bugs.test.ts): half of
 * the restarts in the safety phase lie, corrupt, lost and misdirected alike, no wipe (a wiped
 * member is refused at start and never recovers, so it tests nothing about recovery).
 */
export const FOCUSED_DISK_LIES: DiskLieOptions = {
  perRestartProbability: 0.5,
  weights: { corrupt: 1, lost: 1, misdirected: 1, wiped: 0 },
};

/** The lies' own stream (salted unlike crashPointRandom's and the churn's). */
export function diskLieRandom(seed: number): SeededRandom {
  return new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x6c696573) >>> 0);
}

/** The seed's rates: about half the seeds lie at all; a wipe is rarer (a member lost for good). */
export function drawDiskLies(r: SeededRandom): DiskLieOptions {
  return {
    perRestartProbability: r.pick([0, 0, 0.1, 0.25, 0.5]),
    weights: { corrupt: r.pick([0, 1, 2]), lost: r.pick([0, 1, 2]), misdirected: r.pick([0, 1, 2]), wiped: r.pick([0, 0.25]) },
  };
}

export function describeDiskLies(o: DiskLieOptions): string {
  const w = o.weights;
  return `diskLieProbability=${o.perRestartProbability} diskLieWeights=${w.corrupt}/${w.lost}/${w.misdirected}/${w.wiped}`;
}

/** Whether this restart lies, and how; null: the disk is honest this time. */
export function drawLie(r: SeededRandom, o: DiskLieOptions): DiskLieKind | null {
  if (o.perRestartProbability === 0) return null;
  if (r.nextFloat() >= o.perRestartProbability) return null;
  const total = DISK_LIE_KINDS.reduce((sum, k) => sum + o.weights[k], 0);
  if (total === 0) return null;
  let roll = r.nextFloat() * total;
  for (const k of DISK_LIE_KINDS) if ((roll -= o.weights[k]) < 0) return k;
  return null;
}

/** What a lie did, for the trace and the stats. */
export interface LieOutcome {
  readonly kind: DiskLieKind;
  /** The first index it damaged (0 for a wipe or a hard-state-only loss). */
  readonly index: Index;
  readonly detail: string;
}

/**
 * Damages the stopped member's disk. Returns null when there is nothing of that kind to damage
 * (no entry above the snapshot: a snapshot is not damaged here; the lie is then not counted).
 */
export function tellLie(disk: SimDisk, kind: DiskLieKind, r: SeededRandom): LieOutcome | null {
  if (kind === "wiped") {
    disk.wipe();
    return { kind, index: 0, detail: "wiped" };
  }
  const state = disk.load();
  const snapIndex = state.snapshot?.metadata.index ?? 0;
  const first = (state.logStart?.index ?? snapIndex) + 1;
  // Only entries above the snapshot: below it a witness-retaining log would lose its start.
  const above = state.entries.filter((e) => e.index > snapIndex);
  const slot = (index: Index): number => index - first;
  if (kind === "corrupt") {
    if (above.length === 0) return null;
    const e = r.pick(above);
    const entries = [...state.entries];
    entries[slot(e.index)] = flipped(e, r);
    disk.damage({ ...state, entries }, new Map([[e.index, entryChecksum(e)]]));
    return { kind, index: e.index, detail: `entry ${e.term}/${e.index} flipped` };
  }
  if (kind === "misdirected") {
    if (above.length < 2) return null;
    const from = r.pick(above);
    const others = above.filter((e) => e.index !== from.index);
    const to = r.pick(others);
    const entries = [...state.entries];
    entries[slot(to.index)] = { ...from, index: to.index };
    disk.damage({ ...state, entries }, new Map([[to.index, entryChecksum(from)]]));
    return { kind, index: to.index, detail: `record of ${from.term}/${from.index} landed at ${to.index}` };
  }
  // lost: the tail from k vanishes; the hard state may roll back with it.
  const earlier = disk.earlierHardStates();
  const rollBack = earlier.length > 0 && r.nextFloat() < 0.5;
  if (above.length === 0 && !rollBack) return null;
  const k = above.length > 0 ? r.pick(above).index : Number.POSITIVE_INFINITY;
  const entries = state.entries.filter((e) => e.index < k);
  const lastIndex = entries.at(-1)?.index ?? snapIndex;
  const hs: HardState = rollBack ? r.pick(earlier) : state.hardState;
  const hardState = { ...hs, commit: Math.min(hs.commit, lastIndex) };
  disk.damage({ ...state, entries, hardState });
  const cut = Number.isFinite(k) ? `log cut from ${k}` : "log intact";
  const hsText = rollBack ? `, hard state back to term ${hs.term} vote "${hs.vote}"` : "";
  return { kind, index: Number.isFinite(k) ? k : 0, detail: `${cut}${hsText}` };
}

/** A flipped bit in the data (when there is any) or in the term; the entry stays well formed. */
function flipped(e: Entry, r: SeededRandom): Entry {
  if (e.data.length > 0 && r.nextFloat() < 0.5) {
    const data = new Uint8Array(e.data);
    const at = r.nextInt(data.length);
    data[at] = (data[at] ?? 0) ^ (1 << r.nextInt(8));
    return { ...e, data };
  }
  const term = e.term ^ (1 << r.nextInt(4));
  return { ...e, term: term === 0 ? e.term + 16 : term };
}
