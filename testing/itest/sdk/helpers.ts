// Shared by the SDK's integration tests: a cluster of real tenured processes and the Raft leader.

import { ProcessCluster } from "../process_cluster.ts";

export { ProcessCluster };

/** The Raft leader's member id, as some member reports it. */
export async function raftLeader(cluster: ProcessCluster, budgetMs = 15_000): Promise<string> {
  const c = cluster.testClient();
  try {
    const deadline = Date.now() + budgetMs;
    while (Date.now() < deadline) {
      const r = await c.call<Record<string, unknown>>("Cluster", "Status", {}, 1000);
      if (r.ok && typeof r.value["leaderId"] === "string" && r.value["leaderId"] !== "" && r.value["role"] === "leader")
        return r.value["leaderId"];
      if (r.ok && typeof r.value["leaderId"] === "string" && r.value["leaderId"] !== "") {
        const id = r.value["leaderId"];
        if (cluster.processes.has(id)) return id;
      }
      await new Promise((res) => setTimeout(res, 30));
    }
    throw new Error("no leader");
  } finally {
    c.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
