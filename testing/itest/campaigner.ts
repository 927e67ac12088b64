// A campaigner as its own process, so a test can kill -9 it: grants a lease, keeps it alive,
// campaigns (printing {"event":"campaigning",...} as it sends the Campaign), prints
// {"event":"elected",...} once leader, then keeps renewing until killed.
//
//   node --import tsx testing/itest/campaigner.ts <endpoints,comma,separated> <clientId> <election> <value> <ttlMs> <security>
// <security> is the cluster's clientSecurity() as JSON (TLS file paths, or {"insecure":true}).

import type { TransportSecurity } from "../../client-sdk/tls.ts";
import { TestClient } from "./test_client.ts";

type Obj = Record<string, unknown>;

async function main(): Promise<void> {
  const [endpoints = "", clientId = "", name = "", value = "", ttlArg = "2000", security = "{}"] = process.argv.slice(2);
  const ttlMs = Number(ttlArg);
  const c = new TestClient(endpoints.split(","), JSON.parse(security) as TransportSecurity);
  let seq = 1;
  const g = await c.call<Obj>("Lease", "Grant", { clientId, seq: seq++, ttlMs });
  if (!g.ok) throw new Error(`grant failed: ${g.details}`);
  const leaseId = g.value["leaseId"];
  // Renew well inside the TTL; this loop is what dies with the process.
  const renew = setInterval(() => void keepAlive(c, clientId, () => seq++, leaseId), Math.floor(ttlMs / 4));
  const campaignSeq = seq;
  seq += 2; // a waiting campaign reserves seq + 1
  process.stdout.write(`${JSON.stringify({ event: "campaigning", clientId, leaseId: String(leaseId) })}\n`);
  const r = await c.call<Obj>("Election", "Campaign", { clientId, seq: campaignSeq, name, leaseId, value }, 600_000);
  if (!r.ok) throw new Error(`campaign failed: ${r.details}`);
  const leader = r.value["leader"] as Obj;
  process.stdout.write(`${JSON.stringify({ event: "elected", clientId, token: String(leader["token"]), leaseId: String(leaseId) })}\n`);
  void renew;
}

/** One renewal through a short-lived KeepAlive stream. */
async function keepAlive(c: TestClient, clientId: string, nextSeq: () => number, leaseId: unknown): Promise<void> {
  await c.keepAliveOnce(clientId, nextSeq(), [String(leaseId)]);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
