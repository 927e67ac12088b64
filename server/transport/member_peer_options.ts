// The peer-transport options tenured and tenure-witness derive from their node: who may use the
// peer port (peer_admission.ts), what the inbound checks read (term, last index, role, leader,
// voters) and the term guard's lease, the election timeout. The transport starts before the
// node exists (the node needs it), so the node's status is read through a late-bound getter;
// until it is bound nobody is admissible, and frames find no handler anyway.

import type { Role } from "../core/ready.ts";
import type { ConfState, NodeId } from "../core/types.ts";
import type { GrpcPeerTransportOptions, ReceiverState } from "./grpc_peer_transport.ts";
import { isAdmissibleMember } from "./peer_admission.ts";
import type { SnapshotImageCheck } from "./peer_message_checks.ts";

/** What both NodeStatus (RaftNode) and WitnessStatus (WitnessNode) report. */
export interface MemberStatus {
  readonly term: number;
  readonly role: Role;
  readonly leader: NodeId;
  readonly lastIndex: number;
  readonly confState: ConfState;
  /** Recovering lost log data (server/core/raft.ts "Recovery"); absent is false. */
  readonly recovering?: boolean;
}

export type MemberPeerOptions = Pick<
  GrpcPeerTransportOptions,
  "requirePeerIdentity" | "isAdmissiblePeer" | "checkSnapshotImage" | "receiverState" | "termGuardLeaseMs"
>;

const BEFORE_NODE: ReceiverState = { term: 0, lastIndex: 0, role: "follower", leader: "", voters: [] };

export function memberPeerOptions(o: {
  /** Mutual TLS on the peer port (not --insecure): then every peer must prove its member id. */
  readonly tls: boolean;
  /** The election timeout of a full voter in ms (tickMs x electionTimeoutTicks). */
  readonly electionTimeoutMs: number;
  readonly checkSnapshotImage: SnapshotImageCheck;
  /** The node's status once it exists, else null. */
  readonly status: () => MemberStatus | null;
}): MemberPeerOptions {
  return {
    requirePeerIdentity: o.tls,
    isAdmissiblePeer: (id) => {
      const s = o.status();
      return s !== null && isAdmissibleMember(s, id);
    },
    checkSnapshotImage: o.checkSnapshotImage,
    receiverState: () => {
      const s = o.status();
      return s === null
        ? BEFORE_NODE
        : {
            term: s.term,
            lastIndex: s.lastIndex,
            role: s.role,
            leader: s.leader,
            voters: s.confState.voters,
            recovering: s.recovering === true,
          };
    },
    termGuardLeaseMs: o.electionTimeoutMs,
  };
}
