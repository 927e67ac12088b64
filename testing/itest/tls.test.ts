// Mutual TLS on real tenured processes (issue 12, item 1): both ports refuse whoever has no
// certificate from the cluster's CA (plaintext, no certificate, another CA's certificate), and the
// refusals change nothing (term, leader, log); --insecure logs its warning and Cluster.Status says
// so; a CA bundle change and new member certificates are picked up without a restart (file watch,
// and SIGHUP, which must not stop the process), so new connections on both ports, and the peer
// links redialed after a reset, run on the new CA's certificates.
// (Same-CA rotation under load, with no failed grant: cert_rotation.test.ts.)

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { GrpcPeerTransport } from "../../server/transport/grpc_peer_transport.ts";
import { ensureDevCertificates, type CertificateFiles, type DevCertificates } from "../../tools/dev_certs.ts";
import { ProcessCluster } from "./process_cluster.ts";
import { testCertificates } from "./test_certs.ts";
import { TestClient } from "./test_client.ts";
import { sleep, until } from "./wait.ts";

type Obj = Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), "tenure-tls-itest-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Another CA with a member certificate for "b" (an outsider posing as member b) and a client. */
const foreign = ensureDevCertificates(join(root, "foreign"), { memberIds: ["b"], clientIdentities: ["mallory"] });

function files(c: CertificateFiles | undefined): CertificateFiles {
  assert.ok(c, "certificate missing");
  return c;
}

/** Term, leader and last index as every member reports them. */
async function views(cluster: ProcessCluster): Promise<Obj[]> {
  const c = cluster.testClient();
  try {
    const out: Obj[] = [];
    for (const m of cluster.members) {
      const r = await c.callAt<Obj>(m.clientAddress, "Cluster", "Status", {});
      assert.ok(r.ok, r.ok ? "" : r.details);
      out.push({ id: m.id, term: r.value["term"], leaderId: r.value["leaderId"], lastIndex: r.value["lastIndex"] });
    }
    return out;
  } finally {
    c.close();
  }
}

/** One Cluster.Status on a fresh connection with `creds`; the gRPC code, 0 when it succeeded. */
function statusCode(address: string, creds: grpc.ChannelCredentials): Promise<number> {
  const client = new grpc.Client(address, creds, { "grpc.use_local_subchannel_pool": 1 });
  const pass = (b: Buffer): Buffer => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest("/tenure.v1.Cluster/Status", pass, pass, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e) => {
      client.close();
      resolve(e ? e.code : 0);
    });
  });
}

/** The certificate a new TLS connection to `address` is shown, or the handshake's error. */
function handshake(address: string, o: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<{ serial: string } | { error: string }> {
  const [host = "", port = ""] = address.split(":");
  return new Promise((resolve) => {
    const s = tls.connect({ host, port: Number(port), ...o, servername: "localhost", ALPNProtocols: ["h2"] }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      // TLS 1.3: the server judges the client certificate after the client's handshake is done,
      // so wait a moment for its alert before calling the connection accepted.
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ serial });
      }, 300);
      s.once("error", (e) => {
        clearTimeout(timer);
        resolve({ error: e.message });
      });
      s.once("close", () => {
        clearTimeout(timer);
        resolve({ error: "closed by the server" });
      });
    });
    s.once("error", (e) => resolve({ error: e.message }));
  });
}

/** The pid member `id` reports in its "started" line. */
function pidOf(cluster: ProcessCluster, id: string): number {
  const line = (cluster.logs.get(id) ?? []).find((l) => l.includes('"event":"started"')) ?? "";
  const pid = Number((JSON.parse(line.slice(line.indexOf("{"))) as Obj)["pid"]);
  assert.ok(Number.isSafeInteger(pid) && pid > 0, `no pid in ${id}'s started line`);
  return pid;
}

const serialOf = (file: string): string => new X509Certificate(readFileSync(file)).serialNumber;

function pemOf(c: CertificateFiles, caFile: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: readFileSync(caFile), cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) };
}

describe("mutual TLS on tenured", { timeout: 180_000 }, () => {
  it("refuses plaintext, no certificate and another CA's certificate on both ports; term, leader and log unchanged", async () => {
    const cluster = await ProcessCluster.start();
    try {
      const leader = await cluster.testClient().leaderId(20_000);
      // A new leader appends a few entries of its own (no-op, timers): start from a quiet log.
      let before = await views(cluster);
      await until("the log to settle", 20_000, async () => {
        await sleep(500);
        const now = await views(cluster);
        const same = JSON.stringify(now) === JSON.stringify(before);
        before = now;
        return same;
      });
      assert.ok(cluster.certificates);
      const ca = readFileSync(cluster.certificates.caFile);
      const mallory = files(foreign.clients["mallory"]);
      const refusedClients: [string, grpc.ChannelCredentials][] = [
        ["plaintext", grpc.credentials.createInsecure()],
        ["TLS without a client certificate", grpc.credentials.createSsl(ca)],
        [
          "a client certificate of another CA",
          grpc.credentials.createSsl(ca, readFileSync(mallory.keyFile), readFileSync(mallory.certFile)),
        ],
      ];
      for (const m of cluster.members) {
        for (const [what, creds] of refusedClients) {
          assert.equal(await statusCode(m.clientAddress, creds), grpc.status.UNAVAILABLE, `${m.id} client port let in ${what}`);
          // The peer port is a gRPC server too: it refuses the connection before any method.
          assert.equal(await statusCode(m.peerAddress, creds), grpc.status.UNAVAILABLE, `${m.id} peer port let in ${what}`);
        }
      }
      // Outsiders speaking the peer protocol: a higher-term heartbeat claiming to come from b,
      // once over plaintext and once with another CA's certificate for "b". Either would depose
      // the leader if it were delivered.
      const term = Number(before.find((v) => v["id"] === leader)?.["term"]);
      const target = cluster.member(leader);
      const from = leader === "b" ? "c" : "b";
      const outsiderCreds = [
        grpc.credentials.createInsecure(),
        grpc.credentials.createSsl(
          ca,
          readFileSync(files(foreign.members["b"]).keyFile),
          readFileSync(files(foreign.members["b"]).certFile),
        ),
      ];
      const outsiders: GrpcPeerTransport[] = [];
      try {
        for (const channel of outsiderCreds) {
          const t = await GrpcPeerTransport.start({
            selfId: from,
            clusterId: "itest",
            listenAddress: "127.0.0.1:0",
            peers: [{ id: leader, address: target.peerAddress }],
            credentials: { server: grpc.ServerCredentials.createInsecure(), channel },
            log: () => {},
          });
          outsiders.push(t);
        }
        for (let i = 0; i < 10; i++) {
          for (const t of outsiders) {
            t.send([{ kind: "heartbeat", from, to: leader, term: term + 5, commit: 0, readContext: 0, witnessFloor: 0 }]);
          }
          await sleep(200);
        }
      } finally {
        await Promise.all(outsiders.map((t) => t.close()));
      }
      assert.deepEqual(await views(cluster), before, "a refused connection changed a member's term, leader or log");
      // The cluster's own client still works.
      const g = await cluster.testClient().call<Obj>("Lease", "Grant", { clientId: "tls-ok", seq: 1, ttlMs: 60_000 });
      assert.ok(g.ok, g.ok ? "" : g.details);
    } finally {
      await cluster.stopAll();
    }
  });

  it("--insecure logs the warning at start and Cluster.Status reports it, on tenured and tenure-witness; TLS members report false", async () => {
    const layout = { ids: ["a", "b", "w"], witnesses: ["w"] };
    /** Each member's Cluster.Status insecure field, its insecure warning, its started line's transport. */
    const report = async (cluster: ProcessCluster): Promise<Obj[]> => {
      const c = cluster.testClient();
      await c.leaderId(20_000);
      const out: Obj[] = [];
      for (const id of layout.ids) {
        const s = await c.callAt<Obj>(cluster.member(id).clientAddress, "Cluster", "Status", {});
        assert.ok(s.ok, s.ok ? "" : s.details);
        const lines = cluster.logs.get(id) ?? [];
        out.push({
          id,
          insecure: s.value["insecure"],
          warned: lines.some((l) => l.includes('"event":"insecure"') && l.includes("PLAINTEXT")),
          plaintextStart: lines.some((l) => l.includes('"event":"started"') && l.includes("PLAINTEXT (--insecure)")),
        });
      }
      c.close();
      return out;
    };
    const plain = await ProcessCluster.start({ ...layout, insecure: true }); // the behaviour under test is plaintext
    try {
      assert.deepEqual(
        await report(plain),
        layout.ids.map((id) => ({ id, insecure: true, warned: true, plaintextStart: true })),
      );
    } finally {
      await plain.stopAll();
    }
    const secure = await ProcessCluster.start(layout);
    try {
      assert.deepEqual(
        await report(secure),
        layout.ids.map((id) => ({ id, insecure: false, warned: false, plaintextStart: false })),
      );
    } finally {
      await secure.stopAll();
    }
  });

  it("a CA change and new member certificates are picked up without a restart, on both ports and the peer links", async () => {
    const ids = ["a", "b", "c"];
    const ca1 = await testCertificates({ memberIds: ids });
    const ca2 = ensureDevCertificates(join(root, "ca2"), { memberIds: ids, clientIdentities: ["c2"] });
    // Each member's own copies, so the test can rewrite them (by rename, as an operator would).
    const bundle = join(root, "bundle.pem");
    copyFileSync(ca1.caFile, bundle);
    const live = (id: string): CertificateFiles => ({ certFile: join(root, `live-${id}.pem`), keyFile: join(root, `live-${id}.key`) });
    const install = (from: DevCertificates, id: string): void => {
      const src = files(from.members[id]);
      const dst = live(id);
      // Key first, then certificate: the pair is inconsistent for a moment and must not be taken.
      copyFileSync(src.keyFile, `${dst.keyFile}.new`);
      renameSync(`${dst.keyFile}.new`, dst.keyFile);
      copyFileSync(src.certFile, `${dst.certFile}.new`);
      renameSync(`${dst.certFile}.new`, dst.certFile);
    };
    const writeBundle = (pems: readonly string[]): void => {
      writeFileSync(`${bundle}.new`, pems.map((p) => readFileSync(p, "utf8")).join(""));
      renameSync(`${bundle}.new`, bundle);
    };
    for (const id of ids) install(ca1, id);
    const cluster = await ProcessCluster.start({ ids, memberTls: (id) => ({ caFile: bundle, ...live(id) }) });
    try {
      await cluster.testClient().leaderId(20_000);
      // What each member says it loaded last (its tls_reloaded line: certificate serial, CA subjects).
      const loaded = (id: string): Obj | null => {
        const line = [...(cluster.logs.get(id) ?? [])].reverse().find((l) => l.includes('"event":"tls_reloaded"'));
        return line === undefined ? null : (JSON.parse(line.slice(line.indexOf("{"))) as Obj);
      };
      const waitLoaded = (what: string, ok: (id: string, l: Obj) => boolean): Promise<boolean> =>
        until(`every member to reload ${what}`, 20_000, () =>
          ids.every((id) => {
            const l = loaded(id);
            return l !== null && ok(id, l);
          }),
        );
      const caCount = (l: Obj): number => (Array.isArray(l["caSubjects"]) ? l["caSubjects"].length : 0);
      const c2 = files(ca2.clients["c2"]);
      // Client c2 trusts both CAs (the members still show CA1 certificates for now).
      const bothCas = Buffer.concat([readFileSync(ca1.caFile), readFileSync(ca2.caFile)]);
      const c2Creds = (): grpc.ChannelCredentials =>
        grpc.credentials.createSsl(bothCas, readFileSync(c2.keyFile), readFileSync(c2.certFile));
      const a = cluster.member("a");
      assert.equal(await statusCode(a.clientAddress, c2Creds()), grpc.status.UNAVAILABLE, "CA2's client let in before the change");

      // 1. The bundle gains CA2 (file watch).
      writeBundle([ca1.caFile, ca2.caFile]);
      await waitLoaded("the two-CA bundle", (_id, l) => caCount(l) === 2);
      for (const m of cluster.members) assert.equal(await statusCode(m.clientAddress, c2Creds()), 0, `${m.id} refuses CA2's client`);

      // 2. Every member gets a CA2 certificate; b is told by SIGHUP as well (it must survive it).
      for (const id of ids) install(ca2, id);
      const bPid = pidOf(cluster, "b");
      process.kill(bPid, "SIGHUP");
      await waitLoaded("its CA2 certificate", (id, l) => l["serialNumber"] === serialOf(live(id).certFile));
      process.kill(bPid, 0); // still running: SIGHUP reloads, it does not stop tenured
      for (const m of cluster.members) {
        const shown = await handshake(m.clientAddress, { ...pemOf(c2, ca2.caFile) });
        assert.deepEqual(shown, { serial: serialOf(live(m.id).certFile) }, `${m.id} client port`);
        const peerShown = await handshake(m.peerAddress, { ...pemOf(files(ca2.members["a"]), ca2.caFile) });
        assert.deepEqual(peerShown, { serial: serialOf(live(m.id).certFile) }, `${m.id} peer port`);
      }

      // 3. CA1 retired: its certificates are refused on both ports from now on.
      writeBundle([ca2.caFile]);
      await waitLoaded("the CA2-only bundle", (id, l) => caCount(l) === 1 && l["serialNumber"] === serialOf(live(id).certFile));
      const old = pemOf(files(ca1.members["a"]), ca1.caFile);
      for (const m of cluster.members) {
        for (const address of [m.clientAddress, m.peerAddress]) {
          const r = await handshake(address, { ...old, ca: readFileSync(ca2.caFile) });
          assert.ok("error" in r, `${m.id} ${address} accepted a CA1 certificate after CA1 was retired`);
        }
      }

      // 4. The peer links redialed: every connection through every member is dropped, so the
      // members reconnect to each other with their reloaded certificates and trust (CA2 only).
      for (const id of ids) cluster.resetConnections(id);
      const client = new TestClient(cluster.endpoints(), { tls: { caFile: ca2.caFile, certFile: c2.certFile, keyFile: c2.keyFile } });
      try {
        // The dropped links may cost an election: an outcome lost to it is retried with the same seq.
        const g = await until("a grant over the redialed links", 30_000, async () => {
          const r = await client.call<Obj>("Lease", "Grant", { clientId: "rotated", seq: 1, ttlMs: 60_000 }, 10_000);
          return r.ok || r.reason !== "OUTCOME_UNKNOWN" ? r : null;
        });
        assert.ok(g.ok, g.ok ? "" : g.details);
        const after = await client.call<Obj>("Cluster", "Status", {});
        assert.ok(after.ok, after.ok ? "" : after.details);
        const committed = Number(after.value["commitIndex"]);
        await until("every member to commit the grant over the redialed links", 30_000, async () => {
          for (const m of cluster.members) {
            const s = await client.callAt<Obj>(m.clientAddress, "Cluster", "Status", {});
            if (!s.ok || Number(s.value["commitIndex"]) < committed) return false;
          }
          return true;
        });
      } finally {
        client.close();
      }
      for (const id of ids) {
        const lines = cluster.logs.get(id) ?? [];
        assert.ok(!lines.some((l) => l.includes('"event":"stopped"')), `${id} restarted or stopped`);
      }
    } finally {
      await cluster.stopAll();
    }
  });
});
