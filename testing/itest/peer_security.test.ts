// Issue 12, the peer port on real tenured processes with mutual TLS (dev CA, tools/dev_certs.ts):
// - a peer without a certificate of the cluster's CA, a client certificate, a member's
//   certificate claiming another member id, and a certificate for an id outside the configuration
//   are refused at the stream, and none of them changes the term, the leader or the log;
// - an authenticated member sending a term near 2^53, a forged snapshot image or garbage frames
//   gets a status for each: the member keeps running and keeps its log, also after a restart, and
//   the cluster keeps a leader;
// - an authenticated member that is not the leader, sending term+1 heartbeats every 300 ms, does
//   not depose the healthy leader (server/transport/term_guard.ts).
// Every frame is hand-written (testing/kits/peer_wire.ts) and sent to the members' peer ports.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Message, SnapshotMessage } from "../../server/core/messages.ts";
import { ensureDevCertificates } from "../../tools/dev_certs.ts";
import { peerFrame, peerStream, snapshotChunkBytes, snapshotFrames, type PeerCredentials, type StreamOutcome } from "../kits/peer_wire.ts";
import { ProcessCluster } from "./process_cluster.ts";
import type { TestClient } from "./test_client.ts";
import { sleep, until } from "./wait.ts";

type Obj = Record<string, unknown>;
const CLUSTER_ID = "itest";
const OUTSIDER = "mallory";
const confState = { voters: ["a", "b", "c"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false };

interface Seen {
  readonly term: number;
  readonly leaderId: string;
  readonly lastIndex: number;
  readonly commitIndex: number;
}

const heartbeat = (from: string, to: string, term: number): Message => ({
  kind: "heartbeat",
  from,
  to,
  term,
  commit: 0,
  readContext: 0,
  witnessFloor: 0,
});

describe("peer port security on real tenured processes", { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  let client: TestClient;
  let certDir = "";
  let foreign: PeerCredentials;

  before(async () => {
    // A 500 ms election timeout (25 ticks of 20 ms): a loaded 2-core machine does not make a
    // healthy leader look dead, so only the attacks below could depose it.
    cluster = await ProcessCluster.start({ extraMemberIds: [OUTSIDER], electionTimeoutTicks: 25 });
    client = cluster.testClient();
    certDir = mkdtempSync(join(tmpdir(), "tenure-foreign-ca-"));
    const other = ensureDevCertificates(certDir, { memberIds: ["b"], clientIdentities: [] });
    const b = other.members["b"];
    assert.ok(b);
    foreign = { kind: "tls", caFile: cluster.certificates?.caFile ?? "", certFile: b.certFile, keyFile: b.keyFile };
  });
  after(async () => {
    client.close();
    await cluster.stopAll();
    rmSync(certDir, { recursive: true, force: true });
  });

  async function seen(id: string): Promise<Seen | null> {
    const r = await client.callAt<Obj>(cluster.member(id).clientAddress, "Cluster", "Status", {}, 2000);
    if (!r.ok) return null;
    const v = r.value;
    return {
      term: Number(v["term"]),
      leaderId: String(v["leaderId"]),
      lastIndex: Number(v["lastIndex"]),
      commitIndex: Number(v["commitIndex"]),
    };
  }

  /** Every member's view once they agree on a leader and have applied the same log. */
  async function settled(): Promise<Map<string, Seen>> {
    return until("the members to agree on leader, term and log", 20_000, async () => {
      const views = new Map<string, Seen>();
      for (const m of cluster.members) {
        const s = await seen(m.id);
        if (s === null || s.leaderId === "") return null;
        views.set(m.id, s);
      }
      const all = [...views.values()];
      const first = all[0];
      if (!first || all.some((s) => s.term !== first.term || s.leaderId !== first.leaderId || s.lastIndex !== first.lastIndex)) return null;
      return views;
    });
  }

  const memberCredentials = (id: string): PeerCredentials => {
    const files = cluster.memberTlsFiles(id);
    assert.ok(files);
    return { kind: "tls", ...files };
  };
  const toMember = (to: string, credentials: PeerCredentials) => ({
    address: cluster.member(to).peerAddress,
    credentials,
    targetMemberId: to,
  });

  it("strangers, a client certificate, a member claiming another id and an id outside the configuration: refused, nothing changes", async () => {
    const before = await settled();
    const term = before.get("a")?.term ?? 0;
    const caFile = cluster.certificates?.caFile ?? "";
    const clientFiles = cluster.certificates?.clients["itest"];
    assert.ok(clientFiles, "the run's default client certificate");
    const itest = { caFile, certFile: clientFiles.certFile, keyFile: clientFiles.keyFile };
    const attempts: { name: string; credentials: PeerCredentials; claim: (to: string) => string; expect: grpc.status }[] = [
      { name: "plaintext", credentials: { kind: "insecure" }, claim: () => "b", expect: grpc.status.UNAVAILABLE },
      { name: "no client certificate", credentials: { kind: "tls", caFile }, claim: () => "b", expect: grpc.status.UNAVAILABLE },
      { name: "another CA's member certificate", credentials: foreign, claim: () => "b", expect: grpc.status.UNAVAILABLE },
      { name: "a client certificate", credentials: { kind: "tls", ...itest }, claim: () => "b", expect: grpc.status.UNAUTHENTICATED },
      {
        name: "c's certificate claiming another member",
        credentials: memberCredentials("c"),
        claim: (to) => (to === "a" ? "b" : "a"),
        expect: grpc.status.PERMISSION_DENIED,
      },
      {
        name: "an id outside the configuration",
        credentials: memberCredentials(OUTSIDER),
        claim: () => OUTSIDER,
        expect: grpc.status.PERMISSION_DENIED,
      },
    ];
    for (const to of cluster.members.map((m) => m.id)) {
      for (const a of attempts) {
        const from = a.claim(to);
        // A higher-term heartbeat and a higher-term append with an entry: what deposed leaders and
        // injected state changes when the peer port took anyone.
        const append: Message = {
          kind: "append",
          from,
          to,
          term: term + 1,
          prevIndex: before.get(to)?.lastIndex ?? 0,
          prevTerm: term,
          commit: (before.get(to)?.lastIndex ?? 0) + 1,
          witnessFloor: 0,
          entries: [{ term: term + 1, index: (before.get(to)?.lastIndex ?? 0) + 1, type: "normal", data: new Uint8Array(0) }],
        };
        const r = await peerStream(toMember(to, a.credentials), "Send", [
          peerFrame(CLUSTER_ID, { from, to }, [heartbeat(from, to, term + 1), append]),
        ]);
        assert.equal(r.code, a.expect, `${a.name} -> ${to}: ${grpc.status[r.code]} ${r.details}`);
      }
      // The snapshot stream too: refused at the header, before the image is allocated.
      const claim = to === "a" ? "b" : "a";
      const snap: SnapshotMessage = {
        kind: "snapshot",
        from: claim,
        to,
        term: term + 1,
        snapshot: { metadata: { index: 10_000, term: term + 1, confState }, data: new Uint8Array(1000) },
      };
      const r = await peerStream(
        toMember(to, memberCredentials(to === "c" ? "b" : "c")),
        "InstallSnapshot",
        snapshotFrames(CLUSTER_ID, snap),
      );
      assert.equal(r.code, grpc.status.PERMISSION_DENIED, `snapshot -> ${to}: ${r.details}`);
    }
    await sleep(1000);
    const afterwards = await settled();
    for (const [id, s] of before) {
      const now = afterwards.get(id);
      assert.deepEqual(
        { term: now?.term, leaderId: now?.leaderId, lastIndex: now?.lastIndex },
        { term: s.term, leaderId: s.leaderId, lastIndex: s.lastIndex },
        `${id} changed`,
      );
    }
    const refusedAtA = (cluster.logs.get("a") ?? [])
      .filter((l) => l.includes('"event":"peer_identity_refused"'))
      .map((l) => JSON.parse(l) as Obj);
    assert.ok(
      refusedAtA.some((l) => l["claimedId"] === "b" && JSON.stringify(l["certificateIds"]) === '["c"]'),
      "a logs the claimed id and the certificate's",
    );
    assert.ok(refusedAtA.some((l) => JSON.stringify(l["certificateIds"]) === `["${OUTSIDER}"]`));
    for (const m of cluster.members) assert.equal(cluster.processes.get(m.id)?.exitCode, null, `${m.id} is running`);
  });

  it("an authenticated member's term near 2^53, forged snapshot and garbage frames: a status each; the member keeps running and its log, also after a restart", async () => {
    const grant = await client.call<Obj>("Lease", "Grant", { clientId: "peer-security", seq: 1, ttlMs: 60_000 });
    assert.ok(grant.ok, JSON.stringify(grant));
    const views = await settled();
    const leader = views.get("a")?.leaderId ?? "";
    const [target, sender] = cluster.members.map((m) => m.id).filter((id) => id !== leader) as [string, string];
    const before = views.get(target);
    assert.ok(before);
    const as = toMember(target, memberCredentials(sender));
    const frame = (messages: readonly Message[]): unknown => peerFrame(CLUSTER_ID, { from: sender, to: target }, messages);
    const near = 2 ** 53 - 2;
    /** null: any refusal (a chunk read as a batch claims no sender: PERMISSION_DENIED under identity checks). */
    const outcomes: [string, StreamOutcome, grpc.status | null][] = [];
    const expect = async (name: string, code: grpc.status | null, r: Promise<StreamOutcome>): Promise<void> =>
      void outcomes.push([name, await r, code]);
    await expect("heartbeat at 2^53-2", grpc.status.INVALID_ARGUMENT, peerStream(as, "Send", [frame([heartbeat(sender, target, near)])]));
    await expect(
      "vote at 2^53-2",
      grpc.status.INVALID_ARGUMENT,
      peerStream(as, "Send", [
        frame([{ kind: "vote", from: sender, to: target, term: near, preVote: false, transfer: true, lastIndex: 10 ** 9, lastTerm: near }]),
      ]),
    );
    const image = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 2654435761) >>> 24);
    const forged: SnapshotMessage = {
      kind: "snapshot",
      from: sender,
      to: target,
      term: before.term,
      snapshot: { metadata: { index: before.lastIndex + 1000, term: before.term, confState }, data: image },
    };
    await expect(
      "a random snapshot image",
      grpc.status.INVALID_ARGUMENT,
      peerStream(as, "InstallSnapshot", snapshotFrames(CLUSTER_ID, forged)),
    );
    const truncated = { ...forged, snapshot: { ...forged.snapshot, data: new TextEncoder().encode('{"v":2,"appliedIndex":1,"leases":[') } };
    await expect("a truncated image on Send", grpc.status.INVALID_ARGUMENT, peerStream(as, "Send", [frame([truncated])]));
    await expect("undecodable bytes", grpc.status.INVALID_ARGUMENT, peerStream(as, "Send", [Buffer.from([0x0f, 0x01, 0x02, 0x03])]));
    await expect("an oversize frame", grpc.status.RESOURCE_EXHAUSTED, peerStream(as, "Send", [Buffer.alloc(5 * 1024 * 1024, 0x41)]));
    const chunk = snapshotFrames(CLUSTER_ID, forged)[0];
    await expect("a snapshot chunk on Send", null, peerStream(as, "Send", [snapshotChunkBytes(chunk)]));
    for (const [name, r, code] of outcomes) {
      if (code === null) assert.notEqual(r.code, grpc.status.OK, name);
      else assert.equal(r.code, code, `${name}: ${grpc.status[r.code]} ${r.details}`);
    }

    const check = async (when: string): Promise<void> => {
      const s = await until(`${target} to answer (${when})`, 20_000, () => seen(target));
      assert.ok(s.term < 2 ** 48, `${target}'s term ${s.term} (${when})`);
      assert.ok(s.lastIndex >= before.lastIndex, `${target} kept its log (${when}): ${s.lastIndex} < ${before.lastIndex}`);
      const leaderNow = await client.leaderId(20_000);
      assert.ok(leaderNow !== "", when);
    };
    assert.equal(cluster.processes.get(target)?.exitCode, null, `${target} is running`);
    await check("running");
    await cluster.kill9(target);
    await cluster.startMember(target, { bootstrap: false });
    await check("after a restart");
    const s = await until(`${target} to follow again`, 20_000, async () => {
      const v = await seen(target);
      return v !== null && v.leaderId !== "" && v.commitIndex >= before.commitIndex ? v : null;
    });
    assert.ok(s.term < 2 ** 48);
    const again = await client.call<Obj>("Lease", "Grant", { clientId: "peer-security", seq: 2, ttlMs: 5_000 });
    assert.ok(again.ok, JSON.stringify(again));
  });

  it("a member that is not the leader sends term+1 heartbeats every 300 ms: the healthy leader stays, grants are served", async () => {
    const views = await settled();
    const leader = views.get("a")?.leaderId ?? "";
    const startTerm = views.get(leader)?.term ?? 0;
    const attacker = cluster.members.map((m) => m.id).find((id) => id !== leader) ?? "";
    const targets = cluster.members.map((m) => m.id).filter((id) => id !== attacker);
    let grants = 0;
    for (let round = 0; round < 17; round++) {
      // The highest term anyone reports, plus one: what the outsider did to depose every leader in turn.
      let term = 0;
      for (const id of targets) term = Math.max(term, (await seen(id))?.term ?? 0);
      await Promise.all(
        targets.map((to) =>
          peerStream(toMember(to, memberCredentials(attacker)), "Send", [
            peerFrame(CLUSTER_ID, { from: attacker, to }, [heartbeat(attacker, to, term + 1)]),
          ]),
        ),
      );
      const g = await client.call<Obj>("Lease", "Grant", { clientId: "term-bumper-victim", seq: round + 1, ttlMs: 5_000 }, 5_000);
      if (g.ok) grants += 1;
      await sleep(300);
    }
    const afterwards = await settled();
    assert.equal(afterwards.get(leader)?.leaderId, leader, "the leader was deposed");
    assert.equal(afterwards.get(leader)?.term, startTerm, "the term moved");
    assert.equal(grants, 17);
    const ignored = (cluster.logs.get(leader) ?? []).filter((l) => l.includes('"event":"higher_term_ignored"'));
    assert.ok(ignored.length > 0, "the leader logs the terms it ignored");
  });
});
