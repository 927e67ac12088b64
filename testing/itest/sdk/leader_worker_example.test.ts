// examples/leader_worker.ts as a user runs it: two workers against a cluster (mutual TLS, the
// client certificate given by its --tls-* flags), one leads and works; kill -9 it and the other
// takes over with a higher token. (Its default, npm start's certificates under the data
// directory, is run by local_cluster.test.ts.)

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { ProcessCluster } from "../process_cluster.ts";
import { until } from "../wait.ts";

const workerScript = new URL("../../../examples/leader_worker.ts", import.meta.url).pathname;
type Event = Record<string, unknown>;

describe("examples/leader_worker.ts", { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;
  const workers: ChildProcess[] = [];

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300, tickMs: 50 });
  });

  after(async () => {
    for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
    await cluster?.stopAll();
  });

  it("exactly one worker leads; after kill -9 the other leads with a higher token", async () => {
    const events: { worker: number; e: Event }[] = [];
    for (let i = 0; i < 2; i++) {
      const tls = cluster.clientTls();
      const flags = [
        "--endpoints",
        cluster.endpoints().join(","),
        "--tls-ca",
        tls.caFile ?? "",
        "--tls-cert",
        tls.certFile ?? "",
        "--tls-key",
        tls.keyFile ?? "",
      ];
      const child = spawn(process.execPath, ["--import", "tsx", workerScript, ...flags], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      workers.push(child);
      createInterface({ input: child.stdout! }).on("line", (line) => events.push({ worker: i, e: JSON.parse(line) as Event }));
    }
    const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
      await until(what, 30_000, pred, 50).catch(() => assert.fail(`${what}; saw ${JSON.stringify(events.slice(-8))}`));
    };
    const leading = (): { worker: number; e: Event }[] => events.filter((x) => x.e["event"] === "leading");
    const count = (worker: number, event: string): number => events.filter((x) => x.worker === worker && x.e["event"] === event).length;
    await waitFor(() => leading().length === 1 && events.some((x) => x.e["event"] === "work"), "no worker led");
    // Both campaign, and the leader works on for two more rounds while the other waits: a
    // second leader in that window would show.
    const leader = leading()[0]!.worker;
    const roundsSoFar = count(leader, "work");
    await waitFor(
      () => count(1 - leader, "campaigning") > 0 && count(leader, "work") >= roundsSoFar + 2,
      "the other worker never campaigned",
    );
    assert.equal(leading().length, 1, "two workers led at once");
    const first = leading()[0]!;
    workers[first.worker]!.kill("SIGKILL");
    await waitFor(() => leading().length === 2, "nobody took over");
    const second = leading()[1]!;
    assert.notEqual(second.worker, first.worker);
    assert.ok(Number(second.e["token"]) > Number(first.e["token"]));
  });
});
