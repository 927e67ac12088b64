// tenure.v1.Lease: Grant, KeepAlive (bidirectional stream), Revoke, TimeToLive, List.
//
// Permission lease for all of them. Leases belong to the identity that granted them: the state
// machine refuses another identity's KeepAlive and Revoke (admins excepted, audited); here
// TimeToLive answers only the owner or an admin, and List shows a caller its own leases (an admin
// all of them). Grant draws the lease id at random (lease_ids.ts) and draws again if it is taken.

import type * as grpc from "@grpc/grpc-js";
import type { LeaseGrant } from "../state/commands.ts";
import type { OkBody } from "../state/results.ts";
import {
  authenticate,
  callerFields,
  encodeValidUntil,
  failStream,
  readOk,
  requirePermission,
  submitOk,
  unary,
  type Applied,
  LeaseIdTakenError,
  type ServiceDeps,
  type ValidUntilMessage,
} from "./handler_kit.ts";
import { LEASE_ID_DRAWS_MAX, randomLeaseId } from "./lease_ids.ts";
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
    Grant: unary(deps, "Lease.Grant", async (raw, ctx) => {
      requirePermission(ctx, "lease", null);
      const req = parseLeaseGrant(raw, limits);
      const { body, replayed } = await grantWithDrawnId(deps, { kind: "LeaseGrant", ...req, ...callerFields(ctx.principal) }, ctx.signal);
      return { leaseId: body.leaseId, validUntil: encodeValidUntil(body.validUntil), replayed };
    }),
    KeepAlive: keepAliveHandler(deps),
    Revoke: unary(deps, "Lease.Revoke", async (raw, ctx) => {
      requirePermission(ctx, "lease", null);
      const req = parseLeaseRevoke(raw, limits);
      const { body } = await submitOk(deps, { kind: "LeaseRevoke", ...req, ...callerFields(ctx.principal) }, "LeaseRevoke", {
        signal: ctx.signal,
      });
      return { leaseId: body.leaseId };
    }),
    TimeToLive: unary(deps, "Lease.TimeToLive", async (raw, ctx) => {
      requirePermission(ctx, "lease", null);
      const { leaseId } = parseLeaseTimeToLive(raw, limits);
      const { value: info } = await readOk(deps, (m) => m.leaseTimeToLive(leaseId), { signal: ctx.signal });
      if (info === null) throw new ApiError("LEASE_NOT_FOUND", `lease ${leaseId} not found`);
      if (info.owner !== ctx.principal.identity) {
        if (!ctx.principal.admin) {
          const who = JSON.stringify(ctx.principal.identity);
          throw new ApiError(
            "PERMISSION_DENIED",
            `identity ${who} may not read lease ${leaseId}: it belongs to another identity (only its owner or an admin may)`,
          );
        }
        deps.audit?.({ identity: ctx.principal.identity, rpc: ctx.rpc, target: `lease ${leaseId}`, owner: info.owner, outcome: "ok" });
      }
      return { ...info };
    }),
    List: unary(deps, "Lease.List", async (raw, ctx) => {
      requirePermission(ctx, "lease", null);
      const { afterLeaseId, limit } = parseLeaseList(raw, limits);
      const { identity, admin } = ctx.principal;
      const { value } = await readOk(
        deps,
        (m) => {
          const after = m.leaseList().filter((l) => l.leaseId > afterLeaseId && (admin || l.owner === identity));
          after.sort((a, b) => a.leaseId - b.leaseId);
          return { leases: after.slice(0, limit), more: after.length > limit };
        },
        { signal: ctx.signal },
      );
      if (admin && value.leases.some((l) => l.owner !== identity)) {
        deps.audit?.({ identity, rpc: ctx.rpc, target: `${value.leases.length} leases after ${afterLeaseId}`, owner: "*", outcome: "ok" });
      }
      return value;
    }),
  };
}

/**
 * Grant with a lease id drawn here (never by the machine, which reads no randomness). A taken id
 * changes nothing and is not stored in the session, so the same seq is proposed again with
 * another draw; a retried seq that was applied gets its stored grant, whatever id it carries.
 */
async function grantWithDrawnId(
  deps: ServiceDeps,
  command: Omit<LeaseGrant, "leaseId">,
  signal: AbortSignal,
): Promise<Applied<"LeaseGrant">> {
  const draw = deps.drawLeaseId ?? randomLeaseId;
  const grant = { identity: command.identity ?? "", clientId: command.clientId, seq: command.seq };
  for (let attempt = 1; ; attempt++) {
    try {
      return await submitOk(deps, { ...command, leaseId: draw(grant, attempt) }, "LeaseGrant", { signal });
    } catch (error) {
      if (!(error instanceof LeaseIdTakenError) || attempt >= LEASE_ID_DRAWS_MAX) throw error;
    }
  }
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
    // At the start, and again for every request: the metadata stays, but a token removed from the
    // token file, or a role taken away, must stop a long-lived stream's renewals too.
    const callerNow = (): ReturnType<typeof callerFields> => {
      const principal = authenticate(deps, call);
      requirePermission({ principal }, "lease", null);
      return callerFields(principal);
    };
    try {
      callerNow();
    } catch (error) {
      failStream(call, rpc, error);
      return;
    }
    let ended = false;
    let pending = 0;
    let chain: Promise<void> = Promise.resolve();
    const fail = (error: unknown): void => {
      if (ended) return;
      ended = true;
      failStream(call, rpc, error);
    };
    const renew = async (raw: unknown): Promise<void> => {
      const caller = callerNow();
      const req = parseLeaseKeepAlive(raw, deps.config.limits);
      const { body } = await submitOk(deps, { kind: "LeaseKeepAlive", ...req, ...caller }, "LeaseKeepAlive");
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
