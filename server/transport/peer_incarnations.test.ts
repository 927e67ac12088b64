// Member incarnations (issue 13 point 3): the pure checks, the trust-on-first-use table and its
// durable file, and two real GrpcPeerTransports over mutual TLS (127.0.0.1, port 0): members greet
// each other with nothing to send, a member that comes back under its id with another incarnation
// is refused both ways (messages and snapshots), nothing of it is delivered, both sides log why,
// and once its id left the configuration and came back it is accepted.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ensureDevCertificates, type DevCertificates } from "../../tools/dev_certs.ts";
import type { Message } from "../core/messages.ts";
import type { ConfState, NodeId } from "../core/types.ts";
import { readPeerIncarnations, writePeerIncarnations } from "../storage/incarnation.ts";
import { GrpcPeerTransport, type GrpcPeerTransportOptions } from "./grpc_peer_transport.ts";
import { PeerIncarnations, addresseeMismatch, judgeSender } from "./peer_incarnations.ts";

const X = "0123456789abcdef0123456789abcdef";
const Y = "fedcba9876543210fedcba9876543210";
const Z = "00000000000000000000000000000001";

const conf = (...voters: NodeId[]): ConfState => ({
  voters,
  votersOutgoing: [],
  learners: [],
  learnersNext: [],
  witnesses: [],
  autoLeave: false,
});

function memoryStore(initial: ReadonlyMap<NodeId, string> = new Map()) {
  const saves: Map<NodeId, string>[] = [];
  return { saves, store: { initial, save: (m: ReadonlyMap<NodeId, string>) => void saves.push(new Map(m)) } };
}

describe("judgeSender and addresseeMismatch", () => {
  it("first use, same, changed, missing (an older build), malformed", () => {
    assert.deepEqual(judgeSender(undefined, X), { kind: "first", incarnation: X });
    assert.deepEqual(judgeSender(X, X), { kind: "known" });
    assert.deepEqual(judgeSender(X, Y), { kind: "changed", was: X, now: Y });
    assert.deepEqual(judgeSender(X, null), { kind: "missing" });
    assert.deepEqual(judgeSender(undefined, ""), { kind: "missing" });
    assert.deepEqual(judgeSender(X, "ABC"), { kind: "malformed", value: "ABC" });
    assert.equal(judgeSender(X, X.toUpperCase()).kind, "malformed");
  });
  it("only a belief naming another incarnation is a mismatch", () => {
    assert.equal(addresseeMismatch(X, null), false);
    assert.equal(addresseeMismatch(X, ""), false);
    assert.equal(addresseeMismatch(X, X), false);
    assert.equal(addresseeMismatch(X, Y), true);
  });
});

describe("PeerIncarnations", () => {
  it("records a member on first use, durably before it counts; refuses a changed one; never records itself", () => {
    const { saves, store } = memoryStore();
    const t = new PeerIncarnations("a", X, store);
    t.observeConfiguration(conf("a", "b", "c"));
    assert.equal(t.checkSender("b", Y).kind, "first");
    assert.deepEqual(saves.at(-1), new Map([["b", Y]]));
    assert.equal(t.checkSender("b", Y).kind, "known");
    assert.deepEqual(t.checkSender("b", Z), { kind: "changed", was: Y, now: Z });
    assert.equal(t.rememberedOf("b"), Y, "a refusal does not overwrite");
    assert.equal(t.learn("a", Z, "response"), false);
    assert.equal(saves.length, 1);
  });
  it("records nobody before a configuration is known, nor an id outside it", () => {
    const { saves, store } = memoryStore();
    const t = new PeerIncarnations("a", X, store);
    assert.equal(t.checkSender("b", Y).kind, "first");
    assert.equal(t.rememberedOf("b"), undefined, "no configuration yet");
    t.observeConfiguration(conf("a", "b"));
    assert.equal(t.learn("d", Y, "response"), false);
    assert.equal(t.rememberedOf("d"), undefined);
    assert.equal(saves.length, 0);
  });
  it("forgets an id that left the configuration, so the id re-added is learned anew; greets unknown members", () => {
    const { saves, store } = memoryStore(new Map([["b", Y]]));
    const t = new PeerIncarnations("a", X, store);
    const greeted: NodeId[] = [];
    t.onGreet((id) => void greeted.push(id));
    t.observeConfiguration(conf("a", "b", "c"));
    assert.deepEqual(greeted, ["c"]);
    assert.equal(t.wantsGreeting("b"), false);
    assert.equal(t.checkSender("b", Z).kind, "changed");
    t.observeConfiguration({ ...conf("a", "c"), votersOutgoing: ["a", "b", "c"] }); // joint: b still in
    assert.equal(t.rememberedOf("b"), Y);
    t.observeConfiguration(conf("a", "c"));
    assert.equal(t.rememberedOf("b"), undefined);
    assert.deepEqual(saves.at(-1), new Map());
    assert.equal(t.learn("b", Z, "response"), false, "a removed member is not re-learned before it is added back");
    greeted.length = 0;
    t.observeConfiguration(conf("a", "b", "c"));
    assert.deepEqual(greeted, ["b", "c"]);
    assert.equal(t.checkSender("b", Z).kind, "first");
  });
  it("an empty configuration (waiting for a first snapshot) forgets nothing", () => {
    const { saves, store } = memoryStore(new Map([["b", Y]]));
    const t = new PeerIncarnations("a", X, store);
    t.observeConfiguration(conf());
    assert.equal(t.rememberedOf("b"), Y);
    assert.equal(saves.length, 0);
  });
  it("survives a restart through <dataDir>/peer_incarnations", () => {
    const dir = mkdtempSync(join(tmpdir(), "tenure-peer-incarnations-"));
    try {
      const store = { initial: new Map<NodeId, string>(), save: (m: ReadonlyMap<NodeId, string>) => writePeerIncarnations(dir, m) };
      const t = new PeerIncarnations("a", X, store);
      t.observeConfiguration(conf("a", "b"));
      t.checkSender("b", Y);
      const read = readPeerIncarnations(dir);
      assert.equal(read.kind, "ok");
      const again = new PeerIncarnations("a", X, { initial: read.kind === "ok" ? read.value : new Map(), save: store.save });
      assert.deepEqual(again.checkSender("b", Z), { kind: "changed", was: Y, now: Z });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const heartbeat = (from: NodeId, to: NodeId): Message => ({
  kind: "heartbeat",
  from,
  to,
  term: 1,
  commit: 0,
  readContext: 0,
  witnessFloor: 0,
});
const snapshotOf = (from: NodeId, to: NodeId): Message => ({
  kind: "snapshot",
  from,
  to,
  term: 1,
  snapshot: { metadata: { index: 5, term: 1, confState: conf("a", "b") }, data: new Uint8Array([1, 2, 3]) },
});

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("incarnations over mutual TLS", () => {
  let dir = "";
  let certs: DevCertificates;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tenure-incarnation-tls-"));
    certs = ensureDevCertificates(join(dir, "ca"), { memberIds: ["a", "b"], clientIdentities: [] });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function credentialsOf(id: string): NonNullable<GrpcPeerTransportOptions["credentials"]> {
    const files = certs.members[id];
    assert.ok(files);
    const ca = readFileSync(certs.caFile);
    const key = readFileSync(files.keyFile);
    const cert = readFileSync(files.certFile);
    return {
      server: grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true),
      channel: grpc.credentials.createSsl(ca, key, cert),
    };
  }

  interface Member {
    readonly transport: GrpcPeerTransport;
    readonly incarnations: PeerIncarnations;
    readonly got: Message[];
    readonly logged: Record<string, unknown>[];
  }

  async function member(id: NodeId, own: string, peers: GrpcPeerTransportOptions["peers"] = []): Promise<Member> {
    const logged: Record<string, unknown>[] = [];
    const incarnations = new PeerIncarnations(id, own, memoryStore().store, (f) => void logged.push({ ...f }));
    const transport = await GrpcPeerTransport.start({
      selfId: id,
      clusterId: "k1",
      listenAddress: "127.0.0.1:0",
      peers,
      credentials: credentialsOf(id),
      requirePeerIdentity: true,
      incarnations,
      dropLogIntervalMs: 1,
      reconnectBackoffMsMax: 200,
      log: (f) => void logged.push({ ...f }),
    });
    const got: Message[] = [];
    transport.onMessage((m) => void got.push(m));
    return { transport, incarnations, got, logged };
  }

  const events = (m: Member, event: string) => m.logged.filter((f) => f["event"] === event);

  it("greets, refuses a changed incarnation both ways, and accepts the id again after it left the configuration", async () => {
    const a = await member("a", X);
    const b = await member("b", Y, [{ id: "a", address: a.transport.boundAddress() }]);
    let b2: Member | null = null;
    try {
      a.transport.setPeers([{ id: "b", address: b.transport.boundAddress() }]);
      a.incarnations.observeConfiguration(conf("a", "b"));
      b.incarnations.observeConfiguration(conf("a", "b"));
      // Nothing was sent: each learned the other's incarnation by greeting it.
      await waitFor("greetings", () => a.incarnations.rememberedOf("b") === Y && b.incarnations.rememberedOf("a") === X);
      assert.equal(a.got.length + b.got.length, 0);

      // b's disk is wiped: it comes back under id b with a new incarnation and remembers nobody.
      await b.transport.close();
      b2 = await member("b", Z, [{ id: "a", address: a.transport.boundAddress() }]);
      const wiped = b2;
      wiped.incarnations.observeConfiguration(conf("a", "b"));
      a.transport.setPeers([{ id: "b", address: wiped.transport.boundAddress() }]);
      wiped.transport.send([heartbeat("b", "a"), snapshotOf("b", "a")]);
      a.transport.send([heartbeat("a", "b")]);
      await waitFor("refusals on both sides", () => {
        const s = a.transport.stats();
        return s.incarnationRefusals >= 2 && wiped.transport.stats().incarnationRefusals >= 1;
      });
      await waitFor("the wiped member hears why", () => events(wiped, "incarnation_refused_by_peer").length >= 2);
      assert.equal(a.got.length, 0, "nothing from the wiped member reaches a's node");
      assert.equal(wiped.got.length, 0, "nothing from a reaches the wiped member either");
      assert.equal(a.incarnations.rememberedOf("b"), Y);
      const refused = events(a, "peer_incarnation_refused");
      assert.ok(refused.length >= 1);
      assert.match(
        String(refused[0]?.["reason"]),
        new RegExp(`member b's incarnation changed \\(was ${Y}, now ${Z}\\).*RemoveMember then AddMember, or ReplaceMember`),
      );
      const why = events(wiped, "incarnation_refused_by_peer").map((f) => String(f["reason"]));
      assert.ok(
        why.some((r) => r.includes("this member (b) was wiped and is refused by a")),
        why.join("\n"),
      );
      assert.ok(a.transport.stats().snapshotsReceived === 0);

      // b leaves the configuration and is added back (a fresh member under the same id): accepted.
      a.incarnations.observeConfiguration(conf("a"));
      assert.equal(a.incarnations.rememberedOf("b"), undefined);
      a.incarnations.observeConfiguration(conf("a", "b"));
      await waitFor("a learns the new incarnation", () => a.incarnations.rememberedOf("b") === Z);
      wiped.transport.send([heartbeat("b", "a")]);
      await waitFor("delivered", () => a.got.length === 1);
      assert.equal(a.got[0]?.from, "b");
    } finally {
      await a.transport.close();
      await b.transport.close();
      await b2?.transport.close();
    }
  });

  it("a peer of an older build (no incarnation headers) is accepted both ways, never recorded, and said", async () => {
    const a = await member("a", X);
    const old = await GrpcPeerTransport.start({
      selfId: "b",
      clusterId: "k1",
      listenAddress: "127.0.0.1:0",
      peers: [{ id: "a", address: a.transport.boundAddress() }],
      credentials: credentialsOf("b"),
      requirePeerIdentity: true,
      log: () => undefined,
    });
    try {
      const atOld: Message[] = [];
      old.onMessage((m) => void atOld.push(m));
      a.transport.setPeers([{ id: "b", address: old.boundAddress() }]);
      a.incarnations.observeConfiguration(conf("a", "b"));
      old.send([heartbeat("b", "a")]);
      a.transport.send([heartbeat("a", "b")]);
      await waitFor("both delivered", () => a.got.length === 1 && atOld.length === 1);
      assert.equal(a.incarnations.rememberedOf("b"), undefined);
      assert.equal(a.transport.stats().incarnationRefusals, 0);
      assert.ok(events(a, "peer_incarnation_missing").some((f) => f["peer"] === "b"));
    } finally {
      await a.transport.close();
      await old.close();
    }
  });
});
