// Backup and restore with real processes over mutual TLS (issue 13 point 6): tokens granted on
// cluster 1 before and after a backup, `tenured backup` by an admin (a non-admin is refused),
// `tenured restore` of every member of a new cluster 2 from the file (a corrupt copy is refused),
// then every token cluster 2 grants is above every token cluster 1 granted, and cluster 2 holds
// the backup's lease and lock.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ADMIN_CLIENT_IDENTITY, DEFAULT_CLIENT_IDENTITY, ProcessCluster } from "./process_cluster.ts";
import { serverArgs } from "./server_command.ts";
import type { CallResult, TestClient } from "./test_client.ts";

type Obj = Record<string, unknown>;

const HELD_TTL_MS = 60_000;

function ok<T>(r: CallResult<T>, what: string): T {
  if (!r.ok) assert.fail(`${what}: ${grpc.status[r.code]} ${r.reason} ${r.details}`);
  return r.value;
}

const seqs = new Map<string, number>();
function nextSeq(clientId: string): number {
  const s = (seqs.get(clientId) ?? 0) + 1;
  seqs.set(clientId, s);
  return s;
}

async function grant(c: TestClient, clientId: string, ttlMs: number): Promise<string> {
  return String(ok(await c.call<Obj>("Lease", "Grant", { clientId, seq: nextSeq(clientId), ttlMs }), "grant")["leaseId"]);
}

/** A try-lock that must succeed; returns its token. */
async function acquire(c: TestClient, clientId: string, name: string, leaseId: string): Promise<number> {
  const r = ok(await c.call<Obj>("Lock", "Acquire", { clientId, seq: nextSeq(clientId), name, leaseId, wait: false }), `acquire ${name}`);
  return Number(r["token"]);
}

async function release(c: TestClient, clientId: string, name: string, token: number): Promise<void> {
  const r = ok(await c.call<Obj>("Lock", "Release", { clientId, seq: nextSeq(clientId), name, token: String(token) }), `release ${name}`);
  assert.equal(r["released"], true);
}

/** `count` grants on fresh names (acquire then release); returns their tokens. */
async function grants(c: TestClient, clientId: string, leaseId: string, prefix: string, count: number): Promise<number[]> {
  const tokens: number[] = [];
  for (let i = 0; i < count; i++) {
    const token = await acquire(c, clientId, `${prefix}/${i}`, leaseId);
    tokens.push(token);
    await release(c, clientId, `${prefix}/${i}`, token);
  }
  return tokens;
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `tenured <args>` as a user runs it: a child process, its exit code and output. */
function tenured(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...serverArgs("tenured"), ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function backupArgs(cluster: ProcessCluster, identity: string, out: string): string[] {
  const tls = cluster.clientTls(identity);
  return [
    "backup",
    "--endpoints",
    cluster.endpoints().join(","),
    "--out",
    out,
    "--tls-ca",
    String(tls.caFile),
    "--tls-cert",
    String(tls.certFile),
    "--tls-key",
    String(tls.keyFile),
  ];
}

function restoreArgs(cluster: ProcessCluster, from: string, id: string, dataDir: string): string[] {
  const members = cluster.members.map((m) => `${m.id}=${m.peerAddress}/${m.clientAddress}`).join(",");
  return ["restore", "--from", from, "--data-dir", dataDir, "--id", id, "--cluster-id", "prod-2", "--members", members];
}

describe("backup and restore (real processes, mutual TLS)", { timeout: 240_000 }, () => {
  const clusters: ProcessCluster[] = [];
  after(async () => {
    for (const c of clusters) await c.stopAll();
  });

  it("tokens after a restore are above every token before and after the backup; the backup's lease and lock survive", async () => {
    const one = await ProcessCluster.start({ clusterId: "prod-1" });
    clusters.push(one);
    const c1 = one.testClient();
    await c1.leaderId(20_000);

    // Before the backup: a lease holding a lock (kept through the restore) and some grants.
    const heldLease = await grant(c1, "holder", HELD_TTL_MS);
    const heldToken = await acquire(c1, "holder", "jobs/held", heldLease);
    const worker = await grant(c1, "worker", HELD_TTL_MS);
    const before = [heldToken, ...(await grants(c1, "worker", worker, "before", 5))];

    // A non-admin may not back up; an admin may.
    const file = join(one.root, "cluster-1.bak");
    const denied = await tenured(backupArgs(one, DEFAULT_CLIENT_IDENTITY, join(one.root, "denied.bak")));
    assert.equal(denied.code, 1, denied.stderr);
    assert.match(denied.stderr, /PERMISSION_DENIED: identity "itest" lacks permission admin: Cluster\.Backup needs the admin role/);
    const backup = await tenured(backupArgs(one, ADMIN_CLIENT_IDENTITY, file));
    assert.equal(backup.code, 0, backup.stderr);
    const written = JSON.parse(backup.stdout) as Obj;
    assert.equal(written["event"], "backup-written");
    assert.equal(written["clusterId"], "prod-1");
    assert.equal(written["lastToken"], Math.max(...before), "the image holds every grant made before the call");
    console.log(
      `backup: ${String(written["fileBytes"])} bytes, applied ${String(written["appliedIndex"])}, last token ${String(written["lastToken"])}`,
    );

    // After the backup, cluster 1 goes on granting: the restore must stay above these too.
    const afterBackup = await grants(c1, "worker", worker, "after", 5);
    c1.close();
    await one.stopAll({ removeData: false });

    const two = await ProcessCluster.create({ clusterId: "prod-2" });
    clusters.push(two);
    // A damaged copy is refused with a message, and leaves nothing to start from.
    const damagedFile = join(two.root, "damaged.bak");
    const bytes = Buffer.from(readFileSync(file));
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x20;
    writeFileSync(damagedFile, bytes);
    const refused = await tenured(restoreArgs(two, damagedFile, "a", join(two.root, "damaged-a")));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /damaged\.bak fails its SHA-256 checksum: the file is damaged/);

    // Every member of cluster 2 from the same file, each with its own id.
    for (const m of two.members) {
      const r = await tenured(restoreArgs(two, file, m.id, two.dataDir(m.id)));
      assert.equal(r.code, 0, r.stderr);
      const restored = JSON.parse(r.stdout) as Obj;
      assert.equal(restored["fromClusterId"], "prod-1");
      assert.ok(Number(restored["firstTokenMin"]) > Math.max(...afterBackup));
    }
    await Promise.all(two.members.map((m) => two.startMember(m.id, { bootstrap: false })));
    const c2 = two.testClient();
    await c2.leaderId(20_000);

    // The backup's lock and its lease are there, owned as before; the lease restarted at full length.
    const status = ok(await c2.call<Obj>("Lock", "Status", { name: "jobs/held" }), "status");
    const holder = status["holder"] as Obj;
    assert.equal(Number(holder["token"]), heldToken);
    assert.equal(String(holder["leaseId"]), heldLease);
    const ttl = ok(await c2.call<Obj>("Lease", "TimeToLive", { leaseId: heldLease }), "time to live");
    assert.equal(Number(ttl["ttlMs"]), HELD_TTL_MS);
    assert.ok(Number(ttl["remainingMs"]) > HELD_TTL_MS / 2, `remaining ${String(ttl["remainingMs"])} ms`);
    const valid = ok(await c2.call<Obj>("Lock", "ValidateToken", { name: "jobs/held", token: String(heldToken) }), "validate");
    assert.equal(valid["current"], true);

    // Every token cluster 2 issues is above every token cluster 1 issued, before or after the backup.
    const lease2 = await grant(c2, "worker-2", HELD_TTL_MS);
    const restoredTokens = await grants(c2, "worker-2", lease2, "restored", 5);
    const oldMax = Math.max(...before, ...afterBackup);
    for (const t of restoredTokens) assert.ok(t > oldMax, `token ${t} after the restore is not above ${oldMax}`);
    assert.deepEqual(
      restoredTokens,
      [...restoredTokens].sort((a, b) => a - b),
    );
    // The old holder still releases with its old token.
    await release(c2, "holder", "jobs/held", heldToken);
    console.log(`tokens: cluster 1 up to ${oldMax}, cluster 2 from ${Math.min(...restoredTokens)}`);
    c2.close();
  });
});
