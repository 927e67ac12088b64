// The quorum floor's follower refuses a frame too short to carry its seq with INVALID_ARGUMENT
// (and stays up), and acknowledges a well-formed one with its seq once it is on its disk.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { spawnReady } from "./floor_cluster.ts";
import { stopProcess } from "./processes.ts";
import { QUORUM_FLOOR_READY_LINE } from "./quorum_floor_cluster.ts";
import { encodeFrame, frameSeq } from "./quorum_floor_leader.ts";

const SERVER = fileURLToPath(new URL("./quorum_floor_server.ts", import.meta.url));
const APPEND = "/tenure.bench.QuorumFloor/Append";
const bytes = (b: Buffer): Buffer => b;

test("a follower refuses a frame shorter than its seq and acknowledges a good one", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "quorum-floor-follower-"));
  const address = "127.0.0.1:24696"; // above the bench's quorum floor (24693-24695), below Tenure's (24700)
  const child = await spawnReady(
    SERVER,
    ["--role", "follower", "--listen", address, "--data", dir, "--insecure"],
    QUORUM_FLOOR_READY_LINE,
    "follower",
  );
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    const bad = client.makeBidiStreamRequest(APPEND, bytes, bytes);
    const refused = new Promise<grpc.ServiceError>((resolve) => bad.on("error", resolve));
    bad.write(Buffer.of(1, 2, 3));
    const error = await refused;
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.match(error.details, /frame of 3 bytes/);
    const good = client.makeBidiStreamRequest(APPEND, bytes, bytes);
    const acked = new Promise<Buffer>((resolve) => good.once("data", resolve));
    good.write(encodeFrame(7, Buffer.from("[]")));
    assert.equal(frameSeq(await acked), 7);
    const closed = new Promise<grpc.StatusObject>((resolve) => good.on("status", resolve));
    good.on("error", () => {}); // the status says it
    good.end();
    assert.equal((await closed).code, grpc.status.OK, "the follower ends a stream its leader ended");
  } finally {
    client.close();
    await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  }
});
