// Issue 13 on real tenured processes: a stopped member whose disk lies is either recovered
// without voting on what it lost (point 2) or refused with a clear message (point 1), never
// served with less. Three members grant a few hundred leases and locks; one follower is killed
// (kill -9: its WAL holds the live pages) and, after a restart that must come back whole,
// stopped cleanly (its WAL checkpointed into raft.db). Each case damages a COPY of the stopped
// follower's data directory the way the tester did (WAL bytes flipped at 10/50/90%, WAL cut to
// half, to 30% and at a frame boundary, WAL deleted, raft.db bytes flipped, the ack record
// deleted or damaged) and starts the follower on it:
//
// - recoverable (every case but the ack record's): it starts, logs one storage_recovery warning
//   (what it found, untilIndex, where the evidence was kept), catches up from the leader, logs
//   recovery_done, and then, as the leader (TransferLeader), still holds every lease and lock
//   token acknowledged before; a new token is higher than all of them. In the 50% case the
//   leader is SIGSTOPped first, so the recovering member cannot catch up: with only it and the
//   third member running no leader is elected (its logged pre-vote refusals), until SIGCONT;
// - the ack record lost or damaged (term and vote unknown): it exits with 1 and one
//   {"event":"fatal"} line naming a StorageCorruptError, what was found and what to do.
//
// The same for a witness (tenure-witness stores with the same SqliteStorage), on a few cases.
//
// Before issue 13 the WAL cases started and served a shorter log, and WAL deletion was refused as
// an "empty" directory; before point 2 every case here was refused.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { ADMIN_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import type { CallResult, TestClient } from "./test_client.ts";
import { until } from "./wait.ts";

type Obj = Record<string, unknown>;

const LEASES = 300;
const LOCKS = 20;
const CLIENTS = 10;
const TTL_MS = 3_600_000; // longer than the test: nothing expires
const WAL = "raft.db-wal";
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;
const TICK_MS = 50;
const ELECTION_TIMEOUT_TICKS = 10;
const ELECTION_TIMEOUT_MS = TICK_MS * ELECTION_TIMEOUT_TICKS;

function ok(r: CallResult<Obj>, what: string): Obj {
  if (!r.ok) assert.fail(`${what}: ${JSON.stringify(r)}`);
  return r.value;
}

interface Ctx {
  readonly cluster: ProcessCluster;
  readonly c: TestClient;
}

async function statusOf(ctx: Ctx, id: string): Promise<Obj | null> {
  const r = await ctx.c.callAt<Obj>(ctx.cluster.member(id).clientAddress, "Cluster", "Status", {}, 2000);
  return r.ok ? r.value : null;
}

/** Until `id` holds (a witness: has committed; a voter: has applied) what the leader committed. */
async function caughtUp(ctx: Ctx, id: string, witness: boolean): Promise<void> {
  const leaderId = await ctx.c.leaderId(15_000);
  const leader = await statusOf(ctx, leaderId);
  const target = Number(leader?.["commitIndex"] ?? 0);
  const field = witness ? "commitIndex" : "appliedIndex";
  await until(`${id} ${field} ${target}`, 30_000, async () => Number((await statusOf(ctx, id))?.[field] ?? -1) >= target);
}

/** The frames of the WAL's current generation (the header's salts), without our own checker. */
function currentFrames(walPath: string): { frames: number; frameBytes: number } {
  const image = fs.readFileSync(walPath);
  const pageBytes = image.readUInt32BE(8);
  const frameBytes = FRAME_HEADER_BYTES + pageBytes;
  let frames = 0;
  for (let at = WAL_HEADER_BYTES; at + frameBytes <= image.length; at += frameBytes) {
    if (image.readUInt32BE(at + 8) !== image.readUInt32BE(16) || image.readUInt32BE(at + 12) !== image.readUInt32BE(20)) break;
    frames++;
  }
  return { frames, frameBytes };
}

function flip(file: string, offset: number, count = 8): void {
  const image = fs.readFileSync(file);
  assert.ok(offset + count <= image.length, `offset ${offset} beyond ${file}`);
  for (let i = 0; i < count; i++) image[offset + i] = (image[offset + i] ?? 0) ^ 0xa5;
  fs.writeFileSync(file, image);
}

function flipWalAt(dir: string, fraction: number): void {
  const walPath = path.join(dir, WAL);
  const { frames, frameBytes } = currentFrames(walPath);
  assert.ok(frames > 50, `only ${frames} frames in the WAL`);
  const frame = Math.max(1, Math.floor(frames * fraction));
  flip(walPath, WAL_HEADER_BYTES + (frame - 1) * frameBytes + FRAME_HEADER_BYTES + 200);
}

/** Reads from a throwaway copy (SQLite would otherwise touch the case's files). */
function queryCopy<T>(base: string, run: (db: Database.Database) => T): T {
  const dir = fs.mkdtempSync(path.join(path.dirname(base), "query-"));
  fs.cpSync(base, dir, { recursive: true });
  fs.rmSync(path.join(dir, "LOCK"), { force: true });
  const db = new Database(path.join(dir, "raft.db"));
  try {
    return run(db);
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Case {
  readonly name: string;
  readonly base: () => string;
  readonly damage: (dir: string) => void;
  /** recover: what storage_recovery must report as found; refuse: the fatal line's error. */
  readonly expect: { readonly recover: RegExp } | { readonly refuse: RegExp };
  /** Prove the recovering member does not vote (the leader SIGSTOPped while it recovers). */
  readonly withoutLeader?: boolean;
}

interface Bases {
  readonly crashed: string;
  readonly clean: string;
}

function casesFor(bases: Bases): Case[] {
  // Read when a case runs: the bases are made by the suite's before().
  const crashedBase = (): string => bases.crashed;
  const cleanBase = (): string => bases.clean;
  return [
    ...[0.1, 0.5, 0.9].map(
      (fraction): Case => ({
        name: `WAL: 8 bytes flipped at ${fraction * 100}% of its frames`,
        base: crashedBase,
        damage: (dir) => flipWalAt(dir, fraction),
        expect: { recover: /raft\.db-wal: corrupt at frame \d+ \(byte offset \d+\): frame \d+: checksum mismatch, yet commit frame \d+/ },
        withoutLeader: fraction === 0.5,
      }),
    ),
    ...[0.5, 0.3].map(
      (fraction): Case => ({
        name: `WAL truncated to ${fraction * 100}%`,
        base: crashedBase,
        damage: (dir) => {
          const walPath = path.join(dir, WAL);
          fs.truncateSync(walPath, Math.floor(fs.statSync(walPath).size * fraction));
        },
        expect: { recover: /raft\.db-wal is \d+ bytes, but .*ack_record \(generation \d+\) says .* it was truncated/ },
      }),
    ),
    {
      name: "WAL truncated at a frame boundary (half its frames)",
      base: crashedBase,
      damage: (dir) => {
        const walPath = path.join(dir, WAL);
        const { frames, frameBytes } = currentFrames(walPath);
        fs.truncateSync(walPath, WAL_HEADER_BYTES + Math.floor(frames / 2) * frameBytes);
      },
      expect: {
        recover: /raft\.db-wal is \d+ bytes, but .* it was truncated|lost acknowledged data: .*last log index: expected >= \d+, found \d+/,
      },
    },
    {
      name: "WAL deleted",
      base: crashedBase,
      damage: (dir) => fs.rmSync(path.join(dir, WAL)),
      expect: { recover: /raft\.db-wal is missing, but .*ack_record \(generation \d+\) says the store was open and not closed cleanly/ },
    },
    {
      name: "raft.db: 8 bytes flipped inside a log entry (after a clean close checkpointed it)",
      base: cleanBase,
      damage: (dir) => {
        const data = queryCopy(cleanBase(), (db) => {
          const row = db.prepare("SELECT data FROM entries WHERE idx = (SELECT MAX(idx) / 2 FROM entries)").get() as { data: Buffer };
          return Buffer.from(row.data);
        });
        const file = path.join(dir, "raft.db");
        const image = fs.readFileSync(file);
        // Every copy: an older version of the page may still sit in a free page.
        let copies = 0;
        for (let at = image.indexOf(data); at >= 0; at = image.indexOf(data, at + 1)) {
          flip(file, at + Math.floor(data.length / 2) - 4);
          copies++;
        }
        assert.ok(copies > 0 && data.length >= 12, "the entry's bytes are in raft.db");
      },
      expect: { recover: /table entries: index \d+: (checksum mismatch|row has wrong types)|integrity_check/ },
    },
    {
      name: "raft.db: 8 bytes flipped in the entries table's root page header",
      base: cleanBase,
      damage: (dir) => {
        const { root, pageBytes } = queryCopy(cleanBase(), (db) => ({
          root: (db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'entries'").get() as { rootpage: number }).rootpage,
          pageBytes: db.pragma("page_size", { simple: true }) as number,
        }));
        flip(path.join(dir, "raft.db"), (root - 1) * pageBytes + (root === 1 ? 100 : 0));
      },
      expect: { recover: /integrity_check|malformed|SQLITE_CORRUPT/ },
    },
    {
      name: "ack record deleted",
      base: crashedBase,
      damage: (dir) => fs.rmSync(path.join(dir, "ack_record")),
      expect: { refuse: /ack_record is missing, but raft\.db \(schema 2\) was always written with one.*ReplaceMember/ },
    },
    {
      name: "ack record damaged",
      base: crashedBase,
      damage: (dir) => flip(path.join(dir, "ack_record"), 60, 2),
      expect: { refuse: /ack_record: checksum mismatch: the record of what this member acknowledged is damaged.*ReplaceMember/ },
    },
  ];
}

interface SuiteOptions {
  readonly title: string;
  /** Members that run tenure-witness; the victim is the first of them, else a follower. */
  readonly witnesses: readonly string[];
  readonly leases: number;
  /** Which cases run (all when left out). */
  readonly only?: (name: string) => boolean;
}

function suite(options: SuiteOptions): void {
  describe(options.title, { timeout: 600_000 }, () => {
    let ctx: Ctx;
    let victim = "";
    const witness = options.witnesses.length > 0;
    const bases = { crashed: "", clean: "" };
    // The victim's directory after the last recovered case's clean stop: its real last state. The
    // clean base is older than what it acknowledged since, an undetectable old copy (README).
    let latest: string | null = null;
    const leases: string[] = [];
    const tokens = new Map<string, string>(); // lock name -> token
    const seqs = new Map<string, number>();
    const nextSeq = (clientId: string): number => {
      const s = (seqs.get(clientId) ?? 0) + 1;
      seqs.set(clientId, s + 1);
      return s;
    };
    const grantAll = async (): Promise<void> => {
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, w) => {
          const clientId = `corruption-${w}`;
          for (let i = 0; i < options.leases / CLIENTS; i++) {
            const request = { clientId, seq: nextSeq(clientId), ttlMs: TTL_MS };
            const r = ok(await ctx.c.call<Obj>("Lease", "Grant", request, 30_000), "grant");
            leases.push(String(r["leaseId"]));
            if (i >= LOCKS / CLIENTS) continue;
            const name = `corruption-lock-${w}-${i}`;
            const acquire = { clientId, seq: nextSeq(clientId), name, leaseId: r["leaseId"], wait: false };
            tokens.set(name, String(ok(await ctx.c.call<Obj>("Lock", "Acquire", acquire, 30_000), "acquire")["token"]));
          }
        }),
      );
    };

    before(async () => {
      const cluster = await ProcessCluster.start({
        tickMs: TICK_MS,
        electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
        witnesses: options.witnesses,
      });
      ctx = { cluster, c: cluster.testClient() };
      const leaderId = await ctx.c.leaderId(15_000);
      victim = options.witnesses[0] ?? cluster.members.map((m) => m.id).find((id) => id !== leaderId) ?? assert.fail("no follower");
      await grantAll();
      // Enough frames in the WAL's current generation (SQLite's auto-checkpoint restarts it every
      // ~1000 pages) that 10% and 90% of it both have later commits.
      const liveWal = path.join(cluster.dataDir(victim), WAL);
      for (let extra = 0; currentFrames(liveWal).frames < 200; extra++) {
        assert.ok(extra < 2000, "the WAL never grew");
        const clientId = `corruption-filler-${extra % CLIENTS}`;
        ok(await ctx.c.call<Obj>("Lease", "Grant", { clientId, seq: nextSeq(clientId), ttlMs: TTL_MS }, 30_000), "filler grant");
        await caughtUp(ctx, victim, witness);
      }
      await caughtUp(ctx, victim, witness);
      // Idle past the ack record's interval (1 s): its watermark now holds the exact last index.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.kill9(victim);
      bases.crashed = path.join(cluster.root, "base-crashed");
      fs.cpSync(cluster.dataDir(victim), bases.crashed, { recursive: true });
      // No false alarm on a real crash: the killed member comes back with all of it.
      await cluster.startMember(victim, { bootstrap: false });
      await caughtUp(ctx, victim, witness);
      await cluster.stop(victim);
      bases.clean = path.join(cluster.root, "base-clean");
      fs.cpSync(cluster.dataDir(victim), bases.clean, { recursive: true });
      assert.ok(!fs.existsSync(path.join(bases.clean, WAL)), "a clean stop checkpoints the WAL into raft.db");
    });

    after(async () => {
      ctx?.c.close();
      await ctx?.cluster.stopAll();
    });

    /** Every lease and lock token acknowledged before the damage, read back through the API. */
    const assertIntact = async (): Promise<void> => {
      const { c } = ctx;
      assert.equal(leases.length, options.leases);
      // Lease.List is a linearizable read of every live lease (expiry removes one; the TTL is
      // longer than the test), paged: one read per page instead of a TimeToLive per lease.
      const listed = new Set<string>();
      for (let after = "0", page = 0; ; page++) {
        assert.ok(page < 100, "Lease.List never ended");
        const r = ok(await c.call<Obj>("Lease", "List", { afterLeaseId: after, limit: 1000 }), "lease list");
        const rows = r["leases"] as Obj[];
        for (const row of rows) listed.add(String(row["leaseId"]));
        if (r["more"] !== true || rows.length === 0) break;
        after = String(rows[rows.length - 1]?.["leaseId"]);
      }
      const lost = leases.filter((id) => !listed.has(id));
      assert.deepEqual(lost, [], `acknowledged leases missing after recovery: ${lost.slice(0, 10).join(", ")}`);
      // And one through TimeToLive, the call a holder makes.
      const first = ok(await c.call<Obj>("Lease", "TimeToLive", { leaseId: leases[0] }), `lease ${leases[0]}`);
      assert.ok(Number(first["remainingMs"]) > 0, `lease ${leases[0]} alive`);
      assert.equal(tokens.size, LOCKS);
      for (const [name, token] of tokens) {
        const status = ok(await c.call<Obj>("Lock", "Status", { name }), `lock ${name}`);
        assert.equal(String((status["holder"] as Obj | undefined)?.["token"]), token, `lock ${name} keeps token ${token}`);
      }
    };

    /** A new lock's token is higher than every token acknowledged before (never issued twice). */
    const assertNewTokenHigher = async (): Promise<void> => {
      const { c } = ctx;
      const clientId = "corruption-after";
      const lease = ok(await c.call<Obj>("Lease", "Grant", { clientId, seq: nextSeq(clientId), ttlMs: TTL_MS }, 30_000), "grant");
      const name = `corruption-after-${nextSeq(clientId)}`;
      const acquire = { clientId, seq: nextSeq(clientId), name, leaseId: lease["leaseId"], wait: false };
      const token = BigInt(String(ok(await c.call<Obj>("Lock", "Acquire", acquire, 30_000), "acquire")["token"]));
      let highest = 0n;
      for (const t of tokens.values()) if (BigInt(t) > highest) highest = BigInt(t);
      assert.ok(token > highest, `new token ${token} not above ${highest}`);
    };

    /** The victim's logged line with this event (its current run), parsed, once it is there. */
    const eventLine = (event: string, waitMs: number): Promise<Obj> =>
      until(`${victim} logs ${event}`, waitMs, () => {
        const line = (ctx.cluster.logs.get(victim) ?? []).find((l) => l.includes(`"event":"${event}"`));
        return line === undefined ? undefined : (JSON.parse(line.slice(line.indexOf("{"))) as Obj);
      }).catch((error: unknown) => {
        const last = (ctx.cluster.logs.get(victim) ?? []).slice(-12).join("\n");
        throw new Error(`${String(error)}; ${victim}'s last lines:\n${last}`);
      });

    /**
     * The leader SIGSTOPped while the victim recovers: the third member's campaigns get the
     * victim's refusals, so no leader is elected (with the victim voting on its shortened log,
     * the third member, whose log is longer, would have won at once).
     */
    const proveNoVote = async (stopped: string, other: string, electionTimeoutMs: number): Promise<void> => {
      const { cluster } = ctx;
      await new Promise((resolve) => setTimeout(resolve, 6 * electionTimeoutMs));
      for (const id of [victim, other]) {
        const st = await statusOf(ctx, id);
        assert.notEqual(st?.["role"], "leader", `${id} became leader while ${stopped} was stopped`);
      }
      const refusals = (cluster.logs.get(victim) ?? []).filter((l) =>
        new RegExp(`${victim} rejects (pre-vote|vote) from ${other} at term \\d+: recovering untilIndex=\\d+`).test(l),
      );
      assert.ok(refusals.length > 0, `${victim} logged no vote refusal to ${other}`);
      assert.equal((await statusOf(ctx, victim))?.["recovering"], true, `${victim}'s Cluster.Status says it is recovering`);
      assert.ok(!(cluster.logs.get(victim) ?? []).some((l) => l.includes('"event":"recovery_done"')), "caught up without a leader");
    };

    for (const k of casesFor(bases).filter((x) => options.only?.(x.name) ?? true)) {
      const what = "recover" in k.expect ? "recovered without voting on what it lost" : "refused with a clear message";
      it(`${k.name}: ${what}; acknowledged leases and tokens intact`, async (t) => {
        try {
          await runCase(k, t);
        } finally {
          await ctx.cluster.stop(victim); // never two runs of it on one directory
        }
      });
    }

    const runCase = async (k: Case, t: { diagnostic: (message: string) => void }): Promise<void> => {
      {
        const { cluster, c } = ctx;
        const dir = cluster.dataDir(victim);
        fs.rmSync(dir, { recursive: true, force: true });
        fs.cpSync(k.base(), dir, { recursive: true });
        k.damage(dir);
        // A leader that leads now (a member may still name the victim, stopped by the last case).
        const leaderBefore = await until("a leader other than the victim", 15_000, async () => {
          const id = await c.leaderId(5_000);
          return id !== victim && (await statusOf(ctx, id))?.["role"] === "leader" ? id : undefined;
        });
        const other = cluster.members.map((m) => m.id).find((id) => id !== victim && id !== leaderBefore) ?? "";
        const stopped = k.withoutLeader === true ? leaderBefore : null;
        const leaderProcess = cluster.processes.get(leaderBefore);
        if (stopped !== null) leaderProcess?.kill("SIGSTOP");
        try {
          const started = await cluster.startMember(victim, { bootstrap: false }).then(
            () => "started",
            (e: unknown) => String(e),
          );
          if ("refuse" in k.expect) {
            if (started === "started") {
              const served = await statusOf(ctx, victim);
              await cluster.stop(victim);
              assert.fail(`${victim} started and served on damaged data: ${JSON.stringify(served)}`);
            }
            assert.match(started, new RegExp(`^Error: ${victim} exited with 1:`));
            // "exit" can come before the pipes are drained: wait for the line itself.
            const fatal = await until("the fatal line", 5000, () =>
              (cluster.logs.get(victim) ?? []).find((l) => l.includes('"event":"fatal"')),
            );
            const parsed = JSON.parse(fatal.slice(fatal.indexOf("{"))) as Obj;
            assert.equal(parsed["where"], "startup");
            assert.match(String(parsed["error"]), /^StorageCorruptError: /);
            assert.match(String(parsed["error"]), k.expect.refuse);
            t.diagnostic(String(parsed["error"]).slice(0, 400));
            assert.notEqual(await c.leaderId(15_000), victim);
            ok(await c.call<Obj>("Lease", "TimeToLive", { leaseId: leases[0] }), "the others keep serving");
            return;
          }
          assert.equal(started, "started", `${victim} did not start on a recoverable store`);
          const recovery = await eventLine("storage_recovery", 10_000);
          assert.match(JSON.stringify(recovery["found"]), k.expect.recover);
          const untilIndex = Number(recovery["untilIndex"]);
          assert.ok(untilIndex > Number(recovery["lastIndex"]) || /truncated/.test(JSON.stringify(recovery["found"])));
          for (const kept of recovery["evidence"] as string[]) assert.ok(fs.existsSync(kept), `evidence ${kept} kept`);
          assert.ok(fs.existsSync(path.join(dir, "incarnation")) === fs.existsSync(path.join(k.base(), "incarnation")));
          t.diagnostic(`found ${JSON.stringify(recovery["found"]).slice(0, 300)}; untilIndex ${untilIndex}`);
          if (stopped !== null) {
            await proveNoVote(stopped, other, ELECTION_TIMEOUT_MS);
            leaderProcess?.kill("SIGCONT");
          }
          const done = await eventLine("recovery_done", 30_000);
          assert.match(String(done["line"]), new RegExp(`^${victim} recovery_done untilIndex=${untilIndex} lastIndex=\\d+$`));
        } finally {
          if (stopped !== null) leaderProcess?.kill("SIGCONT");
        }
        await caughtUp(ctx, victim, witness);
        assert.equal((await statusOf(ctx, victim))?.["recovering"], false, `${victim} no longer says it is recovering`);
        if (!witness) {
          // As the leader, the recovered member answers every read from its own state machine.
          const admin = cluster.testClient(cluster.endpoints(), ADMIN_CLIENT_IDENTITY);
          try {
            await until(`${victim} leads`, 30_000, async () => {
              const moved = await admin.call<Obj>("Cluster", "TransferLeader", { toNodeId: victim }, 5_000);
              if (!moved.ok && moved.reason !== "REFUSED") assert.fail(`transfer: ${moved.reason} ${moved.details}`);
              return (await c.leaderId(5_000)) === victim;
            });
          } finally {
            admin.close();
          }
        }
        await assertIntact();
        await assertNewTokenHigher();
        await cluster.stop(victim);
        latest = path.join(cluster.root, "latest");
        fs.rmSync(latest, { recursive: true, force: true });
        fs.cpSync(dir, latest, { recursive: true });
      }
    };

    it("on its undamaged data the member rejoins, and every acknowledged lease and token is intact", async () => {
      const { cluster } = ctx;
      const dir = cluster.dataDir(victim);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(latest ?? bases.clean, dir, { recursive: true });
      await cluster.startMember(victim, { bootstrap: false });
      await caughtUp(ctx, victim, witness);
      assert.ok(!(cluster.logs.get(victim) ?? []).some((l) => l.includes('"event":"storage_recovery"')), "no false alarm");
      await assertIntact();
    });
  });
}

suite({ title: "a stopped voter whose disk lies recovers without voting, or is refused", witnesses: [], leases: LEASES });
// The witness runs the same SqliteStorage through openStorage: the same recoveries, a few of them.
suite({
  title: "a stopped witness whose disk lies recovers without voting (same storage, same checks)",
  witnesses: ["c"],
  leases: 100,
  only: (name) => /50%|deleted|root page/.test(name),
});
