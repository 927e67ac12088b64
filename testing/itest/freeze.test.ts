// tenurectl freeze / thaw against three real tenured processes over mutual TLS (issue 15 point 3's
// "done when": freeze stops new grants while renewals continue, thaw resumes). The CLI runs as a
// child process (as in tenurectl.test.ts). A lease kept alive by one client and a lock held by
// another exist before the freeze, and a third client's blocking acquire waits behind the lock.
// While frozen: a new grant and a new acquire are FROZEN, the kept-alive lease outlives 2 TTLs, the
// release is served but the waiter is not granted; kill -9 of the leader leaves the new leader
// frozen (a replicated command). After thaw the waiter holds the lock with a higher token than
// every earlier one, and new grants succeed.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import { serverArgs } from "./server_command.ts";
import type { CallResult, TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

const LEASE_TTL_MS = 2_000;

type Obj = Record<string, unknown>;
interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let cluster: ProcessCluster;

function tenurectl(args: readonly string[], endpoints: readonly string[]): Promise<CliRun> {
  const t = cluster.clientTls(ADMIN_CLIENT_IDENTITY);
  const tls = ["--ca", String(t.caFile), "--cert", String(t.certFile), "--key", String(t.keyFile)];
  const child = spawn(process.execPath, [...serverArgs("tenurectl"), "--endpoints", endpoints.join(","), ...tls, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

function value<T>(r: CallResult<T>, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.code} ${r.reason} ${r.details}`);
  return r.value;
}

function assertFrozen(r: CallResult<unknown>, what: string): void {
  assert.ok(!r.ok, `${what} must be refused while frozen`);
  assert.equal(r.reason, "FROZEN", `${what}: ${r.reason} ${r.details}`);
  assert.equal(r.code, 9, "FAILED_PRECONDITION");
  assert.match(r.details, /^cluster frozen by admin ".+" at leader time \d+ ms \(about \d+ s ago\): "drill"; no new grants; /);
}

describe("tenurectl freeze / thaw on a real cluster", { timeout: 90_000 }, () => {
  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 0 });
    const c = cluster.testClient();
    await c.leaderId(20_000);
    c.close();
  });
  after(async () => {
    await cluster?.stopAll();
  });

  it("freeze: no new grants, renewals and releases served, survives a leader kill; thaw grants the waiter with a higher token", async () => {
    const clients: TestClient[] = [];
    const client = (): TestClient => {
      const c = cluster.testClient();
      clients.push(c);
      return c;
    };
    const [renewer, holder, waiter, other] = [client(), client(), client(), client()];
    let keepAlive: Promise<void> | null = null;
    let stopped = false;
    try {
      // Before the freeze: a short lease kept alive, a lock held, a blocking acquire queued.
      const kept = value(await renewer.callSameSeq<Obj>("Lease", "Grant", { clientId: "r", seq: 1, ttlMs: LEASE_TTL_MS }), "grant r");
      const keptId = String(kept["leaseId"]);
      const renewals: { atMs: number; ok: boolean }[] = [];
      keepAlive = (async () => {
        for (let seq = 2; !stopped; seq++) {
          const msg = await renewer.keepAliveOnce("r", seq, [keptId]);
          const renewed = ((msg?.["renewed"] ?? []) as Obj[]).some((x) => String(x["leaseId"]) === keptId);
          renewals.push({ atMs: Date.now(), ok: renewed });
          await new Promise((r) => setTimeout(r, LEASE_TTL_MS / 5));
        }
      })();
      const hLease = String(
        value(await holder.callSameSeq<Obj>("Lease", "Grant", { clientId: "h", seq: 1, ttlMs: 60_000 }), "grant h")["leaseId"],
      );
      const first = value(
        await holder.callSameSeq<Obj>("Lock", "Acquire", { clientId: "h", seq: 2, name: "db", leaseId: hLease, wait: false }),
        "acquire h",
      );
      const firstToken = Number(first["token"]);
      const wLease = String(
        value(await waiter.callSameSeq<Obj>("Lease", "Grant", { clientId: "w", seq: 1, ttlMs: 60_000 }), "grant w")["leaseId"],
      );
      // The blocking acquire (seq 2, seq 3 reserved for its withdrawal) waits through all that follows:
      // the freeze, the release, the leader's kill (retried with the same seq on the new leader).
      const waiting = waiter.callSameSeq<Obj>(
        "Lock",
        "Acquire",
        { clientId: "w", seq: 2, name: "db", leaseId: wLease, wait: true, timeoutMs: 60_000 },
        60_000,
      );
      let waitDone = false;
      void waiting.then(() => (waitDone = true));
      await until("the acquire to queue", 10_000, async () => {
        const s = await other.call<Obj>("Lock", "Status", { name: "db" });
        return s.ok && Number(s.value["waiterCount"]) === 1;
      });

      // Freeze, with the CLI.
      const frozeAt = Date.now();
      const freeze = await tenurectl(["freeze", "--reason", "drill", "--output", "json"], cluster.endpoints());
      assert.equal(freeze.code, 0, freeze.stderr);
      const f = JSON.parse(freeze.stdout) as Obj;
      assert.deepEqual([f["frozen"], f["alreadyFrozen"], f["reason"], f["by"]], [true, false, "drill", ADMIN_CLIENT_IDENTITY]);
      const status = await tenurectl(["status"], cluster.endpoints());
      const top = status.stdout.split("\n")[0] ?? "";
      assert.match(top, new RegExp(`^FROZEN by ${ADMIN_CLIENT_IDENTITY} at leader time \\d+ ms: "drill" \\(no new grants;`), status.stdout);

      // New grants and acquires are refused.
      assertFrozen(await other.callSameSeq("Lease", "Grant", { clientId: "o", seq: 1, ttlMs: 60_000 }), "a new lease");
      assertFrozen(
        await holder.callSameSeq("Lock", "Acquire", { clientId: "h", seq: 3, name: "cache", leaseId: hLease, wait: false }),
        "a new lock",
      );
      const refusedCli = await tenurectl(["lease", "grant", "--ttl-ms", "60000"], cluster.endpoints());
      assert.equal(refusedCli.code, 1, refusedCli.stderr);
      assert.match(refusedCli.stderr, /FROZEN/);

      // A release is served; the waiter stays queued and is not granted.
      const released = value(
        await holder.callSameSeq<Obj>("Lock", "Release", { clientId: "h", seq: 4, name: "db", token: String(firstToken) }),
        "release",
      );
      assert.equal(released["released"], true);
      const parked = value(await other.call<Obj>("Lock", "Status", { name: "db" }), "status db");
      assert.equal(parked["holder"] ?? null, null);
      assert.equal(Number(parked["waiterCount"]), 1);

      // The kept-alive lease outlives more than 2 TTLs by renewals while frozen.
      await until("2.5 TTLs of renewals while frozen", 15_000, () => Date.now() - frozeAt > 2.5 * LEASE_TTL_MS);
      const ttl = value(await other.call<Obj>("Lease", "TimeToLive", { leaseId: keptId }), "ttl of the kept lease");
      assert.equal(ttl["expiring"] ?? false, false);
      assert.ok(renewals.filter((r) => r.atMs > frozeAt && r.ok).length >= 5, JSON.stringify(renewals));
      assert.equal(waitDone, false, "the blocking acquire still waits");

      // kill -9 of the leader: the new leader is frozen too.
      const oldLeader = await other.leaderId(5_000);
      await cluster.kill9(oldLeader);
      const alive = cluster.endpoints().filter((e) => e !== cluster.member(oldLeader).clientAddress);
      const survivor = cluster.testClient(alive);
      clients.push(survivor);
      const newLeader = await until("a new leader", 15_000, async () => {
        const id = await survivor.leaderId(5_000).catch(() => "");
        return id !== "" && id !== oldLeader ? id : null;
      });
      const s = value(await survivor.callAt<Obj>(cluster.member(newLeader).clientAddress, "Cluster", "Status", {}), "status");
      assert.deepEqual([s["frozen"], s["frozenReason"], s["frozenBy"]], [true, "drill", ADMIN_CLIENT_IDENTITY]);
      assertFrozen(await survivor.callSameSeq("Lease", "Grant", { clientId: "o", seq: 2, ttlMs: 60_000 }), "a new lease on the new leader");
      assert.equal(waitDone, false, "the blocking acquire still waits after the leader's kill");

      // Thaw, with the CLI: the waiter gets the lock with a higher token; new grants succeed.
      const thaw = await tenurectl(["thaw", "--output", "json"], alive);
      assert.equal(thaw.code, 0, thaw.stderr);
      assert.deepEqual(JSON.parse(thaw.stdout), { frozen: false, alreadyThawed: false, granted: 1 });
      const granted = value(await waiting, "the blocking acquire");
      const waiterToken = Number(granted["token"]);
      assert.ok(waiterToken > firstToken, `${waiterToken} > ${firstToken}`);
      const now = value(await survivor.call<Obj>("Lock", "Status", { name: "db" }), "status db");
      assert.equal(String((now["holder"] as Obj)["leaseId"]), wLease);
      const fresh = value(await survivor.callSameSeq<Obj>("Lease", "Grant", { clientId: "o", seq: 3, ttlMs: 60_000 }), "grant after thaw");
      const cache = value(
        await survivor.callSameSeq<Obj>("Lock", "Acquire", {
          clientId: "o",
          seq: 4,
          name: "cache",
          leaseId: String(fresh["leaseId"]),
          wait: false,
        }),
        "acquire after thaw",
      );
      assert.ok(Number(cache["token"]) > waiterToken);
      const after = await tenurectl(["status", "--output", "json"], alive);
      assert.equal((JSON.parse(after.stdout) as { frozen: Obj }).frozen["frozen"], false);
    } finally {
      stopped = true;
      await keepAlive;
      for (const c of clients) c.close();
    }
  });
});
