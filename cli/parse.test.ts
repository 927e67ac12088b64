import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TenureError } from "../client-sdk/index.ts";
import { COMMANDS } from "./commands.ts";
import { EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, exitCodeOf } from "./exit_codes.ts";
import { resolveGlobals } from "./globals.ts";
import { main } from "./main.ts";
import { parseCommandLine } from "./parse.ts";

function capture(): { text: () => string; write: (s: string) => boolean } {
  let buf = "";
  return { text: () => buf, write: (s: string) => ((buf += s), true) };
}

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = capture();
  const stderr = capture();
  const code = await main(argv, { stdout, stderr, signal: new AbortController().signal });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe("tenurectl command line", () => {
  it("--help works on the top level, every group and every command, exit 0, naming the exit codes at the top", async () => {
    const top = await run(["--help"]);
    assert.equal(top.code, EXIT_OK);
    for (const c of COMMANDS) assert.ok(top.stdout.includes(c.summary), `top help lists ${c.path.join(" ")}`);
    assert.match(top.stdout, /exit codes:[\s\S]*2 {2}usage error[\s\S]*3 {2}unavailable/);
    for (const c of COMMANDS) {
      const argv = c.path.length === 1 && c.childCommand === true ? ["lock", "NAME", "--help"] : [...c.path, "--help"];
      const r = await run(argv);
      assert.equal(r.code, EXIT_OK, argv.join(" "));
      assert.match(r.stdout, /^usage: tenurectl /, argv.join(" "));
      assert.ok(r.stdout.includes(c.summary), `${argv.join(" ")} shows its own help`);
      for (const flag of Object.keys(c.options)) assert.ok(r.stdout.includes(`--${flag}`), `${argv.join(" ")} lists --${flag}`);
    }
    for (const group of ["lease", "lock", "member", "snapshot", "token"]) {
      const r = await run([group, "--help"]);
      assert.equal(r.code, EXIT_OK, group);
      assert.match(r.stdout, new RegExp(`usage: tenurectl ${group}`));
    }
    assert.equal((await run(["help", "lease", "grant"])).stdout, (await run(["lease", "grant", "--help"])).stdout);
  });

  it("refuses an unknown flag with exit 2, the nearest flag and the command's usage", async () => {
    const r = await run(["lease", "grant", "--ttl", "5000"]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(r.stderr, /unknown flag --ttl \(did you mean --ttl-ms\?\)/);
    assert.match(r.stderr, /usage: tenurectl lease grant/);
    const typo = await run(["status", "--endpionts", "127.0.0.1:1"]);
    assert.equal(typo.code, EXIT_USAGE);
    assert.match(typo.stderr, /unknown flag --endpionts \(did you mean --endpoints\?\)/);
    // A flag of another command is unknown here too.
    assert.match((await run(["lease", "revoke", "1", "--kill-grace-ms", "5"])).stderr, /unknown flag --kill-grace-ms/);
  });

  it("refuses unknown commands and subcommands with the nearest name, exit 2", async () => {
    const a = await run(["stauts"]);
    assert.equal(a.code, EXIT_USAGE);
    assert.match(a.stderr, /unknown command "stauts" \(did you mean status\?\)/);
    const b = await run(["lease", "grnat"]);
    assert.equal(b.code, EXIT_USAGE);
    assert.match(b.stderr, /unknown subcommand "lease grnat" \(did you mean grant\?\)/);
    const c = await run(["lease"]);
    assert.equal(c.code, EXIT_USAGE);
    assert.match(c.stderr, /lease needs a subcommand: grant, revoke, list, ttl/);
    assert.equal((await run([])).code, EXIT_USAGE);
  });

  it("refuses missing and extra arguments, bad values and a stray --, exit 2", async () => {
    assert.match((await run(["lock", "release", "x"])).stderr, /missing TOKEN/);
    assert.match((await run(["lock", "status", "x", "y"])).stderr, /unexpected argument "y"/);
    assert.match((await run(["lock", "x"])).stderr, /give the command to run after --/);
    assert.match((await run(["status", "--", "ls"])).stderr, /"status" takes no -- command/);
    const bad = await run(["status", "--output", "yaml", "--insecure"]);
    assert.equal(bad.code, EXIT_USAGE);
    assert.match(bad.stderr, /--output must be table or json/);
    assert.match((await run(["status", "--endpoints", "nohost", "--insecure"])).stderr, /--endpoints: endpoint "nohost" has no port/);
    const farPort = await run(["status", "--endpoints", "127.0.0.1:7001,127.0.0.1:70000", "--insecure"]);
    assert.equal(farPort.code, EXIT_USAGE);
    assert.match(farPort.stderr, /endpoint "127\.0\.0\.1:70000": port "70000" is not 1\.\.65535/);
    assert.match((await run(["lease", "grant", "--ttl-ms", "-5", "--insecure"])).stderr, /--ttl-ms/);
    assert.match((await run(["lease", "ttl", "abc", "--insecure"])).stderr, /LEASE_ID must be a positive integer/);
    const grace = await run(["lock", "x", "--ttl-ms", "3000", "--kill-grace-ms", "2000", "--insecure", "--", "true"]);
    assert.equal(grace.code, EXIT_USAGE);
    assert.match(grace.stderr, /--kill-grace-ms 2000 is too long for --ttl-ms 3000 \(at most 800/);
  });

  it("finds the command words around flags and keeps the words after -- for the child", () => {
    const p = parseCommandLine(["--endpoints", "h:1", "lock", "--ttl-ms", "3000", "job", "--", "sh", "-c", "echo --help"], COMMANDS);
    assert.equal(p.kind, "run");
    if (p.kind !== "run") return;
    assert.deepEqual(p.command.path, ["lock"]);
    assert.deepEqual(p.positionals, ["job"]);
    assert.deepEqual(p.child, ["sh", "-c", "echo --help"]);
    assert.equal(p.values["ttl-ms"], "3000");
    const sub = parseCommandLine(["lock", "acquire", "job", "--no-wait"], COMMANDS);
    assert.equal(sub.kind === "run" && sub.command.path.join(" "), "lock acquire");
  });

  it("every flag name has one type across commands (the word finder relies on it)", () => {
    const types = new Map<string, string>();
    for (const c of COMMANDS) {
      for (const [n, o] of Object.entries(c.options)) {
        const seen = types.get(n);
        assert.ok(seen === undefined || seen === o.type, `--${n} is ${seen} and ${o.type}`);
        types.set(n, o.type);
      }
    }
  });

  it("defaults to npm start's endpoints and dev certificates (admin first), and refuses contradictory TLS flags", () => {
    const present = new Set(["data/local/tls/ca.pem", "data/local/tls/client-admin.pem", "data/local/tls/client-admin.key"]);
    const g = resolveGlobals({}, (p) => present.has(p));
    assert.deepEqual(g.endpoints, ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]);
    assert.deepEqual(g.security, {
      tls: { caFile: "data/local/tls/ca.pem", certFile: "data/local/tls/client-admin.pem", keyFile: "data/local/tls/client-admin.key" },
    });
    assert.equal(g.output, "table");
    assert.throws(() => resolveGlobals({}, () => false), /no TLS options: give --ca FILE/);
    assert.throws(() => resolveGlobals({ insecure: true, ca: "x" }), /contradict/);
    assert.throws(() => resolveGlobals({ ca: "x", cert: "y" }), /--cert and --key go together/);
    assert.throws(() => resolveGlobals({ insecure: true, token: "a", "token-file": "b" }), /--token or --token-file/);
  });

  it("maps failures to the documented exit codes", () => {
    assert.equal(exitCodeOf(new TenureError("LOCK_HELD", "held")), EXIT_FAILED);
    assert.equal(exitCodeOf(new TenureError("NOT_HOLDER", "no")), EXIT_FAILED);
    assert.equal(exitCodeOf(new TenureError("PERMISSION_DENIED", "no")), EXIT_FAILED);
    assert.equal(exitCodeOf(new TenureError("FAILED_PRECONDITION", "frozen")), EXIT_FAILED);
    assert.equal(exitCodeOf(new TenureError("DEADLINE_EXCEEDED", "wait over", { reason: "TIMEOUT" })), EXIT_FAILED);
    assert.equal(exitCodeOf(new TenureError("DEADLINE_EXCEEDED", "no answer")), EXIT_UNAVAILABLE);
    assert.equal(exitCodeOf(new TenureError("UNAVAILABLE", "down")), EXIT_UNAVAILABLE);
    assert.equal(exitCodeOf(new TenureError("OUTCOME_UNKNOWN", "?")), EXIT_UNAVAILABLE);
    assert.equal(exitCodeOf(new TenureError("OVERLOADED", "busy", { reason: "OVERLOADED", retryAfterMs: 100 })), EXIT_UNAVAILABLE);
    assert.equal(exitCodeOf(new TenureError("INVALID_ARGUMENT", "ttl")), EXIT_USAGE);
  });

  it("exits 3 when no endpoint answers", async () => {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    const r = await run(["lease", "grant", "--insecure", "--endpoints", "127.0.0.1:1", "--timeout-ms", "1500"]);
    assert.equal(r.code, EXIT_UNAVAILABLE, r.stderr);
    assert.match(r.stderr, /lease grant: (DEADLINE_EXCEEDED|UNAVAILABLE|OUTCOME_UNKNOWN)/);
    const s = await run(["status", "--insecure", "--endpoints", "127.0.0.1:1", "--timeout-ms", "1500", "--output", "json"]);
    assert.equal(s.code, EXIT_UNAVAILABLE);
    assert.equal(JSON.parse(s.stdout).unreachable[0].endpoint, "127.0.0.1:1");
  });
});
