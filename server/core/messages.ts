// Peer messages as a tagged union on `kind`. PURE.
//
// Every message carries the sender's term. A message whose term is below the receiver's is stale
// and is dropped (answered at most with the receiver's term so a deposed leader learns it).

import type { Entry, Index, NodeId, Snapshot, Term } from "./types.ts";

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** AppendEntries. `commit` is the leader's commit index (never above what it sends). */
export interface AppendMessage extends MessageBase {
  readonly kind: "append";
  readonly prevIndex: Index;
  readonly prevTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: Index;
  /**
   * To a witness only (0 otherwise): the highest index it may truncate its log up to,
   * min(commit, lowest match of every non-witness member) — rule W3.
   */
  readonly witnessFloor: Index;
  /**
   * The leader's applied index when it computed witnessFloor: the floor bounds the membership as
   * of that index only, so a witness that has applied a membership change above it ignores the
   * floor (witness_rules.floorStillBinds; churn issue 2). Absent (a peer that does not send it) is
   * 0: such a floor binds only a witness that has applied no change since its log start.
   */
  readonly witnessFloorAppliedIndex?: Index;
}

/**
 * Answer to `append` or `snapshot`. On success `index` is the last index the follower now holds
 * durably matching the leader. On rejection `index` is the rejected prevIndex and the hint
 * (rejectHintIndex, rejectHintTerm) lets the leader skip a whole term at once (fast backtrack).
 */
export interface AppendResponseMessage extends MessageBase {
  readonly kind: "appendResponse";
  readonly index: Index;
  readonly reject: boolean;
  readonly rejectHintIndex: Index;
  readonly rejectHintTerm: Term;
  /**
   * The sender is recovering lost log data (RaftConfig.recovery): the leader does not count its
   * `index` towards a commit until an answer comes without this flag. Absent is false.
   */
  readonly recovering?: boolean;
}

/** Leader liveness plus commit propagation; `readContext` != 0 asks for a ReadIndex ack. */
export interface HeartbeatMessage extends MessageBase {
  readonly kind: "heartbeat";
  readonly commit: Index;
  readonly readContext: number;
  /** As AppendMessage.witnessFloor. */
  readonly witnessFloor: Index;
  /** As AppendMessage.witnessFloorAppliedIndex. */
  readonly witnessFloorAppliedIndex?: Index;
}

export interface HeartbeatResponseMessage extends MessageBase {
  readonly kind: "heartbeatResponse";
  readonly readContext: number;
  /** As AppendResponseMessage.recovering. */
  readonly recovering?: boolean;
}

/**
 * RequestVote or PreVote. A pre-vote carries the term the sender WOULD campaign in and never
 * changes anyone's term. `transfer` marks a campaign started by TimeoutNow, which may disturb a
 * follower that still hears from the current leader.
 */
export interface VoteMessage extends MessageBase {
  readonly kind: "vote";
  readonly preVote: boolean;
  readonly transfer: boolean;
  readonly lastIndex: Index;
  readonly lastTerm: Term;
}

export interface VoteResponseMessage extends MessageBase {
  readonly kind: "voteResponse";
  readonly preVote: boolean;
  readonly reject: boolean;
  /**
   * On every vote response, granted or refused (a recovering responder's too): the responder's
   * commit index and the term of its entry there (absent when it has none to give). A candidate
   * holding that entry (same index and term, so the same log up to it) commits up to it: it may
   * not have learned that a membership change committed, and without that it counts votes in a
   * configuration that no longer binds (raft.ts takeCommitHint).
   */
  readonly committedIndex?: Index;
  readonly committedTerm?: Term;
}

export interface SnapshotMessage extends MessageBase {
  readonly kind: "snapshot";
  readonly snapshot: Snapshot;
}

/** Leadership transfer: the receiver campaigns at once, skipping PreVote. */
export interface TimeoutNowMessage extends MessageBase {
  readonly kind: "timeoutNow";
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | SnapshotMessage
  | TimeoutNowMessage;

export type MessageKind = Message["kind"];

/** Stable one-line rendering for logs, traces and scenario scripts. */
export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.kind} term=${m.term}`;
  switch (m.kind) {
    case "append": {
      const ents = m.entries.map((e) => `${e.term}/${e.index}${e.type === "config" ? "c" : ""}`);
      const floor = m.witnessFloor > 0 ? ` floor=${m.witnessFloor}` : "";
      return `${head} prev=${m.prevTerm}/${m.prevIndex} commit=${m.commit}${floor} entries=[${ents.join(" ")}]`;
    }
    case "appendResponse": {
      const rec = m.recovering === true ? " recovering" : "";
      return m.reject
        ? `${head} reject index=${m.index} hint=${m.rejectHintTerm}/${m.rejectHintIndex}${rec}`
        : `${head} index=${m.index}${rec}`;
    }
    case "heartbeat": {
      const floor = m.witnessFloor > 0 ? ` floor=${m.witnessFloor}` : "";
      return `${head} commit=${m.commit}${floor}${m.readContext ? ` read=${m.readContext}` : ""}`;
    }
    case "heartbeatResponse":
      return `${head}${m.readContext ? ` read=${m.readContext}` : ""}${m.recovering === true ? " recovering" : ""}`;
    case "vote":
      return `${head}${m.preVote ? " pre" : ""}${m.transfer ? " transfer" : ""} last=${m.lastTerm}/${m.lastIndex}`;
    case "voteResponse":
      return `${head}${m.preVote ? " pre" : ""}${m.reject ? " reject" : " grant"}`;
    case "snapshot":
      return `${head} snapshot=${m.snapshot.metadata.term}/${m.snapshot.metadata.index}`;
    case "timeoutNow":
      return head;
  }
}
