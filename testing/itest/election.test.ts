// Leader election on three tenured processes: two campaigners in their own processes; the
// elected one is killed with kill -9; the other becomes leader with a higher token once the dead
// one's lease expires (plus lock-delay), and an observer sees both changes in order.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { ProcessCluster } from "./process_cluster.ts";
import { TestClient } from "./test_client.ts";

const campaignerScript = new URL("./campaigner.ts", import.meta.url).pathname;
type Obj = Record<string, unknown>;

function startCampaigner(endpoints: string[], clientId: string, value: string): { child: ChildProcess; elected: Promise<Obj> } {
  const child = spawn(process.execPath, ["--import", "tsx", campaignerScript, endpoints.join(","), clientId, "leader", value, "1000"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const elected = new Promise<Obj>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.includes('"elected"')) resolve(JSON.parse(line) as Obj);
    });
    child.once("exit", (code) => reject(new Error(`campaigner ${clientId} exited with ${code}`)));
  });
  elected.catch(() => {});
  return { child, elected };
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
    const c = new TestClient(cluster.endpoints());
    let leaderAddress = "";
    for (let t = 0; t < 300 && !leaderAddress; t++) {
      const r = await c.call<Obj>("Cluster", "Status", {}, 1000);
      if (r.ok && r.value["leaderAddress"]) leaderAddress = String(r.value["leaderAddress"]);
      else await new Promise((res) => setTimeout(res, 50));
    }
    const seen: Obj[] = [];
    // Observe is served by the Raft leader (its events are linearizable).
    const stopObserving = c.observe(leaderAddress, "leader", (m) => seen.push(m));
    const first = startCampaigner(cluster.endpoints(), "camp-1", "one");
    children.push(first.child);
    const firstElected = await first.elected;
    const second = startCampaigner(cluster.endpoints(), "camp-2", "two");
    children.push(second.child);
    await new Promise((res) => setTimeout(res, 500));
    first.child.kill("SIGKILL");
    const secondElected = await second.elected;
    assert.ok(BigInt(String(secondElected["token"])) > BigInt(String(firstElected["token"])));
    await new Promise((res) => setTimeout(res, 300));
    stopObserving();
    const values = seen.filter((m) => m["hasLeader"]).map((m) => (m["leader"] as Obj)["value"]);
    const firstOne = values.indexOf("one");
    const firstTwo = values.indexOf("two");
    assert.ok(firstOne >= 0 && firstTwo > firstOne, `observed ${JSON.stringify(values)}`);
    c.close();
  });
});
