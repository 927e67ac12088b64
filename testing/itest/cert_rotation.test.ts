// Certificate rotation with the cluster serving (issue 12): SDK clients take and release locks in
// a loop while every member's certificate, and the clients' own, is replaced on disk by a new one
// from the same CA (key first, then certificate, each by rename, as tools/dev_certs.ts writes
// them). The members pick the files up by themselves (their file watch; no signal, no restart).
// No grant may fail, and a new connection to either port of every member must present the new
// certificate (its SHA-256 fingerprint, and a serial other than the old one); the connections
// through each member's addresses are then dropped so clients and peers reconnect on the new
// certificates while the loop runs.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import { performance } from "node:perf_hooks";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { TenureClient, TenureError } from "../../client-sdk/index.ts";
import { issueClientCertificate, issueMemberCertificate, type CertificateFiles } from "../../tools/dev_certs.ts";
import { ProcessCluster } from "./process_cluster.ts";
import { until } from "./wait.ts";

const CLIENTS = 4;
const IDENTITY = "rotating-client";

/** The certificate a new TLS connection to `address` is shown (CA-verified; our client cert). */
function presented(address: string, ca: Buffer, me: CertificateFiles): Promise<{ fingerprint256: string; serialNumber: string }> {
  const [host = "", port = ""] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host,
        port: Number(port),
        ca,
        cert: readFileSync(me.certFile),
        key: readFileSync(me.keyFile),
        servername: "localhost",
        ALPNProtocols: ["h2"],
      },
      () => {
        const c = socket.getPeerCertificate();
        resolve({ fingerprint256: c.fingerprint256, serialNumber: c.serialNumber });
        socket.destroy();
      },
    );
    socket.once("error", reject);
  });
}

function fingerprintOf(certFile: string): { fingerprint256: string; serialNumber: string } {
  const x = new X509Certificate(readFileSync(certFile));
  return { fingerprint256: x.fingerprint256, serialNumber: x.serialNumber };
}

/** A new pair beside `live`, renamed over it key first (a watcher never sees a certificate
 *  without its key, and never half a file). Returns the new certificate's fingerprint. */
function rotate(live: CertificateFiles, issue: (stem: string) => CertificateFiles, stem: string): string {
  const next = issue(stem);
  renameSync(next.keyFile, live.keyFile);
  renameSync(next.certFile, live.certFile);
  return fingerprintOf(live.certFile).fingerprint256;
}

describe("certificate rotation with the cluster serving", { timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  const clients: TenureClient[] = [];

  before(async () => {
    cluster = await ProcessCluster.start({ lockDelayMs: 300, clientIdentities: [IDENTITY] });
  });

  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stopAll();
  });

  it("every member's and the client's certificate replaced on disk: no failed grant, new connections show the new ones", async () => {
    const certs = cluster.certificates;
    assert.ok(certs, "the cluster runs TLS");
    const dir = dirname(certs.caFile);
    const ca = readFileSync(certs.caFile);
    const me = certs.clients[IDENTITY];
    assert.ok(me);
    const stop = new AbortController();
    let grants = 0;
    const failures: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(new TenureClient({ endpoints: cluster.endpoints(), ...cluster.clientSecurity(IDENTITY), clientId: `rot-${i}` }));
    }
    const loops = clients.map(async (client, i) => {
      while (!stop.signal.aborted) {
        try {
          const lock = await client.lock(`rot-${i % 2}`, { ttlMs: 5_000, timeoutMs: 20_000 }, { timeoutMs: 30_000 });
          await lock.release({ timeoutMs: 10_000 });
          grants++;
        } catch (e) {
          const t = TenureError.from(e);
          failures.push(`client ${i}: ${t.code} ${t.message}`);
        }
      }
    });
    try {
      await until("grants before the rotation", 30_000, () => grants >= 20, 50);
      const before = new Map<string, { fingerprint256: string; serialNumber: string }>();
      for (const m of cluster.members) before.set(m.id, await presented(m.clientAddress, ca, me));
      // The clients' certificate first: their next connections (after the resets below) present it.
      const clientFingerprint = rotate(me, (stem) => issueClientCertificate(IDENTITY, { dir, stem }), `${IDENTITY}-next`);
      assert.notEqual(clientFingerprint, "");
      for (const m of cluster.members) {
        const live = certs.members[m.id];
        assert.ok(live);
        const atRotation = grants;
        const started = performance.now();
        const expected = rotate(live, (stem) => issueMemberCertificate(m.id, { dir, stem }), `member-${m.id}-next`);
        assert.notEqual(expected, before.get(m.id)?.fingerprint256);
        // The member's file watch (1 s poll) loads the pair; both ports then show it.
        for (const address of [m.clientAddress, m.peerAddress]) {
          await until(
            `${m.id} presenting its new certificate at ${address}`,
            15_000,
            async () => {
              // A refused or reset probe is not the answer yet: ask again.
              return (await presented(address, ca, me).catch(() => null))?.fingerprint256 === expected;
            },
            100,
          );
        }
        console.log(`${m.id}: new certificate in force after ${(performance.now() - started).toFixed(0)} ms`);
        // Open connections keep the old certificate; drop them so clients and peers reconnect now.
        cluster.resetConnections(m.id);
        await until(`grants after rotating ${m.id}`, 30_000, () => grants >= atRotation + 10, 50);
      }
      const reloaded = cluster.members.map(
        (m) => (cluster.logs.get(m.id) ?? []).filter((l) => l.includes('"event":"tls_reloaded"')).length,
      );
      assert.ok(
        reloaded.every((n) => n >= 1),
        `a member did not log tls_reloaded: ${reloaded.join(",")}`,
      );
      for (const m of cluster.members) {
        for (const address of [m.clientAddress, m.peerAddress]) {
          const now = await presented(address, ca, me);
          const onDisk = fingerprintOf(certs.members[m.id]?.certFile ?? "");
          assert.equal(now.fingerprint256, onDisk.fingerprint256, `${m.id} at ${address}`);
          assert.equal(now.serialNumber, onDisk.serialNumber);
          assert.notEqual(now.serialNumber, before.get(m.id)?.serialNumber, `${m.id} kept its old serial`);
        }
      }
    } finally {
      stop.abort();
      await Promise.all(loops);
    }
    assert.deepEqual(failures, [], "a grant failed during the rotation");
    console.log(`rotation: ${grants} grants, ${failures.length} failed`);
    assert.ok(grants >= 50, `only ${grants} grants`);
  });
});
