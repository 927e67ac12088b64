// The user-facing lock clients of the failover row, each with its library's defaults: Tenure's
// SDK (client.lock(name): a lease of its own per lock, blocking acquire, release revokes it) and
// the etcd3 npm client (client.lock(name).acquire(): LeaseGrant + Txn + keepalive, release
// revokes), both given every member's address.

import { Etcd3 } from "etcd3";
import { TenureClient } from "../../client-sdk/index.ts";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import type { UserLockClient } from "./failover.ts";

export function tenureUserClient(endpoints: readonly string[], security: TransportSecurity): UserLockClient {
  const client = new TenureClient({ endpoints: [...endpoints], ...security });
  return {
    async cycle(name, acquired) {
      const lock = await client.lock(name);
      acquired();
      await lock.release();
    },
    close: () => client.close(),
  };
}

export function etcdUserClient(endpoints: readonly string[]): UserLockClient {
  const client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
  return {
    async cycle(name, acquired) {
      const lock = client.lock(name);
      await lock.acquire();
      acquired();
      await lock.release();
    },
    close: () => client.close(),
  };
}
