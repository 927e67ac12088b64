// LoadTarget for Tenure through raw @grpc/grpc-js (testing/itest/test_client.ts's dynamic
// stubs), every call to the leader's own port: no SDK logic in the measured path, as etcd's side
// has none. Each worker is an exactly-once session of its own (client_id, seq + 1 per request,
// + 2 for a blocking Acquire, which reserves seq + 1).

import { randomBytes } from "node:crypto";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { type CallResult, TestClient } from "../../testing/itest/test_client.ts";
import type { HeldLock, LeaseSession, LoadTarget, LockSession } from "./target.ts";
import { OP_TIMEOUT_MS, SESSION_LEASE_TTL_S } from "./target.ts";

type Obj = Record<string, unknown>;

function value<T>(r: CallResult<T>, what: string): T {
  if (r.ok) return r.value;
  throw new Error(`${what}: ${r.code} ${r.reason} ${r.details}`.trim());
}

class Session {
  readonly clientId = `bench-${randomBytes(6).toString("hex")}`;
  private seq = 1;
  constructor(
    readonly client: TestClient,
    readonly leader: string,
  ) {}

  nextSeq(blocking = false): number {
    const s = this.seq;
    this.seq += blocking ? 2 : 1;
    return s;
  }

  async grant(): Promise<string> {
    const r = await this.client.callAt<Obj>(
      this.leader,
      "Lease",
      "Grant",
      { clientId: this.clientId, seq: this.nextSeq(), ttlMs: SESSION_LEASE_TTL_S * 1000 },
      OP_TIMEOUT_MS,
    );
    return String(value(r, "Lease.Grant")["leaseId"]);
  }

  async revoke(leaseId: string): Promise<void> {
    const r = await this.client.callAt<Obj>(
      this.leader,
      "Lease",
      "Revoke",
      { clientId: this.clientId, seq: this.nextSeq(), leaseId },
      OP_TIMEOUT_MS,
    );
    value(r, "Lease.Revoke");
  }
}

export class TenureRawTarget implements LoadTarget {
  private readonly clients: TestClient[] = [];

  constructor(
    private readonly leaderAddress: string,
    private readonly security: TransportSecurity,
  ) {}

  /** One channel per worker, as each etcd worker has its own connection. */
  private session(): Session {
    const client = new TestClient([this.leaderAddress], this.security);
    this.clients.push(client);
    return new Session(client, this.leaderAddress);
  }

  async lockSession(): Promise<LockSession> {
    const s = this.session();
    const leaseId = await s.grant();
    return {
      acquire: async (name: string): Promise<HeldLock> => {
        const r = await s.client.callAt<Obj>(
          s.leader,
          "Lock",
          "Acquire",
          { clientId: s.clientId, seq: s.nextSeq(true), name, leaseId, wait: true, timeoutMs: OP_TIMEOUT_MS },
          OP_TIMEOUT_MS + 1000,
        );
        const token = value(r, "Lock.Acquire")["token"];
        return {
          release: async () => {
            const rr = await s.client.callAt<Obj>(
              s.leader,
              "Lock",
              "Release",
              { clientId: s.clientId, seq: s.nextSeq(), name, token },
              OP_TIMEOUT_MS,
            );
            value(rr, "Lock.Release");
          },
        };
      },
      close: () => s.revoke(leaseId),
    };
  }

  async leaseSession(): Promise<LeaseSession> {
    const s = this.session();
    return { grant: () => s.grant(), revoke: (id) => s.revoke(id), close: async () => {} };
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
