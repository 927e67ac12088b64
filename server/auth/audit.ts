// The audit log: one JSON line on stdout (tenured's log stream) for each act of an admin on
// another identity's object, and for each admin-only call (membership, leadership transfer),
// naming who did what to whose object. Written by the leader that served the call.

export interface AuditRecord {
  /** The identity that acted. */
  readonly identity: string;
  /** The call, e.g. "Lease.Revoke", "Cluster.RemoveMember". */
  readonly rpc: string;
  /** What it acted on, e.g. "lease 123", "lock \"jobs/x\"", "member c". */
  readonly target: string;
  /** The identity that owns the target; null for cluster-wide acts. */
  readonly owner: string | null;
  /** denied: a non-admin tried an admin-only call. */
  readonly outcome: "ok" | "failed" | "denied";
}

export type AuditSink = (record: AuditRecord) => void;

/** Audit lines through a structured logger (server/logger.ts in tenured). */
export function auditTo(log: (fields: Record<string, unknown>) => void): AuditSink {
  return (record) => {
    try {
      log({ level: "info", component: "audit", event: "audit", ...record });
    } catch {
      // An audit line that cannot be written must not fail the call it records.
    }
  };
}
