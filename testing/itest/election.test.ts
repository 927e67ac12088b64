// Leader election on three tenured processes: two campaigners in their own processes; the
// elected one is killed with kill -9; the other becomes leader with a higher token once the dead
// one's lease expires (plus lock-delay), and an observer sees both changes in order.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { ProcessCluster } from "./process_cluster.ts";
import { until } from "./wait.ts";

const campaignerScript = new URL("./campaigner.ts", import.meta.url).pathname;
type Obj = Record<string, unknown>;

interface Campaigner {
  readonly child: ChildProcess;
  /** Its lease is granted and its Campaign sent (it waits there while another leads). */
  readonly campaigning: Promise<Obj>;
  readonly elected: Promise<Obj>;
}

function startCampaigner(cluster: ProcessCluster, clientId: string, value: string): Campaigner {
  const args = [
    campaignerScript,
    cluster.endpoints().join(","),
    clientId,
    "leader",
    value,
    "1000",
    JSON.stringify(cluster.clientSecurity()),
  ];
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const lines = createInterface({ input: child.stdout! });
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  const event = (name: string): Promise<Obj> => {
    const p = new Promise<Obj>((resolve, reject) => {
      lines.on("line", (line) => {
        if (line.includes(`"${name}"`)) resolve(JSON.parse(line) as Obj);
      });
      child.once("exit", (code) => reject(new Error(`campaigner ${clientId} exited with ${code} before "${name}": ${stderr.trim()}`)));
    });
    p.catch(() => {});
    return p;
  };
  return { child, campaigning: event("campaigning"), elected: event("elected") };
}

describe("election across a campaigner's death", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  const children: ChildProcess[] = [];

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300 });
  });

  after(async () => {
    for (const ch of children) if (ch.exitCode === null) ch.kill("SIGKILL");
    await cluster?.stopAll();
  });

  it("the survivor is elected with a higher token and Observe yields both leaders in order", async () => {
    const c = cluster.testClient();
    const leaderAddress = await until("a Raft leader", 15_000, async () => {
      const r = await c.call<Obj>("Cluster", "Status", {}, 1000);
      return r.ok && r.value["leaderAddress"] ? String(r.value["leaderAddress"]) : null;
    });
    const seen: Obj[] = [];
    // Observe is served by the Raft leader (its events are linearizable).
    const stopObserving = c.observe(leaderAddress, "leader", (m) => seen.push(m));
    const leaderValues = (): unknown[] => seen.filter((m) => m["hasLeader"]).map((m) => (m["leader"] as Obj)["value"]);
    const first = startCampaigner(cluster, "camp-1", "one");
    children.push(first.child);
    const firstElected = await first.elected;
    const second = startCampaigner(cluster, "camp-2", "two");
    children.push(second.child);
    const secondLease = String((await second.campaigning)["leaseId"]);
    await until("the second campaign to queue behind the first", 10_000, async () => {
      const r = await c.call<Obj>("Lease", "TimeToLive", { leaseId: secondLease }, 1000);
      return r.ok && ((r.value["elections"] as string[] | undefined) ?? []).includes("leader");
    });
    first.child.kill("SIGKILL");
    const secondElected = await second.elected;
    assert.ok(BigInt(String(secondElected["token"])) > BigInt(String(firstElected["token"])));
    await until("the observer to see the second leader", 10_000, () => leaderValues().includes("two"));
    stopObserving();
    const values = leaderValues();
    const firstOne = values.indexOf("one");
    const firstTwo = values.indexOf("two");
    assert.ok(firstOne >= 0 && firstTwo > firstOne, `observed ${JSON.stringify(values)}`);
    c.close();
  });
});
