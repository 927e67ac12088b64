// Member identity on the peer port over real gRPC with mutual TLS (127.0.0.1, port 0) and real
// certificates of a dev CA (tools/dev_certs.ts): a peer's certificate must name the member it sends
// from, and that member must be admissible; anything else is refused at the stream, counted and
// logged, and nothing of it reaches the node. Plus the frames an authenticated member may not send
// (garbage, oversize, the wrong message kind, a term near 2^53, a forged snapshot image).

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ensureDevCertificates, type CertificateFiles, type DevCertificates } from "../../tools/dev_certs.ts";
import type { Message } from "../core/messages.ts";
import type { NodeId } from "../core/types.ts";
import { DEFAULT_STATE_CONFIG } from "../state/limits.ts";
import { CertificateReloader } from "../tls/cert_reloader.ts";
import { memberCredentials } from "../tls/credentials.ts";
import { GrpcPeerTransport, type GrpcPeerTransportOptions } from "./grpc_peer_transport.ts";
import { PEER_PROTO_LOADER_OPTIONS, encodeBatch } from "./peer_codec.ts";
import { machineImageCheck } from "./snapshot_image_check.ts";
import { snapshotChunks, type WireSnapshotChunk } from "./snapshot_chunks.ts";

const CLUSTER = "k1";
const MEMBERS = new Set(["a", "b", "c"]);
const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };
const heartbeat = (from: NodeId, to: NodeId, term = 1): Message => ({
  kind: "heartbeat",
  from,
  to,
  term,
  commit: 0,
  readContext: 0,
  witnessFloor: 0,
});

const definition = protoLoader.loadSync(fileURLToPath(new URL("../../proto/tenure/v1/peer.proto", import.meta.url)), {
  ...PEER_PROTO_LOADER_OPTIONS,
});
const methods = definition["tenure.v1.RaftPeer"] as Record<string, protoLoader.MethodDefinition<object, object>>;

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const pem = (file: string): Buffer => readFileSync(file);

function credentialsOf(caFile: string, files: CertificateFiles): NonNullable<GrpcPeerTransportOptions["credentials"]> {
  const ca = pem(caFile);
  const key = pem(files.keyFile);
  const cert = pem(files.certFile);
  return {
    server: grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true),
    channel: grpc.credentials.createSsl(ca, key, cert),
  };
}

/** Opens one stream on `method` to `address`, writes `frames` and ends; resolves with the status. */
function rawStream(
  address: string,
  channel: grpc.ChannelCredentials,
  x: { method: "Send" | "InstallSnapshot"; frames: readonly unknown[]; serialize?: (v: unknown) => Buffer; targetName?: string },
): Promise<{ code: number; details: string }> {
  const m = methods[x.method];
  assert.ok(m);
  const client = new grpc.Client(address, channel, x.targetName ? { "grpc.ssl_target_name_override": x.targetName } : {});
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      m.path,
      x.serialize ?? (m.requestSerialize as (v: unknown) => Buffer),
      m.responseDeserialize,
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err) => {
        client.close();
        resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" });
      },
    );
    call.on("error", () => {});
    for (const f of x.frames) call.write(f);
    call.end();
  });
}

describe("peer identity over mutual TLS", () => {
  let dir = "";
  let certs: DevCertificates;
  let otherCa: DevCertificates;
  let a: GrpcPeerTransport;
  const got: Message[] = [];
  const logged: Record<string, unknown>[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "peer-security-"));
    certs = ensureDevCertificates(join(dir, "ca"), { memberIds: ["a", "b", "c", "mallory"], clientIdentities: ["alice"] });
    otherCa = ensureDevCertificates(join(dir, "other"), { memberIds: ["b"], clientIdentities: [] });
    const files = certs.members["a"];
    assert.ok(files);
    a = await GrpcPeerTransport.start({
      selfId: "a",
      clusterId: CLUSTER,
      listenAddress: "127.0.0.1:0",
      peers: [],
      credentials: credentialsOf(certs.caFile, files),
      requirePeerIdentity: true,
      isAdmissiblePeer: (id) => MEMBERS.has(id),
      dropLogIntervalMs: 1,
      log: (f) => void logged.push({ ...f }),
    });
    a.onMessage((m) => void got.push(m));
  });
  after(async () => {
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const member = (id: string, from: DevCertificates = certs): grpc.ChannelCredentials => {
    const f = from.members[id];
    assert.ok(f, id);
    return grpc.credentials.createSsl(pem(from.caFile), pem(f.keyFile), pem(f.certFile));
  };
  const frame = (from: string): unknown => encodeBatch({ clusterId: CLUSTER, from, to: "a" }, [heartbeat(from, "a")]);

  it("a member sending as itself is delivered; both directions dial by member id", async () => {
    const files = certs.members["b"];
    assert.ok(files);
    const b = await GrpcPeerTransport.start({
      selfId: "b",
      clusterId: CLUSTER,
      listenAddress: "127.0.0.1:0",
      peers: [{ id: "a", address: a.boundAddress() }],
      credentials: credentialsOf(certs.caFile, files),
      requirePeerIdentity: true,
      isAdmissiblePeer: (id) => MEMBERS.has(id),
      log: () => {},
    });
    try {
      const atB: Message[] = [];
      b.onMessage((m) => void atB.push(m));
      a.setPeers([{ id: "b", address: b.boundAddress() }]);
      b.send([heartbeat("b", "a")]);
      a.send([heartbeat("a", "b")]);
      await waitFor("both heartbeats", () => got.length === 1 && atB.length === 1);
      assert.equal(got[0]?.from, "b");
      assert.equal(a.stats().identityRefusals, 0);
    } finally {
      a.setPeers([]);
      got.length = 0;
      await b.close();
    }
  });

  it("with server/tls's reloading credentials (what tenured runs), identities pass both ways", async () => {
    const reloaders = ["b", "c"].map((id) => {
      const f = certs.members[id];
      assert.ok(f);
      return new CertificateReloader({ files: { caFile: certs.caFile, ...f, minVersion: "TLSv1.3" }, log: () => {} });
    });
    const transports = await Promise.all(
      reloaders.map((r, i) => {
        const creds = memberCredentials(r);
        return GrpcPeerTransport.start({
          selfId: i === 0 ? "b" : "c",
          clusterId: CLUSTER,
          listenAddress: "127.0.0.1:0",
          peers: [],
          credentials: { server: creds.peerServer, channel: creds.peerChannel },
          requirePeerIdentity: true,
          isAdmissiblePeer: (id) => MEMBERS.has(id),
          log: () => {},
        });
      }),
    );
    const [b, c] = transports as [GrpcPeerTransport, GrpcPeerTransport];
    try {
      const atC: Message[] = [];
      const atB: Message[] = [];
      c.onMessage((m) => void atC.push(m));
      b.onMessage((m) => void atB.push(m));
      b.setPeers([{ id: "c", address: c.boundAddress() }]);
      c.setPeers([{ id: "b", address: b.boundAddress() }]);
      b.send([heartbeat("b", "c")]);
      c.send([heartbeat("c", "b")]);
      await waitFor("both heartbeats", () => atC.length === 1 && atB.length === 1);
      assert.equal(b.stats().identityRefusals + c.stats().identityRefusals, 0);
    } finally {
      await Promise.all(transports.map((t) => t.close()));
    }
  });

  it("no certificate, none of this CA, or plaintext: refused in the handshake, nothing delivered", async () => {
    const before = a.stats();
    const noCert = await rawStream(a.boundAddress(), grpc.credentials.createSsl(pem(certs.caFile)), {
      method: "Send",
      frames: [frame("b")],
      targetName: "a",
    });
    assert.equal(noCert.code, grpc.status.UNAVAILABLE, noCert.details);
    const foreign = await rawStream(a.boundAddress(), member("b", otherCa), { method: "Send", frames: [frame("b")], targetName: "a" });
    assert.equal(foreign.code, grpc.status.UNAVAILABLE, foreign.details);
    const plain = await rawStream(a.boundAddress(), grpc.credentials.createInsecure(), { method: "Send", frames: [frame("b")] });
    assert.equal(plain.code, grpc.status.UNAVAILABLE, plain.details);
    assert.equal(got.length, 0);
    assert.equal(a.stats().receivedMessages, before.receivedMessages);
  });

  it("a client certificate, another member's id, or a member outside the configuration: refused at the stream, counted, logged", async () => {
    const alice = certs.clients["alice"];
    assert.ok(alice);
    const client = grpc.credentials.createSsl(pem(certs.caFile), pem(alice.keyFile), pem(alice.certFile));
    const asClient = await rawStream(a.boundAddress(), client, { method: "Send", frames: [frame("b")], targetName: "a" });
    assert.equal(asClient.code, grpc.status.UNAUTHENTICATED, asClient.details);
    assert.match(asClient.details, /names no member/);

    const bAsC = await rawStream(a.boundAddress(), member("b"), { method: "Send", frames: [frame("c")], targetName: "a" });
    assert.equal(bAsC.code, grpc.status.PERMISSION_DENIED, bAsC.details);
    assert.match(bAsC.details, /claims member "c" with a certificate of member "b"/);

    const mallory = await rawStream(a.boundAddress(), member("mallory"), { method: "Send", frames: [frame("mallory")], targetName: "a" });
    assert.equal(mallory.code, grpc.status.PERMISSION_DENIED, mallory.details);
    assert.match(mallory.details, /not in this member's configuration/);

    // The InstallSnapshot stream: refused at the header, before the image is allocated.
    const snap: Message = {
      kind: "snapshot",
      from: "c",
      to: "a",
      term: 2,
      snapshot: { metadata: { index: 9, term: 2, confState }, data: new Uint8Array(64) },
    };
    const chunks = snapshotChunks(CLUSTER, snap as Extract<Message, { kind: "snapshot" }>, 32);
    const snapAsC = await rawStream(a.boundAddress(), member("b"), { method: "InstallSnapshot", frames: chunks, targetName: "a" });
    assert.equal(snapAsC.code, grpc.status.PERMISSION_DENIED, snapAsC.details);

    assert.equal(got.length, 0, "nothing refused reaches the node");
    assert.equal(a.stats().identityRefusals, 4);
    const lines = logged.filter((f) => f["event"] === "peer_identity_refused");
    assert.deepEqual(
      lines.map((f) => [f["code"], f["claimedId"], f["certificateIds"]]),
      [
        ["UNAUTHENTICATED", null, []],
        ["PERMISSION_DENIED", "c", ["b"]],
        ["PERMISSION_DENIED", null, ["mallory"]],
        ["PERMISSION_DENIED", "c", ["b"]],
      ],
    );
    assert.equal(lines[0]?.["certificateCommonName"], "alice");
    // The right member on the same kind of raw stream still gets through.
    const ok = await rawStream(a.boundAddress(), member("b"), { method: "Send", frames: [frame("b")], targetName: "a" });
    assert.equal(ok.code, grpc.status.OK, ok.details);
    assert.equal(got.length, 1);
    got.length = 0;
  });

  it("a dial checks the peer's certificate: a listener with another member's certificate gets nothing", async () => {
    const files = certs.members["b"];
    assert.ok(files);
    // b's transport listens where a believes c is.
    const impostor = await GrpcPeerTransport.start({
      selfId: "c",
      clusterId: CLUSTER,
      listenAddress: "127.0.0.1:0",
      peers: [],
      credentials: credentialsOf(certs.caFile, files),
      log: () => {},
    });
    try {
      const atImpostor: Message[] = [];
      impostor.onMessage((m) => void atImpostor.push(m));
      const before = logged.length;
      a.setPeers([{ id: "c", address: impostor.boundAddress() }]);
      a.send([heartbeat("a", "c")]);
      await waitFor("the failed dial", () => logged.slice(before).some((f) => f["event"] === "peer_unavailable" && f["peer"] === "c"));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(atImpostor.length, 0);
    } finally {
      a.setPeers([]);
      await impostor.close();
    }
  });
});

describe("frames an authenticated member may not send", () => {
  let b: GrpcPeerTransport;
  const got: Message[] = [];
  const messageBytesMax = 64 * 1024;
  before(async () => {
    b = await GrpcPeerTransport.start({
      selfId: "b",
      clusterId: CLUSTER,
      listenAddress: "127.0.0.1:0",
      peers: [],
      messageBytesMax,
      snapshotChunkBytes: 16 * 1024,
      checkSnapshotImage: machineImageCheck(DEFAULT_STATE_CONFIG),
      receiverState: () => ({ term: 1, lastIndex: 5, role: "follower", leader: "", voters: ["a", "b", "c"] }),
      log: () => {},
    });
    b.onMessage((m) => void got.push(m));
  });
  after(() => b.close());

  const send = (frames: readonly unknown[], serialize?: (v: unknown) => Buffer) =>
    rawStream(b.boundAddress(), grpc.credentials.createInsecure(), { method: "Send", frames, ...(serialize ? { serialize } : {}) });
  const raw = (v: unknown): Buffer => v as Buffer;

  it("undecodable bytes, an oversize frame and a snapshot chunk on Send: a status each, counted, never thrown", async () => {
    // Field 1 with wire type 7, which protobuf does not have.
    const garbage = await send([Buffer.from([0x0f, 0x01, 0x02, 0x03])], raw);
    assert.equal(garbage.code, grpc.status.INVALID_ARGUMENT, garbage.details);
    const oversize = await send([Buffer.alloc(messageBytesMax + 1000, 0x41)], raw);
    assert.equal(oversize.code, grpc.status.RESOURCE_EXHAUSTED, oversize.details);
    const chunk = snapshotChunks(
      CLUSTER,
      { kind: "snapshot", from: "a", to: "b", term: 1, snapshot: { metadata: { index: 1, term: 1, confState }, data: new Uint8Array(4) } },
      16,
    )[0] as WireSnapshotChunk;
    const install = methods["InstallSnapshot"];
    assert.ok(install);
    const wrongKind = await send([chunk], install.requestSerialize as (v: unknown) => Buffer);
    assert.notEqual(wrongKind.code, grpc.status.OK, wrongKind.details);
    assert.equal(b.stats().undecodableFrames, 2);
    assert.equal(b.stats().rejectedBatches, 3);
    assert.equal(got.length, 0);
  });

  it("a term near 2^53 and a config entry that would not apply: refused; a heartbeat beyond our log: that message dropped; counted", async () => {
    const near = await send([encodeBatch({ clusterId: CLUSTER, from: "a", to: "b" }, [heartbeat("a", "b", 2 ** 53 - 2)])]);
    assert.equal(near.code, grpc.status.INVALID_ARGUMENT, near.details);
    assert.match(near.details, /above TERM_MAX/);
    const conf: Message = {
      kind: "append",
      from: "a",
      to: "b",
      term: 1,
      prevIndex: 5,
      prevTerm: 1,
      commit: 0,
      witnessFloor: 0,
      entries: [{ term: 1, index: 6, type: "config", data: new Uint8Array([0x7b]) }],
    };
    assert.equal((await send([encodeBatch({ clusterId: CLUSTER, from: "a", to: "b" }, [conf])])).code, grpc.status.INVALID_ARGUMENT);
    // Beyond our log: that one message is dropped (the sender may be sound and this member
    // behind), the rest of its frame delivered.
    const beyond: Message = { ...heartbeat("a", "b"), commit: 6 } as Message;
    const fine: Message = { ...heartbeat("a", "b"), commit: 5 } as Message;
    assert.equal((await send([encodeBatch({ clusterId: CLUSTER, from: "a", to: "b" }, [beyond, fine])])).code, grpc.status.OK);
    assert.equal(b.stats().invalidMessages, 3);
    assert.deepEqual(
      got.map((m) => (m.kind === "heartbeat" ? m.commit : -1)),
      [5],
    );
    got.length = 0;
  });

  it("a snapshot whose image does not restore is refused before the node sees it (on its own stream and on Send)", async () => {
    const data = Uint8Array.from({ length: 40_000 }, (_, i) => (i * 31 + 7) & 0xff);
    const snap = { kind: "snapshot" as const, from: "a", to: "b", term: 1, snapshot: { metadata: { index: 9, term: 1, confState }, data } };
    const r = await rawStream(b.boundAddress(), grpc.credentials.createInsecure(), {
      method: "InstallSnapshot",
      frames: snapshotChunks(CLUSTER, snap, 16 * 1024),
    });
    assert.equal(r.code, grpc.status.INVALID_ARGUMENT, r.details);
    assert.match(r.details, /snapshot image: does not restore/);
    const small = { ...snap, snapshot: { ...snap.snapshot, data: data.subarray(0, 100) } };
    assert.equal((await send([encodeBatch({ clusterId: CLUSTER, from: "a", to: "b" }, [small])])).code, grpc.status.INVALID_ARGUMENT);
    assert.equal(got.length, 0);
    assert.equal(b.stats().snapshotsReceived, 0);
  });
});
