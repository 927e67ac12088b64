// Checks on a decoded peer message from an authenticated member, after peer_codec (shape, safe
// integers, contiguous entries) and before the core. Pure.
//
// Issue 10 makes a broken invariant fatal; issue 12 says nothing a peer sends may crash or wedge
// a member. The two meet here: everything a receiver can check without its own log is checked
// before the core sees it, so what still stops a member is a breach only a broken member can
// cause (two leaders in one term). In particular:
// - Terms and indexes have headroom (TERM_MAX, INDEX_MAX): a term the receiver adopts and
//   persists always has a next term, so it can still campaign after a restart.
// - A config entry must decode as a conf change: the core asserts on one that does not when it
//   applies it, and it would be persisted first (a crash on every restart).
// - A snapshot image is decoded by the member's own checker (the state machine's decoder on
//   tenured) before it is persisted: a random, truncated or inconsistent image is refused.
// - A heartbeat may not commit beyond the receiver's log (RaftLog.commitTo asserts it): a
//   leader sends min(match, commit), so a larger one is a lie. Likewise an acknowledgement in
//   the receiver's own term beyond its log (only the receiver, as leader, sent appends in it).
//   These two depend on the receiver's state: receiverConflict drops that one message, not the
//   frame, reading the state just before the message is stepped.

import { isConfChange } from "../core/conf_change.ts";
import type { Message } from "../core/messages.ts";
import type { ConfState, Entry, SnapshotMetadata } from "../core/types.ts";
import { NODE_ID_LENGTH_MAX } from "../limits.ts";

/**
 * The largest term a peer may send. 2^48 leaves 2^53 - 2^48 terms above it, so the next term of
 * any accepted term is a safe integer, and at one election per millisecond a cluster needs 8900
 * years to reach it. A member's own term could pass it only by that many elections; then peers
 * refuse its messages (counted) rather than persist a term near 2^53.
 */
export const TERM_MAX = 2 ** 48;
/** The largest log index a peer may send: the same headroom for index + entries and commit. */
export const INDEX_MAX = 2 ** 48;

/** Null if the image may be restored (and persisted) as a snapshot with this metadata, else why not. */
export type SnapshotImageCheck = (data: Uint8Array, metadata: SnapshotMetadata) => string | null;

/**
 * tenure-witness: a witness never restores an image (WitnessNode.restoreSnapshot keeps it as
 * stored) and never sends one (W5), so no image can crash or wedge it; the metadata is still
 * checked below. tenured's check is snapshot_image_check.ts.
 */
export const witnessImageCheck: SnapshotImageCheck = () => null;

/** What the receiver knows that a message must agree with. */
export interface ReceiverView {
  /** The receiver's current term and last log index (the node's status, read just before step). */
  readonly term: number;
  readonly lastIndex: number;
  /**
   * The receiver recovers lost log data (server/core/raft.ts "Recovery"): its core takes no
   * commit from a heartbeat, and the leader's first heartbeats still carry the match it recorded
   * before the loss, so they are delivered (the answer is how the leader learns of the loss).
   */
  readonly recovering?: boolean;
}

export interface MessageCheckOptions {
  readonly checkSnapshotImage?: SnapshotImageCheck;
}

function termOk(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= TERM_MAX;
}

function indexOk(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= INDEX_MAX;
}

/** The first field of `fields` out of bounds, or null. */
function outOfBounds(kind: string, terms: Record<string, number>, indexes: Record<string, number>): string | null {
  for (const [name, v] of Object.entries(terms)) if (!termOk(v)) return `${kind}.${name} ${v} is above TERM_MAX ${TERM_MAX}`;
  for (const [name, v] of Object.entries(indexes)) if (!indexOk(v)) return `${kind}.${name} ${v} is above INDEX_MAX ${INDEX_MAX}`;
  return null;
}

const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Why a config entry's data would not apply (core/conf_change.ts decodeConfChange asserts), or null. */
export function confEntryProblem(data: Uint8Array): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(textDecoder.decode(data));
  } catch {
    return "config entry data is not JSON";
  }
  if (!isConfChange(parsed)) return "config entry data is not a conf change";
  const r = parsed as { kind: string; change?: { nodeId: string }; changes?: { nodeId: string }[] };
  const ids = r.kind === "simple" ? [r.change?.nodeId ?? ""] : r.kind === "enterJoint" ? (r.changes ?? []).map((c) => c.nodeId) : [];
  for (const id of ids) if (id.length === 0 || id.length > NODE_ID_LENGTH_MAX) return "config entry names an invalid node id";
  return null;
}

function entriesProblem(entries: readonly Entry[]): string | null {
  for (const [i, e] of entries.entries()) {
    if (!termOk(e.term) || !indexOk(e.index)) return `append.entries[${i}] term or index above the maximum`;
    if (e.type === "config") {
      const p = confEntryProblem(e.data);
      if (p !== null) return `append.entries[${i}]: ${p}`;
    }
  }
  return null;
}

/** The core's own conf-state rules (conf_change.ts finish), so a restored one is one it could make. */
export function confStateProblem(cs: ConfState): string | null {
  const voters = new Set([...cs.voters, ...cs.votersOutgoing]);
  for (const id of [...cs.learners, ...cs.learnersNext]) if (cs.voters.includes(id)) return `${id} is both voter and learner`;
  for (const id of cs.learners) if (voters.has(id)) return `${id} is both voter and learner`;
  const members = new Set([...voters, ...cs.learners, ...cs.learnersNext]);
  for (const id of cs.witnesses) if (!members.has(id)) return `witness ${id} is not a member`;
  if (cs.voters.every((id) => cs.witnesses.includes(id))) return "the configuration has only witness voters";
  if (cs.votersOutgoing.length === 0 && (cs.learnersNext.length > 0 || cs.autoLeave))
    return "learners_next or auto_leave outside a joint configuration";
  return null;
}

/** Null if `m` may go to the core, else the reason it is refused (INVALID_ARGUMENT). */
export function checkPeerMessage(m: Message, options: MessageCheckOptions = {}): string | null {
  if (!termOk(m.term)) return `term ${m.term} is above TERM_MAX ${TERM_MAX}`;
  switch (m.kind) {
    case "append": {
      const bounds = outOfBounds(
        "append",
        { prevTerm: m.prevTerm },
        { prevIndex: m.prevIndex, commit: m.commit, witnessFloor: m.witnessFloor },
      );
      if (bounds !== null) return bounds;
      if (m.prevIndex + m.entries.length > INDEX_MAX) return `append runs past INDEX_MAX ${INDEX_MAX}`;
      return entriesProblem(m.entries);
    }
    case "appendResponse":
      return outOfBounds("appendResponse", { rejectHintTerm: m.rejectHintTerm }, { index: m.index, rejectHintIndex: m.rejectHintIndex });
    case "heartbeat":
      return outOfBounds("heartbeat", {}, { commit: m.commit, witnessFloor: m.witnessFloor });
    case "vote":
      return outOfBounds("vote", { lastTerm: m.lastTerm }, { lastIndex: m.lastIndex });
    case "snapshot": {
      const md = m.snapshot.metadata;
      const bounds = outOfBounds("snapshot.metadata", { term: md.term }, { index: md.index });
      if (bounds !== null) return bounds;
      const cs = confStateProblem(md.confState);
      if (cs !== null) return `snapshot.metadata.conf_state: ${cs}`;
      const image = options.checkSnapshotImage?.(m.snapshot.data, md) ?? null;
      return image === null ? null : `snapshot image: ${image}`;
    }
    case "voteResponse": {
      if (m.committedIndex === undefined) return null;
      const term = m.committedTerm ?? 0;
      const bounds = outOfBounds("voteResponse", { committedTerm: term }, { committedIndex: m.committedIndex });
      if (bounds !== null) return bounds;
      if (term === 0 || term > m.term) return `voteResponse.committed_term ${term} must be in 1..the message's term ${m.term}`;
      return null;
    }
    case "heartbeatResponse":
    case "timeoutNow":
      return null;
  }
}

/**
 * Null if `m` agrees with what the receiver holds right now, else why it must not reach the core.
 * Read just before the message is stepped (the state the core will see), and applied to that one
 * message only: the sender may be a sound member while this one is behind or lost data, so the
 * rest of its frame is delivered.
 */
export function receiverConflict(m: Message, receiver: ReceiverView): string | null {
  // Only a heartbeat the core acts on (its term or newer) commits; a stale one is ignored.
  if (m.kind === "heartbeat" && m.term >= receiver.term && m.commit > receiver.lastIndex && receiver.recovering !== true) {
    return `heartbeat commits ${m.commit}, beyond this member's last index ${receiver.lastIndex}: a leader sends at most the match it was told`;
  }
  // In our term only we (as leader) sent appends, so nobody can have matched beyond our log.
  if (m.kind === "appendResponse" && m.term === receiver.term && !m.reject && m.index > receiver.lastIndex) {
    return `appendResponse acknowledges ${m.index}, beyond this member's last index ${receiver.lastIndex}`;
  }
  return null;
}
