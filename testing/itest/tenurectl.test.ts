// tenurectl against three real tenured processes over mutual TLS (issue 15 point 3's "done when"):
// the CLI runs as a child process (the compiled dist/tenurectl.mjs when the runner built one, as
// an operator runs it; else the sources), and the test reads its stdout, stderr and exit code.
// The lock-run test cuts the CLI's own connections (a proxy per
// member in front of the cluster's, used by nobody else) while `sleep 60` holds a lock: the child
// must be dead before the server grants the lock to a second client waiting for it, and that
// holder's token is higher.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { TenureClient } from "../../client-sdk/index.ts";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import { serverArgs } from "./server_command.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { until } from "./wait.ts";

/** No lock-delay: the hand-off after a lost lease is then bounded by the lease alone, which is
 *  what the CLI's kill must beat. */
const LOCK_DELAY_MS = 0;

type Obj = Record<string, unknown>;
interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}
interface CliEvent {
  readonly atMs: number;
  readonly body: Obj;
}

let cluster: ProcessCluster;

function tlsArgs(identity = ADMIN_CLIENT_IDENTITY): string[] {
  const t = cluster.clientTls(identity);
  return ["--ca", String(t.caFile), "--cert", String(t.certFile), "--key", String(t.keyFile)];
}

/** Runs tenurectl to completion; `events` gets each stderr line with the time it was seen. */
function cli(
  args: readonly string[],
  o: { endpoints?: readonly string[]; events?: CliEvent[]; identity?: string } = {},
): {
  pid: number;
  done: Promise<CliRun>;
} {
  const child = spawn(
    process.execPath,
    // The global flags first: everything after a `--` is the child's.
    [...serverArgs("tenurectl"), "--endpoints", (o.endpoints ?? cluster.endpoints()).join(","), ...tlsArgs(o.identity), ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  createInterface({ input: child.stderr }).on("line", (line) => {
    stderr += `${line}\n`;
    try {
      o.events?.push({ atMs: performance.now(), body: JSON.parse(line) as Obj });
    } catch {
      // a plain message
    }
  });
  const done = new Promise<CliRun>((resolve) => child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { pid: child.pid ?? 0, done };
}

const run = (args: readonly string[], o: { endpoints?: readonly string[]; identity?: string } = {}): Promise<CliRun> => cli(args, o).done;

function json(r: CliRun): Obj {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Obj;
}

describe("tenurectl on a real cluster", { timeout: 180_000 }, () => {
  before(async () => {
    cluster = await ProcessCluster.start({
      lockDelayMs: LOCK_DELAY_MS,
      clientIdentities: [ADMIN_CLIENT_IDENTITY],
      adminIdentities: [ADMIN_CLIENT_IDENTITY],
    });
    const c = cluster.testClient();
    await c.leaderId(20_000);
    c.close();
  });
  after(async () => {
    await cluster?.stopAll();
  });

  it("status: one table with every member, one leader, terms, indexes, lag and transport", async () => {
    const leader = await until("every member to name one leader", 20_000, async () => {
      const r = await run(["status", "--output", "json"]);
      const v = JSON.parse(r.stdout) as { leader: string | null; agreed: boolean };
      return r.code === 0 && v.agreed ? v.leader : null;
    });
    const r = await run(["status"]);
    console.log(r.stdout);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(
      lines[0] ?? "",
      new RegExp(`^leader ${leader}, term \\d+; 3/3 endpoints answered; you are ${ADMIN_CLIENT_IDENTITY} \\(admin\\)`),
    );
    assert.match(lines[1] ?? "", /^MEMBER\s+ENDPOINT\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\s+LAG\s+LEADER\s+WITNESS\s+TRANSPORT$/);
    const rows = lines.slice(2).map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((c) => c[0]).sort(), ["a", "b", "c"]);
    for (const row of rows) {
      assert.equal(row[1], cluster.member(row[0] ?? "").clientAddress);
      assert.equal(row[2], row[0] === leader ? "leader" : "follower");
      assert.match(row[3] ?? "", /^\d+$/);
      assert.equal(row.at(-1), "mTLS");
    }
    assert.equal(rows.filter((c) => c.includes("*")).length, 1);
    const v = json(await run(["status", "--output", "json"])) as { members: { id: string; lag: number; appliedIndex: number }[] };
    assert.equal(v.members.length, 3);
    for (const m of v.members) assert.ok(Number.isInteger(m.lag) && m.lag >= 0 && m.appliedIndex > 0, JSON.stringify(m));
    const members = json(await run(["members", "--output", "json"])) as { members: { id: string; leader: boolean }[] };
    assert.deepEqual(members.members.map((m) => m.id).sort(), ["a", "b", "c"]);
    assert.deepEqual(
      members.members.filter((m) => m.leader).map((m) => m.id),
      [leader],
    );
  });

  it("lease grant, ttl, list, revoke; ttl of a revoked lease fails with exit 1", async () => {
    const g = json(await run(["lease", "grant", "--ttl-ms", "60000", "--output", "json"]));
    const id = String(g["leaseId"]);
    const t = json(await run(["lease", "ttl", id, "--output", "json"]));
    assert.equal(t["ttlMs"], 60_000);
    assert.ok(Number(t["remainingMs"]) > 0 && Number(t["remainingMs"]) <= 60_600);
    const l = json(await run(["lease", "list", "--output", "json"])) as { leases: { leaseId: string }[] };
    assert.ok(l.leases.some((x) => x.leaseId === id));
    assert.equal((await run(["lease", "revoke", id])).code, 0);
    const gone = await run(["lease", "ttl", id]);
    assert.equal(gone.code, 1, gone.stderr);
    assert.match(gone.stderr, /LEASE_NOT_FOUND/);
  });

  it("lock acquire, status, token check, a busy lock (exit 1), release with a wrong and the right token", async () => {
    const a = json(await run(["lock", "acquire", "cli-job", "--ttl-ms", "60000", "--output", "json"]));
    const token = String(a["token"]);
    const s = json(await run(["lock", "status", "cli-job", "--output", "json"]));
    assert.equal(s["state"], "held");
    assert.equal(s["token"], token);
    assert.equal(s["holderLeaseId"], a["leaseId"]);
    assert.equal((await run(["token", "check", "cli-job", token])).code, 0);
    const busy = await run(["lock", "acquire", "cli-job", "--no-wait"]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /LOCK_HELD/);
    const wrong = await run(["lock", "release", "cli-job", String(Number(token) + 1000)]);
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.equal((await run(["lock", "release", "cli-job", token])).code, 0);
    assert.equal(json(await run(["lock", "status", "cli-job", "--output", "json"]))["state"], "free");
    const stale = await run(["token", "check", "cli-job", token]);
    assert.equal(stale.code, 1);
    assert.match(stale.stdout, /NOT current/);
  });

  it("lock NAME -- sleep 60: cut from the cluster, the child is dead before the lock passes on, and the next token is higher", async () => {
    const probe = cluster.testClient();
    const leader = await probe.leaderId(20_000);
    probe.close();
    // The CLI's own way in: a proxy to the leader's address that nobody else uses (so cutting it
    // cuts only the CLI). Only the leader: a NOT_LEADER hint would name the cluster's own proxy.
    const own = await TcpProxy.start(cluster.member(leader).clientAddress);
    const ttlMs = 3_000;
    const events: CliEvent[] = [];
    const holder = cli(["lock", "cut-job", "--ttl-ms", String(ttlMs), "--kill-grace-ms", "500", "--output", "json", "--", "sleep", "60"], {
      endpoints: [own.address],
      events,
    });
    const second = new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(ADMIN_CLIENT_IDENTITY) });
    try {
      let early: CliRun | null = null;
      void holder.done.then((r) => (early = r));
      const acquired = await until("the CLI to hold cut-job", 30_000, () => {
        if (early !== null) assert.fail(`tenurectl exited early: ${JSON.stringify(early)}`);
        return events.find((e) => e.body["event"] === "lock-acquired");
      });
      const firstToken = Number(acquired.body["token"]);
      assert.ok(Number(acquired.body["validUntilMs"]) > Date.now(), "TENURE_VALID_UNTIL is ahead");
      const started = await until("the child to start", 10_000, () => events.find((e) => e.body["event"] === "child-started"));
      const childPid = Number(started.body["pid"]);
      const env = (await import("node:fs")).readFileSync(`/proc/${childPid}/environ`, "utf8").split("\0");
      assert.ok(env.includes(`TENURE_FENCING_TOKEN=${firstToken}`), "the child has the token");
      assert.ok(
        env.some((e) => /^TENURE_VALID_UNTIL=\d{13}$/.test(e)),
        "the child has the validity",
      );
      let grantedAtMs = Number.NaN;
      const waiting = second.lock("cut-job", { ttlMs: 10_000 }).then((lock) => {
        grantedAtMs = performance.now();
        return lock;
      });
      // Two TTLs with renewals landing: the child keeps running.
      await new Promise((r) => setTimeout(r, 2 * ttlMs));
      assert.ok(!events.some((e) => String(e.body["event"]).startsWith("child-sig")), "no signal while renewals land");
      assert.ok(Number.isNaN(grantedAtMs), "the second client still waits");
      const cutAtMs = performance.now();
      own.cut();
      const result = await holder.done;
      const lock = await waiting;
      const termAt = events.find((e) => e.body["event"] === "child-sigterm")?.atMs ?? Number.NaN;
      const exitedAt = events.find((e) => e.body["event"] === "child-exited")?.atMs ?? Number.NaN;
      console.log(
        `cut -> SIGTERM ${(termAt - cutAtMs).toFixed(0)} ms, -> child dead ${(exitedAt - cutAtMs).toFixed(0)} ms, ` +
          `-> second holder granted ${(grantedAtMs - cutAtMs).toFixed(0)} ms (child dead ${(grantedAtMs - exitedAt).toFixed(0)} ms before)`,
      );
      assert.equal(result.code, 143, result.stderr); // sleep's own status: killed by SIGTERM
      assert.ok(termAt > cutAtMs, "SIGTERM came after the cut");
      assert.ok(exitedAt < grantedAtMs, "the child was dead before the lock passed on");
      assert.ok(lock.token > firstToken, `next token ${lock.token} > ${firstToken}`);
      await lock.release();
    } finally {
      second.close();
      await own.close();
    }
  });
});
