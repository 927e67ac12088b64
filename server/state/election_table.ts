// Elections: a lock whose holder carries a value. PURE.
//
// Campaigners queue FIFO (a campaign always waits); the leader is the holder, its leadership
// token comes from the same cluster-wide counter as lock tokens. Proclaim changes the value under
// the same token; Resign is a fenced release (an old token is a no-op); an expired leader's
// election goes through lock-delay like a lock, because a resource that trusted the old leader
// needs the same protection.

import type { ApplyContext } from "./apply_context.ts";
import { LockTable, type AcquireOutcome, type AcquireRequest, type Holder, type MutexRecord, type MutexStatus } from "./lock_table.ts";

export interface ElectionLeader {
  readonly name: string;
  readonly leaseId: number;
  readonly token: number;
  readonly value: string;
}

export class ElectionTable {
  constructor(readonly table: LockTable = new LockTable("election")) {}

  static restore(records: readonly MutexRecord[]): ElectionTable {
    return new ElectionTable(LockTable.restore("election", records));
  }

  campaign(ctx: ApplyContext, req: Omit<AcquireRequest, "wait">): AcquireOutcome {
    return this.table.acquire(ctx, { ...req, wait: true });
  }

  /**
   * True if `token` is the current leadership; the value is then replaced. The caller checked the
   * value against valueBytesTotalMax (table.valueBytesDelta).
   */
  proclaim(ctx: ApplyContext, name: string, token: number, value: string): boolean {
    if (!this.table.setValue(name, token, value)) return false;
    ctx.events.push({ kind: "proclaimed", name, token, value });
    return true;
  }

  resign(ctx: ApplyContext, name: string, token: number): boolean {
    return this.table.release(ctx, name, token);
  }

  leader(name: string): ElectionLeader | null {
    const holder: Holder | null = this.table.holder(name);
    if (holder === null) return null;
    return { name, leaseId: holder.leaseId, token: holder.token, value: holder.value };
  }

  status(name: string): MutexStatus {
    return this.table.status(name);
  }
}
