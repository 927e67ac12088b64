// openDataDir's incarnation (issue 13 point 3): made at bootstrap and kept across restarts; a
// bootstrap over a leftover file makes a new one (the Raft state it belonged to is gone); a
// directory from an older build gets one with a warning; a damaged file is refused, never
// replaced; the peers' table is loaded and refused when damaged.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadConfig } from "./config.ts";
import { openDataDir } from "./data_dir.ts";
import { StorageCorruptError } from "./storage/raft_storage.ts";
import { INCARNATION_FILE_NAME, PEER_INCARNATIONS_FILE_NAME, readIncarnation, writePeerIncarnations } from "./storage/incarnation.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "tenure-data-dir-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;

function configOf(dataDir: string, bootstrap: boolean) {
  return loadConfig(
    [
      "--id",
      "a",
      "--cluster-id",
      "k1",
      "--data-dir",
      dataDir,
      "--peer-listen",
      "127.0.0.1:0",
      "--client-listen",
      "127.0.0.1:0",
      "--members",
      "a=127.0.0.1:7101/127.0.0.1:7001,b=127.0.0.1:7102/127.0.0.1:7002",
      "--insecure",
      ...(bootstrap ? ["--bootstrap"] : []),
    ],
    {},
  );
}

/** Opens and closes; returns the incarnation the transport would send. */
function open(dataDir: string, bootstrap: boolean): string {
  const d = openDataDir(configOf(dataDir, bootstrap));
  d.storage.close();
  return d.incarnations.own;
}

const incarnationOnDisk = (dir: string): string => {
  const r = readIncarnation(dir);
  assert.equal(r.kind, "ok");
  return r.kind === "ok" ? r.value : "";
};

describe("openDataDir", () => {
  it("bootstrap makes an incarnation; restarts keep it (--bootstrap left in the service definition too)", () => {
    const dir = path.join(root, `d${n++}`);
    const first = open(dir, true);
    assert.match(first, /^[0-9a-f]{32}$/);
    assert.equal(incarnationOnDisk(dir), first);
    assert.equal(open(dir, false), first);
    assert.equal(open(dir, true), first, "a bootstrap flag on a directory with state changes nothing");
  });
  it("a wiped directory bootstrapped again gets a new incarnation, even if its old file survived", () => {
    const dir = path.join(root, `d${n++}`);
    const first = open(dir, true);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.notEqual(open(dir, true), first);
    const kept = fs.readFileSync(path.join(dir, INCARNATION_FILE_NAME));
    const second = incarnationOnDisk(dir);
    for (const f of fs.readdirSync(dir)) if (f !== INCARNATION_FILE_NAME) fs.rmSync(path.join(dir, f), { force: true });
    fs.writeFileSync(path.join(dir, INCARNATION_FILE_NAME), kept);
    const third = open(dir, true);
    assert.notEqual(third, second, "raft.db was gone: this is a new member");
  });
  it("a directory with Raft state and no incarnation file (an older build) gets one, kept afterwards", () => {
    const dir = path.join(root, `d${n++}`);
    const first = open(dir, true);
    fs.rmSync(path.join(dir, INCARNATION_FILE_NAME));
    const made = open(dir, false);
    assert.notEqual(made, first);
    assert.equal(open(dir, false), made);
  });
  it("a damaged incarnation file is refused, not replaced", () => {
    const dir = path.join(root, `d${n++}`);
    open(dir, true);
    const file = path.join(dir, INCARNATION_FILE_NAME);
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(/"incarnation":"./, '"incarnation":"z'));
    const before = fs.readFileSync(file, "utf8");
    assert.throws(
      () => open(dir, false),
      (e: unknown) => e instanceof StorageCorruptError && /incarnation is damaged/.test(e.message),
    );
    assert.equal(fs.readFileSync(file, "utf8"), before);
  });
  it("loads the peers' table; a damaged one is refused", () => {
    const dir = path.join(root, `d${n++}`);
    open(dir, true);
    const b = "0123456789abcdef0123456789abcdef";
    writePeerIncarnations(dir, new Map([["b", b]]));
    const d = openDataDir(configOf(dir, false));
    d.storage.close();
    assert.equal(d.incarnations.rememberedOf("b"), b);
    fs.appendFileSync(path.join(dir, PEER_INCARNATIONS_FILE_NAME), "x");
    assert.throws(
      () => open(dir, false),
      (e: unknown) => e instanceof StorageCorruptError && /peer_incarnations is damaged/.test(e.message),
    );
  });
});
