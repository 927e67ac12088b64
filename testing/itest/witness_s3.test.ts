// Scenario S3 of DESIGN.md §4 on real processes: two tenured voters A and B (sites A and B) and a
// tenure-witness W (site C). Every directed peer link goes through its own TCP proxy, so a
// partition is a real broken TCP connection. A leads; A<->B is cut; A grants locks that commit
// with W only (B lags); A is killed for good. W must win (its log is strictly newer than B's),
// catch B up by replication and hand over (W5), and B must then hold every grant A acknowledged,
// with its token, and continue the token sequence. The recovery time is printed.
// Ticks of 20 ms, election timeout 10 ticks (200 ms; the witness waits twice that). To measure
// at tenured's defaults: S3_TICK_MS=50 (500 ms election timeout).

import assert from "node:assert/strict";
import { createServer, connect, type Server } from "node:net";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster, type Member } from "./process_cluster.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import type { CallResult, TestClient } from "./test_client.ts";

type Obj = Record<string, unknown>;
const ids = ["a", "b", "w"] as const;
const GRANTS = 5;
const TICK_MS = Number(process.env["S3_TICK_MS"] ?? 20);
const ELECTION_TICKS = 10;

function ok<T>(r: CallResult<T>, what: string): T {
  if (!r.ok) assert.fail(`${what}: ${grpc.status[r.code]} ${r.reason} ${r.details}`);
  return r.value;
}

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

async function until<T>(what: string, budgetMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + budgetMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== null) return v;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("tcp proxy", () => {
  let echo: Server;
  let proxy: TcpProxy;
  before(async () => {
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((res) => echo.listen(0, "127.0.0.1", () => res()));
    const a = echo.address();
    proxy = await TcpProxy.start(`127.0.0.1:${typeof a === "object" && a ? a.port : 0}`);
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((res) => echo.close(() => res()));
  });

  const roundTrip = (): Promise<string> =>
    new Promise((resolve) => {
      const [host, port] = proxy.address.split(":");
      const s = connect({ host: host ?? "", port: Number(port) }, () => s.write("ping"));
      s.once("data", (d) => (resolve(d.toString()), s.destroy()));
      s.once("error", () => resolve("error"));
      s.once("close", () => resolve("closed"));
    });

  it("forwards, refuses while cut, forwards again after heal", async () => {
    assert.equal(await roundTrip(), "ping");
    proxy.cut();
    assert.notEqual(await roundTrip(), "ping");
    proxy.heal();
    assert.equal(await roundTrip(), "ping");
  });
});

describe("S3 on real processes: A commits with W while B lags, A dies, B takes over", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  let c: TestClient;
  const proxies = new Map<string, TcpProxy>();
  let members: Member[] = [];
  const at = (id: string): string => members.find((m) => m.id === id)?.clientAddress ?? "";
  const link = (from: string, to: string): TcpProxy => {
    const p = proxies.get(`${from}->${to}`);
    if (!p) throw new Error(`no proxy ${from}->${to}`);
    return p;
  };
  const status = async (id: string): Promise<Obj | null> => {
    const r = await c.callAt<Obj>(at(id), "Cluster", "Status", {}, 1000);
    return r.ok ? r.value : null;
  };

  before(async () => {
    cluster = await ProcessCluster.create({
      ids,
      witnesses: ["w"],
      peerRoute: (from, to) => link(from, to.id).address,
      tickMs: TICK_MS,
      electionTimeoutTicks: ELECTION_TICKS,
    });
    members = [...cluster.members];
    for (const from of ids) {
      for (const to of ids) if (to !== from) proxies.set(`${from}->${to}`, await TcpProxy.start(() => cluster.peerTarget(to)));
    }
    await cluster.startAll();
    // Admin: the test transfers leadership.
    c = cluster.testClient([at("a"), at("b")], ADMIN_CLIENT_IDENTITY);
  });

  after(async () => {
    c?.close();
    await cluster?.stopAll();
    await Promise.all([...proxies.values()].map((p) => p.close()));
  });

  it("keeps every acknowledged grant and its token across the loss of site A", async () => {
    // 1. A leads.
    const leader = await until("a leader", 15_000, async () => {
      const s = await status("a");
      return s && s["leaderId"] !== "" ? String(s["leaderId"]) : null;
    });
    if (leader !== "a") ok(await c.callAt(at(leader), "Cluster", "TransferLeader", { toNodeId: "a" }), "transfer to a");
    await until("a as leader", 5_000, async () => ((await status("a"))?.["role"] === "leader" ? true : null));

    // 2. Cut A<->B; grants through A commit with W only.
    link("a", "b").cut();
    link("b", "a").cut();
    const lease = ok(await c.callAt<Obj>(at("a"), "Lease", "Grant", { clientId: "s3", seq: 1, ttlMs: 60_000 }), "lease");
    const leaseId = String(lease["leaseId"]);
    const tokens = new Map<string, bigint>();
    for (let i = 0; i < GRANTS; i++) {
      const name = `s3-${i}`;
      const r = ok(await c.callAt<Obj>(at("a"), "Lock", "Acquire", { clientId: "s3", seq: 2 + 2 * i, name, leaseId, wait: false }), name);
      tokens.set(name, BigInt(String(r["token"])));
    }
    const aStatus = await status("a");
    const bStatus = await status("b");
    assert.ok(aStatus && bStatus);
    assert.ok(
      Number(bStatus["lastIndex"]) < Number(aStatus["commitIndex"]),
      `B does not lag: ${JSON.stringify({ a: aStatus, b: bStatus })}`,
    );

    // 3. Site A is lost for good; B<->W stay connected.
    await cluster.kill9("a");
    const t0 = performance.now();
    await until("B to lead and serve", 20_000, async () => {
      const r = await c.callAt<Obj>(at("b"), "Lock", "Status", { name: "s3-0" }, 1000);
      return r.ok ? true : null;
    });
    const recoveryMs = performance.now() - t0;
    console.log(
      `S3 recovery: B leads and serves ${recoveryMs.toFixed(0)} ms after kill -9 of A (tick ${TICK_MS} ms, election timeout ${TICK_MS * ELECTION_TICKS} ms)`,
    );
    assert.ok(
      (cluster.logs.get("w") ?? []).some((l) => l.includes('"event":"witnessLeader"')),
      "W never led (W5 path not taken)",
    );

    // 4. Every grant acknowledged before the kill is still held, with its token.
    for (const [name, token] of tokens) {
      const s = ok(await c.callAt<Obj>(at("b"), "Lock", "Status", { name }), `status ${name}`);
      const holder = s["holder"] as Obj | null;
      assert.ok(holder, `${name} lost its holder`);
      assert.equal(BigInt(String(holder["token"])), token, `${name} changed token`);
    }
    const next = ok(
      await c.callAt<Obj>(at("b"), "Lock", "Acquire", { clientId: "s3", seq: 2 + 2 * GRANTS, name: "s3-new", leaseId, wait: false }),
      "new grant",
    );
    const maxOld = [...tokens.values()].reduce((m, t) => (t > m ? t : m), 0n);
    assert.ok(BigInt(String(next["token"])) > maxOld, `token ${String(next["token"])} not above ${maxOld}`);

    // 5. W applied nothing and serves no client; it points at B.
    const w = await until("W to know B as leader", 5_000, async () => {
      const s = await status("w");
      return s && s["leaderId"] === "b" ? s : null;
    });
    assert.equal(w["appliedIndex"], "0", "the witness applied entries");
    assert.ok(Number(w["commitIndex"]) >= Number(aStatus["commitIndex"]));
    assert.deepEqual((w["confState"] as Obj)["witnesses"], ["w"]);
    const refused = await c.callAt<Obj>(at("w"), "Lock", "Status", { name: "s3-0" });
    assert.ok(!refused.ok && refused.code === grpc.status.UNAVAILABLE, "W served a client call");
    assert.equal(refused.reason, "IS_WITNESS");
    assert.equal(refused.leaderAddress, at("b"));
  });
});
