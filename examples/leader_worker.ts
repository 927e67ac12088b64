// A worker that does its job only while it is the elected leader, and stops the moment its
// leadership may be lost (the SDK aborts `leadership.signal` at the client's own conservative
// deadline, before the server could elect someone else). Run several copies: one works, the
// others wait; kill the worker (Ctrl-C, kill -9) and another takes over with a higher token.
//
//   node --import tsx examples/leader_worker.ts [--name worker] [connection flags: examples/connection.ts]
//
// By default it connects to `npm start`'s cluster with mutual TLS, using the client certificate
// npm start created under data/local/tls.

import { TenureClient } from "../client-sdk/index.ts";
import { arg, connectionOptions } from "./connection.ts";

const electionName = arg("name", "worker");
const me = `worker-${process.pid}`;
const client = new TenureClient(connectionOptions());
const stopping = new AbortController();
process.once("SIGINT", () => stopping.abort());
process.once("SIGTERM", () => stopping.abort());

/** One unit of work. A real worker passes `token` to every write (see the storage guard). */
async function doWork(token: number, round: number): Promise<void> {
  console.log(JSON.stringify({ me, event: "work", token, round }));
  await new Promise((resolve) => setTimeout(resolve, 500));
}

async function main(): Promise<void> {
  const election = client.election(electionName);
  while (!stopping.signal.aborted) {
    console.log(JSON.stringify({ me, event: "campaigning", election: electionName }));
    const leadership = await election.campaign(me, { ttlMs: 5_000 }, { signal: stopping.signal }).catch((err: unknown) => {
      if (!stopping.signal.aborted) console.log(JSON.stringify({ me, event: "campaign-failed", error: String(err) }));
      return null;
    });
    if (!leadership) continue;
    console.log(JSON.stringify({ me, event: "leading", token: leadership.token }));
    for (let round = 1; !leadership.signal.aborted && !stopping.signal.aborted; round++) {
      await doWork(leadership.token, round);
    }
    console.log(JSON.stringify({ me, event: leadership.signal.aborted ? "leadership-lost" : "stopping", token: leadership.token }));
    await leadership.resign().catch(() => false);
  }
  client.close();
}

void main();
