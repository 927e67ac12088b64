// server/fatal.ts: which errors stop the process, the one line it writes, the real exit, and
// that each catch site outside server/api routes invariant violations there (peer receive on
// both transports, the process pass, the tick, the witness's client stub) while an ordinary
// error keeps its old handling. server/api is covered by server/api/status_map.test.ts.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { tenurePackage, type ServiceName } from "../proto/tenure_protos.ts";
import { startClientStub, type ClientStubHandle } from "../witness/client_stub.ts";
import type { WitnessStatus } from "../witness/witness_node.ts";
import { ConfigError } from "./config.ts";
import { AssertionError } from "./core/assert.ts";
import type { Message } from "./core/messages.ts";
import { FATAL_EXIT_CODE, fatal, fatalLine, isFatal, runOrFatal, setFatalHandler, type FatalReport } from "./fatal.ts";
import { ProcessScheduler } from "./node/process_scheduler.ts";
import { StorageCorruptError, StorageLockedError } from "./storage/raft_storage.ts";
import { startTicker } from "./test_mode/test_clock.ts";
import { GrpcPeerTransport } from "./transport/grpc_peer_transport.ts";
import { MemoryNetwork } from "./transport/memory_transport.ts";

const fatalModule = new URL("./fatal.ts", import.meta.url).pathname;
const assertModule = new URL("./core/assert.ts", import.meta.url).pathname;

const heartbeat = (from: string, to: string): Message => ({
  kind: "heartbeat",
  from,
  to,
  term: 1,
  commit: 0,
  readContext: 0,
  witnessFloor: 0,
});

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Installs a recording fatal handler for each test of the enclosing describe. */
function recordFatals(): FatalReport[] {
  const reports: FatalReport[] = [];
  let restore: () => void = () => {};
  beforeEach(() => {
    reports.length = 0;
    restore = setFatalHandler((r) => void reports.push(r));
  });
  afterEach(() => restore());
  return reports;
}

describe("isFatal", () => {
  it("is true for a broken invariant and for corrupt storage only", () => {
    assert.equal(isFatal(new AssertionError("x")), true);
    assert.equal(isFatal(new StorageCorruptError("x")), true);
    for (const e of [
      new Error("x"),
      new TypeError("x"),
      new RangeError("x"),
      new StorageLockedError("x"),
      new ConfigError("x"),
      "x",
      null,
    ]) {
      assert.equal(isFatal(e), false, String(e));
    }
  });
});

describe("fatalLine", () => {
  it("is one JSON line with the error's name and message, where, and the stack", () => {
    const line = fatalLine(new AssertionError("two leaders in term 3"), "peer message from b (heartbeat)");
    assert.doesNotMatch(line, /\n/);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed["event"], "fatal");
    assert.equal(parsed["error"], "AssertionError: two leaders in term 3");
    assert.equal(parsed["where"], "peer message from b (heartbeat)");
    assert.equal(typeof parsed["timeMs"], "number");
    assert.match(String(parsed["stack"]), /AssertionError: two leaders/);
  });

  it("leaves the stack out on request and describes a thrown non-Error", () => {
    const parsed = JSON.parse(fatalLine("boom", "startup", { withStack: false })) as Record<string, unknown>;
    assert.equal(parsed["error"], "thrown non-Error: boom");
    assert.equal("stack" in parsed, false);
  });
});

describe("fatal", () => {
  const reports = recordFatals();

  it("hands the report to the handler, with exit code 70 unless told otherwise", () => {
    const error = new StorageCorruptError("bad crc at index 7");
    fatal(error, "node process pass");
    fatal(error, "startup", { exitCode: 1 });
    assert.equal(reports.length, 2);
    assert.equal(reports[0]?.error, error);
    assert.equal(reports[0]?.exitCode, FATAL_EXIT_CODE);
    assert.equal(reports[1]?.exitCode, 1);
    assert.match(reports[0]?.line ?? "", /"where":"node process pass"/);
  });

  it("runOrFatal: any throw is fatal, even an ordinary Error; no throw, no report", () => {
    runOrFatal("raft tick", () => {});
    assert.equal(reports.length, 0);
    runOrFatal("raft tick", () => {
      throw new Error("plain");
    });
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.where, "raft tick");
  });

  it("without a test handler: one line on stderr, exit 70, nothing after it runs", async () => {
    const script = [
      `import { fatal } from ${JSON.stringify(fatalModule)};`,
      `import { AssertionError } from ${JSON.stringify(assertModule)};`,
      `fatal(new AssertionError("pair check failed"), "unit test");`,
      `process.stdout.write("not reached\\n");`,
    ].join("\n");
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, FATAL_EXIT_CODE, stderr);
    assert.equal(stdout, "");
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, stderr);
    const parsed = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
    assert.equal(parsed["error"], "AssertionError: pair check failed");
    assert.equal(parsed["where"], "unit test");
  });
});

describe("timers: the process pass and the tick", () => {
  const reports = recordFatals();

  it("a throw in the node's process pass is fatal", async () => {
    const scheduler = new ProcessScheduler();
    scheduler.bind(() => {
      throw new StorageCorruptError("torn row");
    });
    scheduler.request();
    await waitFor("the fatal report", () => reports.length === 1);
    assert.equal(reports[0]?.where, "node process pass");
    assert.ok(reports[0]?.error instanceof StorageCorruptError);
  });

  it("a throw in a tick is fatal (production ticker)", async () => {
    const stop = startTicker(null, 2, () => {
      throw new AssertionError("tick while a Ready is outstanding");
    });
    try {
      await waitFor("the fatal report", () => reports.length >= 1);
    } finally {
      stop();
    }
    assert.equal(reports[0]?.where, "raft tick");
  });
});

describe("peer receive", () => {
  const reports = recordFatals();

  it("memory transport: an assertion in the handler is fatal; an ordinary throw is logged", async () => {
    const logged: Record<string, unknown>[] = [];
    const net = new MemoryNetwork({ log: (f) => void logged.push({ ...f }) });
    const [a, b] = [net.transport("a"), net.transport("b")];
    try {
      let calls = 0;
      b.onMessage((m) => {
        calls += 1;
        if (calls === 1) throw new Error("handler bug");
        throw new AssertionError(`leader b got ${m.kind} from ${m.from} in its own term ${m.term}`);
      });
      a.send([heartbeat("a", "b")]);
      await waitFor("the first message", () => calls === 1);
      assert.equal(reports.length, 0);
      assert.equal(logged[0]?.["event"], "message_handler_threw");
      a.send([heartbeat("a", "b")]);
      await waitFor("the fatal report", () => reports.length === 1);
      assert.equal(reports[0]?.where, "peer message from a (heartbeat)");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("memory transport: a malformed message is dropped, counted and logged at most once a second", () => {
    const logged: Record<string, unknown>[] = [];
    const net = new MemoryNetwork({ log: (f) => void logged.push({ ...f }) });
    const b = net.transport("b");
    let delivered = 0;
    b.onMessage(() => void (delivered += 1));
    for (let i = 0; i < 5; i++) b.deliver([{ from: "a", to: "b", term: "not a number" }]);
    assert.equal(delivered, 0);
    assert.equal(b.stats().rejectedBatches, 5);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.["event"], "inbound_batch_rejected");
    assert.equal(reports.length, 0);
  });

  it("gRPC transport: an assertion in the handler is fatal", async () => {
    const quiet = (): void => {};
    const start = (id: string): Promise<GrpcPeerTransport> =>
      GrpcPeerTransport.start({ selfId: id, clusterId: "k1", listenAddress: "127.0.0.1:0", peers: [], log: quiet });
    const [a, b] = await Promise.all([start("a"), start("b")]);
    try {
      a.setPeers([{ id: "b", address: b.boundAddress() }]);
      b.onMessage(() => {
        throw new AssertionError("leader b got heartbeat from a in its own term 1");
      });
      a.send([heartbeat("a", "b")]);
      await waitFor("the fatal report", () => reports.length === 1);
      assert.equal(reports[0]?.where, "peer message from a (heartbeat)");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("witness client stub", () => {
  const reports = recordFatals();
  type ClientCtor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;
  const loaded = grpc.loadPackageDefinition(tenurePackage()) as unknown as { tenure: { v1: Record<ServiceName, ClientCtor> } };
  let failure: Error = new Error("unset");
  const status = (): WitnessStatus => {
    throw failure;
  };
  let stub: ClientStubHandle;
  before(async () => {
    stub = await startClientStub({ listenAddress: "127.0.0.1:0", status, memberAddresses: new Map() });
  });
  after(() => stub.close(0));

  async function callStatus(service: ServiceName, method: string): Promise<grpc.ServiceError> {
    const client = new loaded.tenure.v1[service](stub.boundAddress(), grpc.credentials.createInsecure());
    const c = client as unknown as Record<string, (req: object, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void>;
    try {
      return await new Promise((resolve, reject) =>
        c[method]?.call(c, {}, { deadline: Date.now() + 5000 }, (e) => (e ? resolve(e) : reject(new Error("succeeded")))),
      );
    } finally {
      client.close();
    }
  }

  for (const [service, method] of [
    ["Cluster", "Status"],
    ["Lock", "Status"],
  ] as const) {
    it(`${service}.${method}: an assertion while answering is fatal; an ordinary throw is INTERNAL`, async () => {
      failure = new AssertionError("witness status read a torn core");
      assert.equal((await callStatus(service, method)).code, grpc.status.INTERNAL);
      assert.equal(reports.length, 1);
      assert.equal(reports[0]?.where, `client call ${service}.${method}`);
      failure = new TypeError("ordinary bug");
      assert.equal((await callStatus(service, method)).code, grpc.status.INTERNAL);
      assert.equal(reports.length, 1);
    });
  }
});
