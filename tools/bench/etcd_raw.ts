// LoadTarget for etcd through raw @grpc/grpc-js: v3lock Lock/Unlock with one lease per worker
// (like a session), LeaseGrant/LeaseRevoke; every worker on a connection of its own to the
// leader, as Tenure's workers are (a follower would forward each proposal to it).

import { EtcdConnection } from "./etcd_client.ts";
import type { HeldLock, LeaseSession, LoadTarget, LockSession } from "./target.ts";
import { OP_TIMEOUT_MS, SESSION_LEASE_TTL_S } from "./target.ts";

export class EtcdRawTarget implements LoadTarget {
  private readonly connections: EtcdConnection[] = [];

  constructor(private readonly leaderAddress: string) {}

  private connect(): EtcdConnection {
    const c = new EtcdConnection(this.leaderAddress);
    this.connections.push(c);
    return c;
  }

  async lockSession(): Promise<LockSession> {
    const c = this.connect();
    const lease = await c.grant(SESSION_LEASE_TTL_S);
    return {
      acquire: async (name: string): Promise<HeldLock> => {
        const key = await c.lockName(name, lease, OP_TIMEOUT_MS);
        return { release: () => c.unlock(key) };
      },
      close: () => c.revoke(lease),
    };
  }

  async leaseSession(): Promise<LeaseSession> {
    const c = this.connect();
    return { grant: () => c.grant(SESSION_LEASE_TTL_S), revoke: (id) => c.revoke(id), close: async () => {} };
  }

  close(): void {
    for (const c of this.connections) c.close();
  }
}
