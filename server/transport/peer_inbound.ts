// The inbound checks of GrpcPeerTransport that come before and after decoding, in one place:
// who the sender is (its certificate's member id against the id it sends from, and whether that
// member is admissible now), frames that do not deserialize or are too large, and the
// validation of decoded messages (peer_message_checks.ts). Each refusal is a gRPC status, is
// counted in the transport's stats and logged at most once per interval per kind and sender.
// Nothing refused here reaches the node.

import * as grpc from "@grpc/grpc-js";
import type { Message } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import type { LogLimiter } from "./log_limiter.ts";
import { checkClaim, commonNameOf, memberIdsOf, memberOfCertificate, type IdentityRefusal } from "./peer_identity.ts";
import { checkPeerMessage, type MessageCheckOptions } from "./peer_message_checks.ts";

export type Refusal = { readonly code: grpc.status; readonly details: string };
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
}

export interface InboundGuardOptions {
  readonly requirePeerIdentity: boolean;
  readonly isAdmissiblePeer: (memberId: NodeId) => boolean;
  readonly checks: MessageCheckOptions;
  readonly messageBytesMax: number;
  readonly counters: InboundCounters;
  readonly limiter: LogLimiter;
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
   * name one member and that member must be admissible.
   */
  streamSender(call: ServerCall): StreamSender | Refusal {
    if (!this.options.requirePeerIdentity) return { memberId: null };
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const r = memberOfCertificate(cert);
    if ("code" in r) return this.refuseIdentity(call, null, r);
    const claim = checkClaim({ memberId: r.memberId, claimed: null, isAdmissible: this.options.isAdmissiblePeer });
    return claim === null ? { memberId: r.memberId } : this.refuseIdentity(call, null, claim);
  }

  /** Every frame (and snapshot header): the id it is sent from must be the stream's member, still admissible. */
  checkSender(call: ServerCall, sender: StreamSender, claimed: unknown): Refusal | null {
    if (sender.memberId === null) return null;
    const claimedId = typeof claimed === "string" ? claimed : "";
    const claim = checkClaim({ memberId: sender.memberId, claimed: claimedId, isAdmissible: this.options.isAdmissiblePeer });
    return claim === null ? null : this.refuseIdentity(call, claimedId, claim);
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
