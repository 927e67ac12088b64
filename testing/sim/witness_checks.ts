// The witness invariants of research/witness-and-raft-safety.md §1.6, checked by the simulator's
// oracle after every event alongside the Raft checks of checkers.ts (IW5, S3 recovery, is a
// scripted scenario: witness_scenarios.test.ts). Which members are witnesses is the simulation's
// knowledge (it built them), not the core's, so a core that mislabels itself cannot hide.

import { allMembers } from "../../server/core/conf_change.ts";
import type { Message } from "../../server/core/messages.ts";
import type { ConfState, Entry, NodeId, PersistedState, Snapshot, Term } from "../../server/core/types.ts";
import type { CheckName } from "./checkers.ts";
import type { SimNodeObserver } from "./sim_node.ts";

export interface WitnessStats {
  /** Markers persisted by witnesses, and the highest marker index. */
  truncations: number;
  markerIndexMax: number;
  /** Terms a witness led, and the longest one in the witness's own ticks and in true time. */
  witnessTerms: number;
  witnessLeadTicksMax: number;
  witnessLeadMsMax: number;
}

export class WitnessChecker {
  readonly stats: WitnessStats = { truncations: 0, markerIndexMax: 0, witnessTerms: 0, witnessLeadTicksMax: 0, witnessLeadMsMax: 0 };
  private readonly witnessLedTerms = new Set<Term>();
  /** term -> the first client (or config) entry seen in it, for IW3 in either order. */
  private readonly clientEntryOfTerm = new Map<Term, string>();
  /** witness -> its current leadership: term, ticks taken as leader, true start time. */
  private readonly leading = new Map<NodeId, { term: Term; ticks: number; sinceMs: number }>();

  constructor(
    private readonly fail: (check: CheckName, detail: string) => void,
    private readonly isWitness: (id: NodeId) => boolean,
    /** W5's cap in the witness's own ticks (two election timeouts). */
    private readonly capTicks: number,
  ) {}

  /** The node observer: these checks first, then the Raft checker (which also sends). */
  observer(c: SimNodeObserver, onWitnessTruncate: (node: NodeId, marker: Snapshot) => void): SimNodeObserver {
    return {
      onSend: (m) => (this.onSend(m), c.onSend(m)),
      onApply: (n, e, h) => (this.onApply(n, e), c.onApply(n, e, h)),
      onRestoreSnapshot: (n, i, h) => c.onRestoreSnapshot(n, i, h),
      onDiskEntries: (n, es, commit) => (this.onDiskEntries(n, es), c.onDiskEntries(n, es, commit)),
      onWitnessTruncate,
    };
  }

  /** IW6: a witness holds no state image, so it never sends one. */
  onSend(m: Message): void {
    if (m.kind === "snapshot" && this.isWitness(m.from)) {
      this.fail(
        "IW6-witness-snapshot",
        `witness ${m.from} sent snapshot ${m.snapshot.metadata.term}/${m.snapshot.metadata.index} to ${m.to}`,
      );
    }
  }

  /** IW2: a witness has no state machine. */
  onApply(node: NodeId, e: Entry): void {
    if (this.isWitness(node)) this.fail("IW2-witness-applied", `witness ${node} applied ${e.term}/${e.index}`);
  }

  /** IW2: a witness (even as leader) accepts no client proposal. */
  onProposalAccepted(node: NodeId, index: number): void {
    if (this.isWitness(node)) this.fail("IW2-witness-applied", `witness ${node} accepted a client proposal at ${index}`);
  }

  /** IW3: the only entry of a witness-led term is the witness's no-op. */
  onDiskEntries(node: NodeId, entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.type === "normal" && e.data.length === 0) continue;
      const what = `${e.type} entry ${e.term}/${e.index} (on ${node})`;
      if (!this.clientEntryOfTerm.has(e.term)) this.clientEntryOfTerm.set(e.term, what);
      if (this.witnessLedTerms.has(e.term)) this.fail("IW3-witness-client-entry", `witness-led term ${e.term} holds ${what}`);
    }
  }

  /** Called after every event that touched a node (role "down" when it crashed). */
  observe(id: NodeId, role: string, term: Term, nowMs: number): void {
    if (!this.isWitness(id)) return;
    const cur = this.leading.get(id);
    if (role === "leader" && cur?.term === term) return;
    if (cur) {
      this.stats.witnessLeadMsMax = Math.max(this.stats.witnessLeadMsMax, nowMs - cur.sinceMs);
      this.leading.delete(id);
    }
    if (role !== "leader") return;
    this.leading.set(id, { term, ticks: 0, sinceMs: nowMs });
    this.stats.witnessTerms++;
    this.witnessLedTerms.add(term);
    const client = this.clientEntryOfTerm.get(term);
    if (client) this.fail("IW3-witness-client-entry", `witness ${id} leads term ${term}, which holds ${client}`);
  }

  /**
   * IW4, in the witness's own ticks (a paused or slow clock stretches true time, not ticks): call
   * before each tick is delivered. The core steps down on the cap-th tick as leader.
   */
  onTick(id: NodeId, role: string, term: Term): void {
    const cur = this.leading.get(id);
    if (!cur || role !== "leader" || cur.term !== term) return;
    cur.ticks++;
    this.stats.witnessLeadTicksMax = Math.max(this.stats.witnessLeadTicksMax, cur.ticks);
    if (cur.ticks > this.capTicks) {
      this.fail("IW4-witness-cap", `witness ${id} still leads term ${term} after ${cur.ticks} ticks (cap ${this.capTicks})`);
    }
  }

  /**
   * IW1: at the moment a witness truncates up to the marker, every non-witness member of its
   * current configuration holds that index durably (in its log with the marker's term, or under
   * its snapshot). Otherwise a later loss of the other site leaves that member unable to get the
   * entry from anyone (W3).
   *
   * `damagedOf`: for a member whose disk lied and that has not caught up since, what its disk held
   * just before the lie: the acknowledgements the floor came from stood on it (as for
   * commit-not-durable, checkers.ts damagedTermAt).
   */
  onTruncate(
    witness: NodeId,
    marker: Snapshot,
    conf: ConfState,
    durableOf: (id: NodeId) => PersistedState | null,
    damagedOf: (id: NodeId) => PersistedState | null = () => null,
  ): void {
    const { index, term } = marker.metadata;
    this.stats.truncations++;
    this.stats.markerIndexMax = Math.max(this.stats.markerIndexMax, index);
    for (const id of allMembers(conf)) {
      if (this.isWitness(id)) continue;
      const d = durableOf(id);
      if (holds(d, index, term)) continue;
      const before = damagedOf(id);
      if (before !== null && holds(before, index, term)) continue;
      const snapIndex = d?.snapshot?.metadata.index ?? 0;
      const has = d ? `snapshot ${snapIndex}, last ${d.entries[d.entries.length - 1]?.index ?? snapIndex}` : "no disk";
      this.fail("IW1-truncated-not-durable", `witness ${witness} truncated up to ${term}/${index}, not durable on ${id} (${has})`);
    }
  }
}

/** Whether a durable state holds `index` with `term` (in its log) or under its snapshot. */
function holds(d: PersistedState | null, index: number, term: number): boolean {
  if (d === null) return false;
  const snapIndex = d.snapshot?.metadata.index ?? 0;
  if (snapIndex >= index) return true;
  // Durable entries are contiguous, from their first (at or below the snapshot while retaining).
  const first = (d.logStart?.index ?? snapIndex) + 1;
  return d.entries[index - first]?.term === term;
}
