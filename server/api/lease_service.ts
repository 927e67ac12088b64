// tenure.v1.Lease: Grant, KeepAlive (bidirectional stream), Revoke, TimeToLive, List.

import type * as grpc from "@grpc/grpc-js";
import type { OkBody } from "../state/results.ts";
import { encodeValidUntil, failStream, submitOk, readOk, unary, type ServiceDeps, type ValidUntilMessage } from "./handler_kit.ts";
import { ApiError, logError } from "./status_map.ts";
import { parseLeaseGrant, parseLeaseKeepAlive, parseLeaseList, parseLeaseRevoke, parseLeaseTimeToLive } from "./validate.ts";

export interface LeaseKeepAliveResponse {
  readonly seq: number;
  readonly renewed: readonly { readonly leaseId: number; readonly validUntil: ValidUntilMessage }[];
  readonly failed: readonly { readonly leaseId: number; readonly reason: string }[];
}

export function leaseService(deps: ServiceDeps): grpc.UntypedServiceImplementation {
  const limits = deps.config.limits;
  return {
    Grant: unary("Lease.Grant", async (raw) => {
      const req = parseLeaseGrant(raw, limits);
      const { body, replayed } = await submitOk(deps, { kind: "LeaseGrant", ...req }, "LeaseGrant");
      return { leaseId: body.leaseId, validUntil: encodeValidUntil(body.validUntil), replayed };
    }),
    KeepAlive: keepAliveHandler(deps),
    Revoke: unary("Lease.Revoke", async (raw) => {
      const req = parseLeaseRevoke(raw, limits);
      const { body } = await submitOk(deps, { kind: "LeaseRevoke", ...req }, "LeaseRevoke");
      return { leaseId: body.leaseId };
    }),
    TimeToLive: unary("Lease.TimeToLive", async (raw) => {
      const { leaseId } = parseLeaseTimeToLive(raw, limits);
      const { value: info } = await readOk(deps, (m) => m.leaseTimeToLive(leaseId));
      if (info === null) throw new ApiError("LEASE_NOT_FOUND", `lease ${leaseId} not found`);
      return { ...info };
    }),
    List: unary("Lease.List", async (raw) => {
      const { afterLeaseId, limit } = parseLeaseList(raw, limits);
      const { value } = await readOk(deps, (m) => {
        const after = m.leaseList().filter((l) => l.leaseId > afterLeaseId);
        after.sort((a, b) => a.leaseId - b.leaseId);
        return { leases: after.slice(0, limit), more: after.length > limit };
      });
      return value;
    }),
  };
}

function encodeKeepAlive(seq: number, body: Extract<OkBody, { kind: "LeaseKeepAlive" }>): LeaseKeepAliveResponse {
  return {
    seq,
    renewed: body.renewed.map((r) => ({ leaseId: r.leaseId, validUntil: encodeValidUntil(r.validUntil) })),
    failed: body.failed.map((f) => ({ leaseId: f.leaseId, reason: f.code })),
  };
}

/**
 * Requests are answered one at a time, in order. A request-level failure ends the stream with its
 * status; more than keepAlivePendingMax unanswered requests end it with RESOURCE_EXHAUSTED.
 */
function keepAliveHandler(deps: ServiceDeps): grpc.handleBidiStreamingCall<unknown, object> {
  const rpc = "Lease.KeepAlive";
  return (call) => {
    let ended = false;
    let pending = 0;
    let chain: Promise<void> = Promise.resolve();
    const fail = (error: unknown): void => {
      if (ended) return;
      ended = true;
      failStream(call, rpc, error);
    };
    const renew = async (raw: unknown): Promise<void> => {
      const req = parseLeaseKeepAlive(raw, deps.config.limits);
      const { body } = await submitOk(deps, { kind: "LeaseKeepAlive", ...req }, "LeaseKeepAlive");
      pending -= 1;
      if (!ended) call.write(encodeKeepAlive(req.seq, body));
    };
    call.on("data", (raw: unknown) => {
      if (ended) return;
      pending += 1;
      if (pending > deps.keepAlivePendingMax) {
        fail(new ApiError("LIMIT_EXCEEDED", `more than ${deps.keepAlivePendingMax} keepalives unanswered`));
        return;
      }
      chain = chain.then(() => (ended ? undefined : renew(raw))).catch(fail);
    });
    call.on("end", () => {
      chain = chain
        .then(() => {
          if (ended) return;
          ended = true;
          call.end();
        })
        .catch((error: unknown) => logError("failed to end a stream", rpc, error));
    });
    // The client went away or the transport broke: stop answering; never rethrow.
    call.on("cancelled", () => {
      ended = true;
    });
    call.on("error", (error: unknown) => {
      if (ended) return; // our own failStream: already answered
      ended = true;
      logError("keepalive stream error", rpc, error);
    });
  };
}
