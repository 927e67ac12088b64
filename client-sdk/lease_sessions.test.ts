// One TenureClient holding more leases than the server allows per client_id (leasesPerClientMax):
// grants spread over sessions, each filled up to the limit the server refused it at, a session
// with room again after revokes is used again, and a refusal for another limit is the caller's.
// A fake wire keeps the server's per-client_id count, and answers as the server does.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { encodeErrorDetail, ERROR_DETAIL_METADATA_KEY } from "../proto/tenure_protos.ts";
import { TenureClient } from "./client.ts";
import { TenureError } from "./errors.ts";
import type { DuplexStream, Message, Wire } from "./transport.ts";

function limitExceeded(message: string): Error {
  const metadata = new grpc.Metadata();
  const detail = { reason: "LIMIT_EXCEEDED" as const, leaderId: "", leaderAddress: "", currentToken: 0, retryAfterMs: 0 };
  metadata.set(ERROR_DETAIL_METADATA_KEY, encodeErrorDetail(detail));
  return Object.assign(new Error(message), { code: grpc.status.RESOURCE_EXHAUSTED, details: message, metadata });
}

/** Grants and revokes as the server does, with at most `perClient` leases per client_id and `total` in all. */
function limitedWire(perClient: number, total = Number.POSITIVE_INFINITY) {
  const byClient = new Map<string, Set<string>>();
  const owner = new Map<string, string>();
  const grants: { clientId: string; leaseId: string | null }[] = [];
  const renewals: string[][] = [];
  const ttlOf = new Map<string, number>();
  let nextId = 1;
  const wire: Wire = {
    unary: async (_endpoint, service, method, request) => {
      const r = request as Record<string, unknown>;
      const clientId = String(r["clientId"]);
      if (service === "Lease" && method === "Grant") {
        const held = byClient.get(clientId) ?? new Set<string>();
        if (owner.size >= total) {
          grants.push({ clientId, leaseId: null });
          throw limitExceeded(`the cluster holds as many leases as allowed: leasesMax = ${total}`);
        }
        if (held.size >= perClient) {
          grants.push({ clientId, leaseId: null });
          throw limitExceeded(`this client holds as many leases as allowed: leasesPerClientMax = ${perClient}`);
        }
        const leaseId = String(nextId++);
        held.add(leaseId);
        byClient.set(clientId, held);
        owner.set(leaseId, clientId);
        grants.push({ clientId, leaseId });
        ttlOf.set(leaseId, Number(r["ttlMs"]));
        return { leaseId, validUntil: { ttlMs: String(r["ttlMs"]), rho: 0 } } as Message;
      }
      if (service === "Lease" && method === "Revoke") {
        const leaseId = String(r["leaseId"]);
        const granter = owner.get(leaseId);
        if (granter !== undefined) byClient.get(granter)?.delete(leaseId);
        owner.delete(leaseId);
        return {} as Message;
      }
      throw new Error(`not used: ${service}.${method}`);
    },
    // KeepAlive: every id renewed (its TTL as asked at grant), answered at once; requests recorded.
    duplex: () => {
      const stream = Object.assign(new EventEmitter(), {
        write: (m: Record<string, unknown>) => {
          const ids = (m["leaseIds"] ?? []) as string[];
          renewals.push(ids);
          const renewed = ids
            .filter((id) => owner.has(id))
            .map((leaseId) => ({ leaseId, validUntil: { ttlMs: String(ttlOf.get(leaseId)), rho: 0 } }));
          setImmediate(() => stream.emit("data", { seq: m["seq"], renewed, failed: [] }));
          return true;
        },
        cancel: () => {},
      });
      return stream as unknown as DuplexStream;
    },
    serverStream: () => {
      throw new Error("not used");
    },
    close: () => {},
  };
  return { wire, grants, renewals, heldBy: (clientId: string) => byClient.get(clientId)?.size ?? 0 };
}

function client(wire: Wire): TenureClient {
  return new TenureClient({ endpoints: ["sim:a"], clientId: "svc", random: () => 0.5 }, { wire });
}

describe("one client holding more leases than leasesPerClientMax", () => {
  it("spreads its grants over sessions, each up to the limit, and reuses a session revokes made room on", async () => {
    const server = limitedWire(3);
    const c = client(server.wire);
    try {
      const leases = [];
      for (let i = 0; i < 10; i++) leases.push(await c.grantLease({ ttlMs: 60_000 }));
      const granted = server.grants.filter((g) => g.leaseId !== null);
      const perSession = new Map<string, number>();
      for (const g of granted) perSession.set(g.clientId, (perSession.get(g.clientId) ?? 0) + 1);
      assert.deepEqual([...perSession.values()], [3, 3, 3, 1], "filled one session after another");
      assert.equal(server.grants.length - granted.length, 3, "one refusal per filled session, then never asked again");
      const first = granted[0]!.clientId;
      await leases[0]!.revoke();
      await leases[1]!.revoke();
      const refusalsBefore = server.grants.length - granted.length;
      await c.grantLease({ ttlMs: 60_000 });
      await c.grantLease({ ttlMs: 60_000 });
      const last = server.grants.slice(-2);
      assert.ok(
        last.every((g) => g.leaseId !== null),
        "no refusal: sessions with room were chosen",
      );
      assert.equal(server.grants.filter((g) => g.leaseId === null).length, refusalsBefore);
      assert.equal(server.heldBy(first) + server.heldBy(granted[9]!.clientId), 1 + 1 + 2, "the room revokes made was used");
    } finally {
      c.close();
    }
  });

  it("keeps 3,000 leases on 3 sessions alive: KeepAlive requests of at most 1,024 ids, most due first, every lease renewed", async () => {
    const server = limitedWire(1_000);
    const c = client(server.wire);
    try {
      const leases = [];
      for (let i = 0; i < 3_000; i++) leases.push(await c.grantLease({ ttlMs: 1_500 }));
      assert.equal(new Set(server.grants.filter((g) => g.leaseId !== null).map((g) => g.clientId)).size, 3);
      const firstExpiry = leases.map((l) => l.expiresAt);
      await new Promise((r) => setTimeout(r, 1_200));
      assert.ok(server.renewals.length >= 3, `${server.renewals.length} KeepAlive requests`);
      assert.ok(server.renewals.every((ids) => ids.length <= 1_024 && new Set(ids).size === ids.length));
      assert.deepEqual(leases.filter((l, i) => !(l.expiresAt > firstExpiry[i]!)).length, 0, "every lease renewed");
      assert.deepEqual(leases.filter((l) => l.state !== "active").length, 0, "none lost");
    } finally {
      c.close();
    }
  });

  it("another limit (the cluster is full) goes to the caller, after one attempt", async () => {
    const server = limitedWire(3, 2);
    const c = client(server.wire);
    try {
      await c.grantLease({ ttlMs: 60_000 });
      await c.grantLease({ ttlMs: 60_000 });
      await assert.rejects(
        c.grantLease({ ttlMs: 60_000 }),
        (e: unknown) => e instanceof TenureError && e.reason === "LIMIT_EXCEEDED" && e.message.includes("leasesMax"),
      );
      assert.equal(server.grants.length, 3);
    } finally {
      c.close();
    }
  });

  it("gives up after trying a bounded number of sessions", async () => {
    const server = limitedWire(0);
    const c = client(server.wire);
    try {
      await assert.rejects(
        c.grantLease({ ttlMs: 60_000 }),
        (e: unknown) => e instanceof TenureError && e.message.includes("leasesPerClientMax"),
      );
      assert.equal(server.grants.length, 9, "the first session and 8 more");
    } finally {
      c.close();
    }
  });
});
