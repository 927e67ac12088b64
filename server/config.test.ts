import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, loadConfig } from "./config.ts";

/** Every file this test writes, removed at the end. */
const tempRoot = mkdtempSync(join(tmpdir(), "tenure-config-test-"));
after(() => rmSync(tempRoot, { recursive: true, force: true }));

const members = "a=127.0.0.1:7101/127.0.0.1:7001,b=127.0.0.1:7102/127.0.0.1:7002";
/** Everything but transport security. */
const untrusted = [
  "--id",
  "a",
  "--cluster-id",
  "c1",
  "--data-dir",
  "/tmp/x",
  "--peer-listen",
  "127.0.0.1:7101",
  "--client-listen",
  "127.0.0.1:7001",
  "--members",
  members,
];
const tlsFlags = ["--tls-ca", "/etc/tenure/ca.pem", "--tls-cert", "/etc/tenure/a.pem", "--tls-key", "/etc/tenure/a.key"];
const base = [...untrusted, ...tlsFlags];

describe("config", () => {
  it("reads flags with defaults", () => {
    const c = loadConfig(base, {});
    assert.equal(c.id, "a");
    assert.equal(c.members.length, 2);
    assert.equal(c.members[1]?.clientAddress, "127.0.0.1:7002");
    assert.equal(c.bootstrap, false);
    assert.equal(c.rho, 0.01);
    assert.deepEqual(c.witnesses, []);
  });

  it("reads witnesses from a flag, env or a YAML list, and checks them against members", () => {
    const three = `${members},w=127.0.0.1:7103/127.0.0.1:7003`;
    const withW = [...untrusted.slice(0, -1), three, ...tlsFlags];
    assert.deepEqual(loadConfig([...withW, "--witnesses", "w"], {}).witnesses, ["w"]);
    assert.deepEqual(loadConfig(withW, { TENURE_WITNESSES: "w" }).witnesses, ["w"]);
    const dir = mkdtempSync(join(tempRoot, "config-"));
    const file = join(dir, "tenure.yaml");
    writeFileSync(file, "witnesses:\n  - w\n");
    assert.deepEqual(loadConfig([...withW, "--config", file], {}).witnesses, ["w"]);
    assert.throws(() => loadConfig([...withW, "--witnesses", "x"], {}), /witness "x" is not in members/);
    assert.throws(() => loadConfig([...withW, "--witnesses", "w,w"], {}), /duplicate/);
    assert.throws(() => loadConfig([...withW, "--witnesses", "W!"], {}), /witnesses\[0\] must match/);
    assert.throws(() => loadConfig([...withW, "--witnesses", "a,b,w"], {}), /at least one member must not be a witness/);
  });

  it("flags override env, env overrides the YAML file", () => {
    const dir = mkdtempSync(join(tempRoot, "config-"));
    const file = join(dir, "tenure.yaml");
    writeFileSync(
      file,
      `lockDelayMs: 1000\ntickMs: 20\nrho: 0.02\nmembers:\n  - {id: a, peerAddress: "127.0.0.1:7101", clientAddress: "127.0.0.1:7001"}\n`,
    );
    const argv = [
      "--config",
      file,
      "--id",
      "a",
      "--cluster-id",
      "c1",
      "--data-dir",
      "/d",
      "--peer-listen",
      "127.0.0.1:1",
      "--client-listen",
      "127.0.0.1:2",
      "--tick-ms",
      "30",
      "--insecure",
    ];
    const c = loadConfig(argv, { TENURE_TICK_MS: "25", TENURE_LOCK_DELAY_MS: "2000" });
    assert.equal(c.tickMs, 30);
    assert.equal(c.lockDelayMs, 2000);
    assert.equal(c.rho, 0.02);
    assert.equal(c.members.length, 1);
  });

  it("rejects bad values with a message naming the field", () => {
    assert.throws(
      () => loadConfig([...base, "--tick-ms", "-5"], {}),
      (e: unknown) => e instanceof ConfigError && /tickMs must be an integer/.test(e.message),
    );
    assert.throws(() => loadConfig([...base, "--rho", "0.9"], {}), /rho must be a number/);
    assert.throws(() => loadConfig([...base, "--members", "b=127.0.0.1:1/127.0.0.1:2"], {}), /must include this node's id/);
    assert.throws(() => loadConfig([...base, "--members", "nonsense"], {}), /must look like id=peerHost:port/);
    assert.throws(() => loadConfig(["--id"], {}), /needs a value/);
    assert.throws(() => loadConfig([...base, "--heartbeat-interval-ticks", "20"], {}), /heartbeatIntervalTicks must be smaller/);
    assert.throws(() => loadConfig([...base, "--renewal-coalesce-ticks", "10"], {}), /renewalCoalesceTicks must be smaller/);
    assert.throws(() => loadConfig([...base, "--renewal-coalesce-ticks", "-1"], {}), /renewalCoalesceTicks must be an integer/);
  });

  it("renewal coalescing defaults to the heartbeat interval (null here); 0 turns it off", () => {
    assert.equal(loadConfig(base, {}).renewalCoalesceTicks, null);
    assert.equal(loadConfig([...base, "--renewal-coalesce-ticks", "0"], {}).renewalCoalesceTicks, 0);
    assert.equal(loadConfig(base, { TENURE_RENEWAL_COALESCE_TICKS: "3" }).renewalCoalesceTicks, 3);
  });

  it("the leader's fsync runs off the event loop unless --fsync-on-event-loop", () => {
    assert.equal(loadConfig(base, {}).fsyncOnEventLoop, false);
    assert.equal(loadConfig([...base, "--fsync-on-event-loop"], {}).fsyncOnEventLoop, true);
    assert.equal(loadConfig(base, { TENURE_FSYNC_ON_EVENT_LOOP: "1" }).fsyncOnEventLoop, true);
    assert.throws(() => loadConfig(base, { TENURE_FSYNC_ON_EVENT_LOOP: "maybe" }), /fsyncOnEventLoop must be true or false/);
  });
});

describe("config: transport security", () => {
  it("takes the three TLS files from flags, env or YAML, TLS 1.3 by default", () => {
    assert.deepEqual(loadConfig(base, {}).tls, {
      caFile: "/etc/tenure/ca.pem",
      certFile: "/etc/tenure/a.pem",
      keyFile: "/etc/tenure/a.key",
      minVersion: "TLSv1.3",
    });
    const env = { TENURE_TLS_CA: "/e/ca.pem", TENURE_TLS_CERT: "/e/a.pem", TENURE_TLS_KEY: "/e/a.key", TENURE_TLS_MIN_VERSION: "TLSv1.2" };
    assert.deepEqual(loadConfig(untrusted, env).tls, {
      caFile: "/e/ca.pem",
      certFile: "/e/a.pem",
      keyFile: "/e/a.key",
      minVersion: "TLSv1.2",
    });
    const dir = mkdtempSync(join(tempRoot, "config-"));
    const file = join(dir, "tenure.yaml");
    writeFileSync(file, "tlsCa: /y/ca.pem\ntlsCert: /y/a.pem\ntlsKey: /y/a.key\n");
    assert.equal(loadConfig([...untrusted, "--config", file], {}).tls?.certFile, "/y/a.pem");
  });

  it("requires the files unless --insecure, naming the missing flags", () => {
    assert.throws(
      () => loadConfig(untrusted, {}),
      (e: unknown) => e instanceof ConfigError && /^--tls-ca, --tls-cert, --tls-key are required: .*--insecure/.test(e.message),
    );
    assert.throws(() => loadConfig([...untrusted, "--tls-ca", "/c", "--tls-cert", "/a"], {}), /: --tls-key is required/);
    assert.throws(() => loadConfig([...untrusted, "--tls-ca", "", "--tls-cert", "/a", "--tls-key", "/k"], {}), /: --tls-ca is required/);
    assert.throws(() => loadConfig([...base, "--tls-min-version", "TLSv1.1"], {}), /tlsMinVersion must be TLSv1.3 or TLSv1.2/);
  });

  it("--insecure is plaintext (tls null) and refuses TLS files beside it", () => {
    assert.equal(loadConfig([...untrusted, "--insecure"], {}).tls, null);
    assert.equal(loadConfig(untrusted, { TENURE_INSECURE: "true" }).tls, null);
    assert.throws(() => loadConfig([...base, "--insecure"], {}), /--insecure \(plaintext\) and --tls-ca, --tls-cert, --tls-key contradict/);
  });
});

describe("config: test mode (test-only switches)", () => {
  it("is off by default, with no clock file and no bugs", () => {
    const c = loadConfig(base, {});
    assert.equal(c.testMode, false);
    assert.equal(c.testClockFile, null);
    assert.deepEqual(c.testBugs, []);
  });

  it("refuses every test-only option without --test-mode, from any source", () => {
    const needs = (flag: string) => (e: unknown) =>
      e instanceof ConfigError && e.message === `${flag} requires --test-mode (test-only option; never use it in production)`;
    assert.throws(() => loadConfig([...base, "--test-clock-file", "/tmp/clock.json"], {}), needs("--test-clock-file"));
    assert.throws(() => loadConfig([...base, "--test-bugs", "stale-local-reads"], {}), needs("--test-bugs"));
    assert.throws(() => loadConfig(base, { TENURE_TEST_BUGS: "stale-local-reads" }), needs("--test-bugs"));
    assert.throws(() => loadConfig([...base, "--test-mode=false", "--test-bugs", ""], {}), needs("--test-bugs"));
  });

  it("refuses an unknown bug name, naming it and the known ones", () => {
    assert.throws(
      () => loadConfig([...base, "--test-mode", "--test-bugs", "stale-local-reads,lose-writes"], {}),
      (e: unknown) =>
        e instanceof ConfigError && /"lose-writes"/.test(e.message) && /grant-without-lease-check, stale-local-reads/.test(e.message),
    );
  });

  it("parses the options with --test-mode from flags, env or YAML", () => {
    const c = loadConfig(
      [...base, "--test-mode", "--test-clock-file", "/tmp/a.clock.json", "--test-bugs", "stale-local-reads,grant-without-lease-check"],
      {},
    );
    assert.equal(c.testMode, true);
    assert.equal(c.testClockFile, "/tmp/a.clock.json");
    assert.deepEqual(c.testBugs, ["stale-local-reads", "grant-without-lease-check"]);
    // --test-mode takes no value: the next flag is still a flag.
    assert.equal(loadConfig(["--test-mode", ...base], {}).testMode, true);
    assert.deepEqual(loadConfig(base, { TENURE_TEST_MODE: "1", TENURE_TEST_BUGS: "stale-local-reads" }).testBugs, ["stale-local-reads"]);
    const dir = mkdtempSync(join(tempRoot, "config-"));
    const file = join(dir, "tenure.yaml");
    writeFileSync(file, "testMode: true\ntestClockFile: /tmp/y.json\ntestBugs:\n  - grant-without-lease-check\n");
    const y = loadConfig([...base, "--config", file], {});
    assert.deepEqual([y.testMode, y.testClockFile, y.testBugs], [true, "/tmp/y.json", ["grant-without-lease-check"]]);
  });
});

describe("deploy/config examples", () => {
  const dir = new URL("../deploy/config/", import.meta.url).pathname;
  it("the three-site member config parses", () => {
    const c = loadConfig(["--config", `${dir}three-sites-a.yaml`], {});
    assert.equal(c.members.length, 3);
    assert.deepEqual(c.witnesses, []);
    assert.equal(c.tls?.certFile, "/etc/tenure/tls/member-a.pem");
  });
  it("the two-sites + witness config parses and names the witness", () => {
    const c = loadConfig(["--config", `${dir}two-sites-witness-w.yaml`], {});
    assert.deepEqual(c.witnesses, ["w"]);
    assert.equal(c.id, "w");
    assert.equal(c.tls?.certFile, "/etc/tenure/tls/member-w.pem");
  });
});

describe("config: the metrics port and gRPC reflection", () => {
  it("are off by default", () => {
    const c = loadConfig(base, {});
    assert.equal(c.metricsListen, null);
    assert.equal(c.grpcReflection, false);
  });

  it("--metrics-listen takes a loopback host:port from a flag, TENURE_METRICS_LISTEN or YAML metricsListen", () => {
    assert.equal(loadConfig([...base, "--metrics-listen", "127.0.0.1:9100"], {}).metricsListen, "127.0.0.1:9100");
    assert.equal(loadConfig(base, { TENURE_METRICS_LISTEN: "localhost:0" }).metricsListen, "localhost:0");
    assert.equal(loadConfig([...base, "--metrics-listen", "[::1]:9100"], {}).metricsListen, "[::1]:9100");
    const dir = mkdtempSync(join(tempRoot, "metrics-"));
    const file = join(dir, "t.yaml");
    writeFileSync(file, "metricsListen: 127.0.0.2:9100\ngrpcReflection: true\n");
    const c = loadConfig([...base, "--config", file], {});
    assert.equal(c.metricsListen, "127.0.0.2:9100");
    assert.equal(c.grpcReflection, true);
    assert.equal(loadConfig([...base, "--grpc-reflection"], {}).grpcReflection, true);
  });

  it("a non-loopback metrics address is refused unless --metrics-allow-remote says so", () => {
    for (const remote of ["0.0.0.0:9100", "10.0.0.1:9100", "metrics.example:9100", "[::]:9100", "127.0.0.256:9100"]) {
      assert.throws(
        () => loadConfig([...base, "--metrics-listen", remote], {}),
        (e: unknown) => e instanceof ConfigError && /not a loopback address.*--metrics-allow-remote/.test(e.message),
        remote,
      );
      assert.equal(loadConfig([...base, "--metrics-listen", remote, "--metrics-allow-remote"], {}).metricsListen, remote);
    }
    assert.throws(() => loadConfig([...base, "--metrics-listen", "9100"], {}), ConfigError);
    assert.throws(() => loadConfig([...base, "--metrics-allow-remote"], {}), /needs --metrics-listen/);
  });

  it("a port beyond 65535 is refused on every listen and member address, naming it", () => {
    const refused = (args: readonly string[], what: RegExp) =>
      assert.throws(
        () => loadConfig([...base, ...args], {}),
        (e: unknown) => e instanceof ConfigError && what.test(e.message) && /out of range \(0\.\.65535\)/.test(e.message),
        args.join(" "),
      );
    refused(["--metrics-listen", "127.0.0.1:65536"], /metricsListen 127\.0\.0\.1:65536: port 65536/);
    refused(["--metrics-listen", "127.0.0.1:99999"], /port 99999/);
    refused(["--client-listen", "127.0.0.1:70000"], /clientListen 127\.0\.0\.1:70000/);
    refused(["--peer-listen", "127.0.0.1:70000"], /peerListen 127\.0\.0\.1:70000/);
    refused(
      ["--members", "a=127.0.0.1:70001/127.0.0.1:7001,b=127.0.0.1:7102/127.0.0.1:7002,c=127.0.0.1:7103/127.0.0.1:7003"],
      /members\[0\]\.peerAddress/,
    );
    assert.equal(loadConfig([...base, "--metrics-listen", "127.0.0.1:65535"], {}).metricsListen, "127.0.0.1:65535");
    assert.equal(loadConfig([...base, "--metrics-listen", "127.0.0.1:0"], {}).metricsListen, "127.0.0.1:0");
  });
});
