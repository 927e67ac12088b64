// The backup client against a scripted Cluster/Backup server: what it refuses in a stream, and
// that a refused stream never replaces the file or leaves a partial one.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "../api/protos.ts";
import { BackupFormatError, decodeBackupFile } from "./backup_format.ts";
import { runBackup } from "./backup_client.ts";

type Part = Record<string, unknown>;

const IMAGE = Buffer.from(JSON.stringify({ v: 2, anything: "x".repeat(5000) }));
const HEADER = {
  formatVersion: 1,
  clusterId: "c",
  appliedIndex: "9",
  term: "2",
  tokenEpoch: "0",
  lastToken: "4",
  lastLeaseId: "0",
  imageBytes: String(IMAGE.length),
  members: [{ id: "a", address: "x:1", role: "MEMBER_ROLE_VOTER", witness: false, isLeader: true }],
  takenAtMs: "1",
  leaderId: "a",
};
const sha = (b: Buffer): Buffer => createHash("sha256").update(b).digest();

const GOOD: Part[] = [
  { header: HEADER },
  { imageChunk: IMAGE.subarray(0, 2000) },
  { imageChunk: IMAGE.subarray(2000) },
  { trailer: { imageSha256: sha(IMAGE) } },
];

describe("backup client", () => {
  const dir = mkdtempSync(join(tmpdir(), "tenure-backup-client-"));
  let script: Part[] = GOOD;
  let server: grpc.Server;
  let address = "";

  before(async () => {
    server = new grpc.Server();
    server.addService(serviceDefinition("Cluster") as unknown as grpc.ServiceDefinition, {
      Backup: (call: grpc.ServerWritableStream<unknown, Part>) => {
        for (const part of script) call.write(part);
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const backup = (out: string) => runBackup({ endpoints: [address], outFile: out, security: { insecure: true }, timeoutMs: 5_000 });

  it("writes a file that decodes to the streamed header and image", async () => {
    script = GOOD;
    const out = join(dir, "good.bak");
    const summary = await backup(out);
    const { header, image } = decodeBackupFile(readFileSync(out));
    assert.deepEqual(Buffer.from(image), IMAGE);
    assert.equal(header.lastToken, 4);
    assert.deepEqual(header.members, [{ id: "a", address: "x:1", role: "voter" }]);
    assert.equal(summary.imageSha256, sha(IMAGE).toString("hex"));
  });

  const refusals: [string, Part[], RegExp][] = [
    [
      "a digest that does not match",
      [...GOOD.slice(0, 3), { trailer: { imageSha256: sha(Buffer.from("other")) } }],
      /does not match the member's trailer/,
    ],
    ["a missing chunk", [GOOD[0] ?? {}, GOOD[1] ?? {}, GOOD[3] ?? {}], /ended after 2000 of \d+ image bytes/],
    ["more bytes than announced", [...GOOD.slice(0, 3), { imageChunk: Buffer.from("x") }], /more than the \d+ image bytes announced/],
    ["no trailer", GOOD.slice(0, 3), /ended without its trailer/],
    ["bytes before the header", [{ imageChunk: IMAGE }], /image bytes before its header/],
    ["another format version", [{ header: { ...HEADER, formatVersion: 7 } }], /backup format version 7; this tenured reads version 1 only/],
  ];
  for (const [what, parts, message] of refusals) {
    it(`refuses ${what}, keeping the old file and no partial one`, async () => {
      script = parts;
      const out = join(dir, "kept.bak");
      writeFileSync(out, "old");
      await assert.rejects(backup(out), (error: unknown) => error instanceof BackupFormatError && message.test(error.message));
      assert.equal(readFileSync(out, "utf8"), "old");
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.includes(".partial-")),
        [],
      );
    });
  }
});
