// The inbound checks of GrpcPeerTransport that come before and after decoding, in one place:
// who the sender is (its certificate's member id against the id it sends from, and whether that
// member is admissible now), frames that do not deserialize or are too large, and the
// validation of decoded messages (peer_message_checks.ts). Each refusal is a gRPC status, is
// counted in the transport's stats and logged at most once per interval per kind and sender.
// Nothing refused here reaches the node. With incarnations (peer_incarnations.ts), a stream
// whose sender's incarnation changed under its id, or that believes this member has another
// incarnation, is refused too (FAILED_PRECONDITION, trailer INCARNATION_REFUSAL_HEADER).

import * as grpc from "@grpc/grpc-js";
import type { Message } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import type { LogLimiter } from "./log_limiter.ts";
import { checkClaim, commonNameOf, memberIdsOf, memberOfCertificate, type IdentityRefusal } from "./peer_identity.ts";
import { checkPeerMessage, type MessageCheckOptions } from "./peer_message_checks.ts";
import {
  INCARNATION_HEADER,
  INCARNATION_REFUSAL_HEADER,
  PEER_INCARNATION_HEADER,
  addresseeMismatch,
  changedReason,
  wipedReason,
  type IncarnationRefusalSide,
  type PeerIncarnations,
} from "./peer_incarnations.ts";

/** A refusal's status; `metadata` goes out as its trailers. */
export type Refusal = { readonly code: grpc.status; readonly details: string; readonly metadata?: grpc.Metadata };
type ServerCall = grpc.ServerReadableStream<unknown, unknown>;

/** What a frame that could not be deserialized becomes, so the handler refuses it with a status. */
export class UndecodableFrame {
  constructor(
    readonly code: grpc.status,
    readonly reason: string,
  ) {}
}

export interface InboundCounters {
  identityRefusals: number;
  undecodableFrames: number;
  invalidMessages: number;
  incarnationRefusals: number;
}

export interface InboundGuardOptions {
  readonly requirePeerIdentity: boolean;
  readonly isAdmissiblePeer: (memberId: NodeId) => boolean;
  readonly checks: MessageCheckOptions;
  readonly messageBytesMax: number;
  readonly counters: InboundCounters;
  readonly limiter: LogLimiter;
  /** This member's incarnation and what it remembers of its peers'; absent: not checked. */
  readonly incarnations?: PeerIncarnations;
}

/** A stream's sender: its certified member id, or null when identity is not required. */
export type StreamSender = { readonly memberId: NodeId | null };

export class InboundGuard {
  constructor(private readonly options: InboundGuardOptions) {}

  /**
   * gRPC's own limit is set above messageBytesMax (server side) so that a frame a little too
   * large reaches this and is counted; one beyond gRPC's limit is refused by gRPC before it is
   * buffered (RESOURCE_EXHAUSTED, not counted here).
   */
  deserializer(inner: (bytes: Buffer) => unknown): (bytes: Buffer) => unknown {
    return (bytes) => {
      if (bytes.byteLength > this.options.messageBytesMax) {
        this.options.counters.undecodableFrames += 1;
        return new UndecodableFrame(
          grpc.status.RESOURCE_EXHAUSTED,
          `frame of ${bytes.byteLength} bytes is above messageBytesMax ${this.options.messageBytesMax}`,
        );
      }
      try {
        return inner(bytes);
      } catch (err) {
        this.options.counters.undecodableFrames += 1;
        return new UndecodableFrame(grpc.status.INVALID_ARGUMENT, `undecodable frame: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
  }

  /** The refusal of a frame that did not deserialize, or null for a decoded one. */
  undecodable(raw: unknown): Refusal | null {
    return raw instanceof UndecodableFrame ? { code: raw.code, details: raw.reason } : null;
  }

  /**
   * At the start of a stream, before any frame: with requirePeerIdentity the certificate must
   * name one member and that member must be admissible. With incarnations, our own goes back in
   * the response headers, and the stream is refused if it names another incarnation for us or
   * (its member known) if its member's incarnation changed.
   */
  streamSender(call: ServerCall): StreamSender | Refusal {
    let memberId: NodeId | null = null;
    if (this.options.requirePeerIdentity) {
      const cert = call.getAuthContext()?.sslPeerCertificate;
      const r = memberOfCertificate(cert);
      if ("code" in r) return this.refuseIdentity(call, null, r);
      const claim = checkClaim({ memberId: r.memberId, claimed: null, isAdmissible: this.options.isAdmissiblePeer });
      if (claim !== null) return this.refuseIdentity(call, null, claim);
      memberId = r.memberId;
    }
    const incarnations = this.options.incarnations;
    if (incarnations === undefined) return { memberId };
    // Our incarnation in the response headers: how the sender learns it (a greeting opens a
    // stream for just that).
    const headers = new grpc.Metadata();
    headers.set(INCARNATION_HEADER, incarnations.own);
    call.sendMetadata(headers);
    const wrongAddressee = this.checkAddressee(call, memberId, incarnations);
    if (wrongAddressee !== null) return wrongAddressee;
    // Without identity the sender's id is known only from its first frame (checkSender).
    return memberId === null ? { memberId } : (this.checkIncarnation(call, memberId, incarnations) ?? { memberId });
  }

  /**
   * Every frame (and snapshot header): the id it is sent from must be the stream's member, still
   * admissible; and that id's incarnation must be the one remembered (recorded on first use).
   */
  checkSender(call: ServerCall, sender: StreamSender, claimed: unknown): Refusal | null {
    const claimedId = typeof claimed === "string" ? claimed : "";
    if (sender.memberId !== null) {
      const claim = checkClaim({ memberId: sender.memberId, claimed: claimedId, isAdmissible: this.options.isAdmissiblePeer });
      if (claim !== null) return this.refuseIdentity(call, claimedId, claim);
    }
    const incarnations = this.options.incarnations;
    // Per frame too: the id may have been forgotten and re-learned (a new member) since the stream opened.
    return incarnations === undefined ? null : this.checkIncarnation(call, sender.memberId ?? claimedId, incarnations);
  }

  /** The checks of peer_message_checks.ts on a decoded frame, all or nothing. */
  checkMessages(messages: readonly Message[]): Refusal | null {
    for (const [i, m] of messages.entries()) {
      const problem = checkPeerMessage(m, this.options.checks);
      if (problem === null) continue;
      this.options.counters.invalidMessages += 1;
      return { code: grpc.status.INVALID_ARGUMENT, details: `messages[${i}] (${m.kind} from ${m.from}): ${problem}` };
    }
    return null;
  }

  /** The sender believes we have another incarnation: it remembers the member we replaced. */
  private checkAddressee(call: ServerCall, from: NodeId | null, incarnations: PeerIncarnations): Refusal | null {
    const believed = headerOf(call, PEER_INCARNATION_HEADER);
    if (believed === null || !addresseeMismatch(incarnations.own, believed)) return null;
    const peer = from ?? call.getPeer();
    const reason = wipedReason({ self: incarnations.selfId, own: incarnations.own, peer, believed: believed.slice(0, 64) });
    // The line an operator must find on the wiped member: it says what happened and what to do.
    this.options.limiter.maybeLog(`incarnation_refused_by_peer:${peer}:in`, { event: "incarnation_refused_by_peer", peer, reason });
    return this.refuseIncarnation("receiver", reason);
  }

  private checkIncarnation(call: ServerCall, id: NodeId, incarnations: PeerIncarnations): Refusal | null {
    const v = incarnations.checkSender(id, headerOf(call, INCARNATION_HEADER));
    switch (v.kind) {
      case "known":
      case "first":
        return null;
      case "missing":
        // An older build sends none: accepted (a rolling upgrade), never recorded, and said.
        this.options.limiter.maybeLog(`peer_incarnation_missing:${id}`, { event: "peer_incarnation_missing", peer: id });
        return null;
      case "malformed":
        this.options.counters.incarnationRefusals += 1;
        this.options.limiter.maybeLog(`peer_incarnation_malformed:${id}`, {
          event: "peer_incarnation_malformed",
          peer: id,
          value: v.value,
        });
        return { code: grpc.status.INVALID_ARGUMENT, details: `${INCARNATION_HEADER} ${JSON.stringify(v.value)} is not an incarnation` };
      case "changed": {
        const reason = changedReason(id, v.was, v.now);
        this.options.limiter.maybeLog(`peer_incarnation_refused:${id}:${v.now}`, {
          event: "peer_incarnation_refused",
          peer: id,
          remembered: v.was,
          claimed: v.now,
          reason,
        });
        return this.refuseIncarnation("sender", reason);
      }
    }
  }

  private refuseIncarnation(side: IncarnationRefusalSide, details: string): Refusal {
    this.options.counters.incarnationRefusals += 1;
    const metadata = new grpc.Metadata();
    metadata.set(INCARNATION_REFUSAL_HEADER, side);
    return { code: grpc.status.FAILED_PRECONDITION, details, metadata };
  }

  private refuseIdentity(call: ServerCall, claimed: string | null, r: IdentityRefusal): Refusal {
    this.options.counters.identityRefusals += 1;
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const certificateIds = r.certificateIds.length > 0 ? r.certificateIds : memberIdsOf(cert);
    this.options.limiter.maybeLog(`peer_identity_refused:${claimed ?? ""}:${certificateIds.join(",")}:${r.code}`, {
      event: "peer_identity_refused",
      peer: call.getPeer(),
      claimedId: claimed,
      certificateIds,
      certificateCommonName: commonNameOf(cert),
      code: r.code,
      reason: r.reason,
    });
    return { code: grpc.status[r.code], details: r.reason };
  }
}

/** The first value of a text header, or null. */
function headerOf(call: ServerCall, key: string): string | null {
  const value = call.metadata.get(key)[0];
  return typeof value === "string" ? value : null;
}
