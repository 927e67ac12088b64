// Cluster.Backup over real gRPC (a FakeNode behind the real API server, bearer tokens over
// loopback plaintext), downloaded by the real backup client into a file. The TLS path and the
// restore into a new cluster run with real processes in testing/itest/backup_restore.test.ts.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { AuditRecord } from "../auth/audit.ts";
import { Authenticator } from "../auth/authenticator.ts";
import { sha256Hex } from "../auth/token_file.ts";
import { TestApi } from "../../testing/kits/api_test_kit.ts";
import { serviceDefinition } from "../api/protos.ts";
import { BackupCallError, runBackup } from "./backup_client.ts";
import { backupChunkBytes } from "./backup_rpc.ts";
import { decodeBackupFile } from "./backup_format.ts";

const TOKENS = { ops: "ops-token-0123456789abcdefghijkl", alice: "alice-token-0123456789abcdefghij" };
const MESSAGE_BYTES_MAX = 4096;

describe("Cluster.Backup", () => {
  const dir = mkdtempSync(join(tmpdir(), "tenure-backup-rpc-"));
  const audit: AuditRecord[] = [];
  let leader: TestApi;
  let follower: TestApi;
  const tokenFile = (who: keyof typeof TOKENS): string => join(dir, `${who}.token`);

  before(async () => {
    const file = join(dir, "tokens.yaml");
    const lines = Object.entries(TOKENS).map(([identity, token]) => `  - identity: ${identity}\n    sha256: ${sha256Hex(token)}`);
    writeFileSync(file, `tokens:\n${lines.join("\n")}\n`);
    for (const [who, token] of Object.entries(TOKENS)) writeFileSync(join(dir, `${who}.token`), token);
    const auth = (): Authenticator =>
      Authenticator.start({ authConfigFile: null, tokenFile: file, adminIdentities: ["ops"], tls: false, log: () => {} });
    // A small client frame, so the image goes in many chunks.
    const options = {
      auth: auth(),
      audit: (r: AuditRecord) => void audit.push(r),
      messageBytesMax: MESSAGE_BYTES_MAX,
      clusterId: "prod-1",
    };
    leader = await TestApi.start(options);
    follower = await TestApi.start({ ...options, auth: auth() });
    follower.node.mode = { kind: "notLeader", hint: { leaderId: "a", leaderAddress: leader.handle.boundAddress() } };
    // State worth backing up: leases and a held lock (tens of KiB of image).
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${TOKENS.alice}`);
    for (let seq = 1; seq <= 150; seq++) {
      const def = serviceDefinition("Lease")["Grant"];
      assert.ok(def);
      await new Promise<void>((resolve, reject) =>
        leader.client.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          { clientId: `c${seq}`, seq: 1, ttlMs: 60_000 },
          metadata,
          (e) => (e ? reject(e) : resolve()),
        ),
      );
    }
  });
  after(async () => {
    await leader.close();
    await follower.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("an admin gets the leader's image in chunks, checked, in a file written atomically", async () => {
    const out = join(dir, "full.bak");
    writeFileSync(out, "the previous backup");
    const summary = await runBackup({
      endpoints: [leader.handle.boundAddress()],
      outFile: out,
      security: { insecure: true },
      tokenFile: tokenFile("ops"),
      timeoutMs: 10_000,
    });
    const { header, image } = decodeBackupFile(readFileSync(out));
    const machine = leader.node.machine;
    assert.deepEqual(Buffer.from(image), Buffer.from(machine.snapshot()));
    const chunks = Math.ceil(image.length / backupChunkBytes(MESSAGE_BYTES_MAX));
    assert.ok(chunks > 3, `the image went in ${chunks} chunks`);
    assert.equal(header.clusterId, "prod-1");
    assert.equal(header.appliedIndex, machine.appliedIndex());
    assert.equal(header.lastToken, machine.tokens().lastToken);
    assert.equal(header.tokenEpoch, machine.tokens().epoch);
    assert.equal(header.imageBytes, image.length);
    assert.deepEqual(
      header.members.map((m) => m.id),
      ["a", "b", "c"],
    );
    assert.equal(summary.fileBytes, readFileSync(out).length);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes(".partial-")),
      [],
      "no partial file left",
    );
    assert.ok(audit.some((r) => r.rpc === "Cluster.Backup" && r.identity === "ops" && r.outcome === "ok"));
  });

  it("a follower answers NOT_LEADER naming the leader, and the client follows it", async () => {
    const out = join(dir, "via-follower.bak");
    const summary = await runBackup({
      endpoints: [follower.handle.boundAddress()],
      outFile: out,
      security: { insecure: true },
      tokenFile: tokenFile("ops"),
      timeoutMs: 10_000,
    });
    assert.equal(summary.endpoint, leader.handle.boundAddress());
    decodeBackupFile(readFileSync(out));
  });

  it("one backup at a time per member: a second while the first waits for its read is LIMIT_EXCEEDED", async () => {
    const node = leader.node;
    const realRead = node.read.bind(node);
    let releaseRead: () => void = () => {};
    const gate = new Promise<void>((resolve) => (releaseRead = resolve));
    node.read = async (query) => {
      await gate;
      return realRead(query);
    };
    const backup = (name: string) =>
      runBackup({
        endpoints: [leader.handle.boundAddress()],
        outFile: join(dir, name),
        security: { insecure: true },
        tokenFile: tokenFile("ops"),
        timeoutMs: 10_000,
      });
    try {
      const first = backup("first.bak");
      await new Promise((resolve) => setTimeout(resolve, 200));
      await assert.rejects(backup("second.bak"), (error: unknown) => {
        assert.ok(error instanceof BackupCallError);
        assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(error.message, /a backup is already running on this member \(at most 1\)/);
        return true;
      });
      releaseRead();
      await first;
      decodeBackupFile(readFileSync(join(dir, "first.bak")));
      // The slot is free again once the first finished.
      await backup("third.bak");
    } finally {
      releaseRead();
      node.read = realRead;
    }
  });

  it("a non-admin gets PERMISSION_DENIED, audited, and no file", async () => {
    const out = join(dir, "denied.bak");
    const kept = join(dir, "kept.bak");
    writeFileSync(kept, "the previous backup");
    await assert.rejects(
      runBackup({
        endpoints: [leader.handle.boundAddress()],
        outFile: kept,
        security: { insecure: true },
        tokenFile: tokenFile("alice"),
        timeoutMs: 10_000,
      }),
    );
    assert.equal(readFileSync(kept, "utf8"), "the previous backup", "a failed backup leaves the file as it was");
    await assert.rejects(
      runBackup({
        endpoints: [leader.handle.boundAddress()],
        outFile: out,
        security: { insecure: true },
        tokenFile: tokenFile("alice"),
        timeoutMs: 10_000,
      }),
      (error: unknown) => {
        assert.ok(error instanceof BackupCallError);
        assert.equal(error.code, grpc.status.PERMISSION_DENIED);
        assert.match(error.message, /identity "alice" lacks permission admin: Cluster\.Backup needs the admin role/);
        return true;
      },
    );
    assert.equal(existsSync(out), false);
    assert.ok(audit.some((r) => r.rpc === "Cluster.Backup" && r.identity === "alice" && r.outcome === "denied"));
  });
});
