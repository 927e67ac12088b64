// server/limits.ts: the default limits fit together, the state at its maxima included; each
// relation fails with a message naming both sides when one value breaks it (raising any aggregate
// state limit far enough breaks the snapshot relation); the config flags reach the limits, and
// tenured / tenure-witness refuse to start on limits that do not fit.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { loadConfig } from "./config.ts";
import { RAFT_LIMITS_DEFAULT } from "./core/config.ts";
import {
  CLIENT_MESSAGE_BYTES_MAX_DEFAULT,
  DEFAULT_LIMITS,
  LimitsError,
  PEER_MESSAGE_BYTES_MAX_DEFAULT,
  SNAPSHOT_BYTES_MAX_DEFAULT,
  SNAPSHOT_CHUNK_BYTES_DEFAULT,
  appendMessageBytesMax,
  assertLimits,
  snapshotBytesForState,
  assertLimitsAtStart,
  describeRelation,
  limitRelations,
  snapshotSendTimeoutMs,
  type Limits,
} from "./limits.ts";
import { DEFAULT_STATE_LIMITS, stateSizes, type StateLimits } from "./state/limits.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

function limits(patch: Partial<Omit<Limits, "state">> = {}, state: Partial<StateLimits> | null = {}): Limits {
  return { ...DEFAULT_LIMITS, ...patch, state: state === null ? null : stateSizes({ ...DEFAULT_STATE_LIMITS, ...state }) };
}

/** The LimitsError message of `l` (fails if it does not throw). */
function violation(l: Limits): string {
  try {
    assertLimits(l);
  } catch (err) {
    assert.ok(err instanceof LimitsError, String(err));
    return err.message;
  }
  assert.fail("expected a LimitsError");
}

describe("limits", () => {
  it("the defaults fit together, the state image with every table at its maximum included", () => {
    assert.doesNotThrow(() => assertLimits(limits()));
    const relations = limitRelations(limits());
    assert.ok(relations.every((r) => r.lhsValue <= r.rhsValue));
    const image = relations.find((r) => r.what.startsWith("a snapshot of a state with every table at its maximum"));
    assert.ok(image !== undefined);
    const text = describeRelation(image);
    assert.match(text, /fits the snapshot limit, with 1\/8 headroom: state image at the maxima \(leases \d+ .* \+ names \d+/);
    for (const table of ["waiters", "values", "sessions", "stored KeepAlive ids", "idle"])
      assert.match(text, new RegExp(`\\+ ${table} \\d+`));
    assert.match(text, /must be <= snapshotBytesMax less 1\/8 = 264241152 \(252\.0 MiB\)$/);
    // The bound is the sum of the aggregate limits, not a token figure: most of the allowance.
    assert.ok(image.lhsValue > 0.75 * image.rhsValue, describeRelation(image));
  });

  it("raising an aggregate state limit past the snapshot allowance fails, naming the relation", () => {
    const raised: readonly Partial<StateLimits>[] = [
      { waitersMax: 1_000_000 },
      { valueBytesTotalMax: 64 * MiB },
      { keepAliveLeaseIdsStoredMax: 1_000_000 },
      { sessionsMax: 200_000 },
      { namesMax: 200_000 },
      { leasesMax: 200_000 },
      { clientIdBytesMax: 512 },
      { nameBytesMax: 1024 },
    ];
    for (const patch of raised) {
      assert.match(
        violation(limits({}, patch)),
        /a snapshot of a state with every table at its maximum fits the snapshot limit, with 1\/8 headroom: state image at the maxima .* must be <= snapshotBytesMax less 1\/8 = 264241152/,
        JSON.stringify(patch),
      );
    }
    // So does a snapshot limit lowered below the state at its maxima (plus headroom).
    const total = stateSizes(DEFAULT_STATE_LIMITS).image.totalBytes;
    assert.match(violation(limits({ snapshotBytesMax: total })), /state image at the maxima/);
    const smallest = Math.ceil((total * 8) / 7);
    assert.ok(snapshotBytesForState(smallest) >= total);
    assert.doesNotThrow(() => assertLimits(limits({ snapshotBytesMax: smallest + 8 })));
  });

  it("a witness (no state machine) checks the frame, batch and snapshot relations only", () => {
    const relations = limitRelations(limits({}, null));
    assert.equal(relations.length, 6);
    assert.doesNotThrow(() => assertLimits(limits({}, null)));
  });

  it("the defaults are the ones the config and the transports use", () => {
    assert.deepEqual(DEFAULT_LIMITS, {
      clientMessageBytesMax: CLIENT_MESSAGE_BYTES_MAX_DEFAULT,
      peerMessageBytesMax: PEER_MESSAGE_BYTES_MAX_DEFAULT,
      entriesPerMessageMax: RAFT_LIMITS_DEFAULT.entriesPerMessageMax,
      bytesPerMessageMax: RAFT_LIMITS_DEFAULT.bytesPerMessageMax,
      snapshotChunkBytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
      snapshotBytesMax: SNAPSHOT_BYTES_MAX_DEFAULT,
    });
    const c = loadConfig(
      [
        "--id",
        "a",
        "--cluster-id",
        "c",
        "--data-dir",
        "d",
        "--peer-listen",
        "127.0.0.1:1",
        "--client-listen",
        "127.0.0.1:2",
        "--members",
        "a=127.0.0.1:1/127.0.0.1:2",
        "--insecure",
      ],
      {},
    );
    assert.deepEqual(
      [c.clientMessageBytesMax, c.peerMessageBytesMax, c.snapshotChunkBytes, c.snapshotBytesMax],
      [CLIENT_MESSAGE_BYTES_MAX_DEFAULT, PEER_MESSAGE_BYTES_MAX_DEFAULT, SNAPSHOT_CHUNK_BYTES_DEFAULT, SNAPSHOT_BYTES_MAX_DEFAULT],
    );
  });

  it("the config takes each limit as a flag or an environment variable", () => {
    const base = [
      "--id",
      "a",
      "--cluster-id",
      "c",
      "--data-dir",
      "d",
      "--peer-listen",
      "127.0.0.1:1",
      "--client-listen",
      "127.0.0.1:2",
      "--members",
      "a=127.0.0.1:1/127.0.0.1:2",
      "--insecure",
    ];
    const flags = ["--client-message-bytes-max", "65536", "--peer-message-bytes-max", "8388608", "--snapshot-chunk-bytes", "2097152"];
    const c = loadConfig([...base, ...flags], { TENURE_SNAPSHOT_BYTES_MAX: "134217728" });
    assert.deepEqual(
      [c.clientMessageBytesMax, c.peerMessageBytesMax, c.snapshotChunkBytes, c.snapshotBytesMax],
      [64 * KiB, 8 * MiB, 2 * MiB, 128 * MiB],
    );
    assert.throws(
      () => loadConfig([...base, "--peer-message-bytes-max", "1000"], {}),
      /peerMessageBytesMax must be an integer in \[65536, /,
    );
  });

  it("each relation, broken by one value, fails with a message naming both sides and their values", () => {
    const cases: readonly [Limits, RegExp][] = [
      [
        limits({ bytesPerMessageMax: 32 * KiB }),
        /a full-size entry fits one append batch: ENTRY_DATA_BYTES_MAX \+ entry overhead = 65576 \(64\.0 KiB\) must be <= bytesPerMessageMax = 32768 \(32\.0 KiB\)/,
      ],
      [
        limits({ peerMessageBytesMax: 1 * MiB }),
        /the largest append batch .* fits one peer frame: appendMessageBytesMax = 1069536 \(1\.0 MiB\) must be <= peerMessageBytesMax - batch header = 1047168/,
      ],
      // With no effective byte cap, entriesPerMessageMax full entries (512 x 64 KiB) bound the batch.
      [
        limits({ bytesPerMessageMax: 64 * MiB, peerMessageBytesMax: 16 * MiB }),
        /appendMessageBytesMax = 33575392 \(32\.0 MiB\) must be <= peerMessageBytesMax - batch header = 16775808/,
      ],
      [
        limits({ snapshotChunkBytes: 4 * MiB }),
        /a snapshot chunk fits one peer frame: snapshotChunkBytes \+ chunk overhead = 4194368 \(4\.0 MiB\) must be <= peerMessageBytesMax = 4194304 \(4\.0 MiB\)/,
      ],
      [
        limits({ snapshotBytesMax: 512 * KiB }),
        /a snapshot holds at least one chunk: snapshotChunkBytes = 1048576 \(1\.0 MiB\) must be <= snapshotBytesMax = 524288/,
      ],
      [
        limits({ snapshotBytesMax: 1 << 30 }),
        /decodes as one JavaScript string: snapshotBytesMax = 1073741824 \(1\.0 GiB\) must be <= V8_STRING_LENGTH_MAX = 536870888/,
      ],
      [
        limits({ snapshotBytesMax: 1 << 30 }),
        /fits one SQLite blob: snapshotBytesMax = 1073741824 \(1\.0 GiB\) must be <= SQLITE_BLOB_BYTES_MAX = 1000000000/,
      ],
      [
        limits({}, { valueBytesMax: 16 * KiB }),
        /the largest valid command fits one entry: commandBytesAtMaxima = \d+ \(\d+\.\d KiB\) must be <= ENTRY_DATA_BYTES_MAX \(COMMAND_BYTES_MAX\) = 65536/,
      ],
      [
        limits({ clientMessageBytesMax: 8 * KiB }),
        /a KeepAlive of keepAliveLeaseIdsMax ids fits the client frame: KeepAlive request of 1024 ids = 10391 \(10\.1 KiB\) must be <= clientMessageBytesMax = 8192/,
      ],
      [
        limits({ clientMessageBytesMax: 8 * KiB }, { valueBytesMax: 8 * KiB, keepAliveLeaseIdsMax: 16 }),
        /a Campaign with a full name and value fits the client frame: .* must be <= clientMessageBytesMax = 8192/,
      ],
      [
        limits({ snapshotBytesMax: 32 * MiB }),
        /a snapshot of a full lease table fits the snapshot limit: image header \+ leasesMax leases = 510\d{5} \(48\.6 MiB\) must be <= snapshotBytesMax = 33554432/,
      ],
    ];
    for (const [l, pattern] of cases) assert.match(violation(l), pattern);
  });

  it("every violation is listed at once, not only the first", () => {
    const message = violation(limits({ snapshotBytesMax: 1 << 30, clientMessageBytesMax: 8 * KiB }));
    assert.equal(message.split("\n").length, 4);
  });

  it("a limit that is not a positive integer is refused by name", () => {
    assert.match(violation(limits({ peerMessageBytesMax: 0 })), /^limit peerMessageBytesMax must be a positive integer, got 0$/);
    assert.match(violation(limits({ snapshotChunkBytes: 1.5 })), /snapshotChunkBytes/);
  });

  it("appendMessageBytesMax: the byte cap binds, unless entries run out first", () => {
    const big = appendMessageBytesMax({ entriesPerMessageMax: 512, bytesPerMessageMax: 1 * MiB });
    const few = appendMessageBytesMax({ entriesPerMessageMax: 2, bytesPerMessageMax: 1 * MiB });
    assert.ok(big > 1 * MiB && big < 1.1 * MiB);
    assert.ok(few < 2 * 64 * KiB + 1024, "two full entries, not a MiB");
  });

  it("a snapshot transfer's deadline grows with its size", () => {
    assert.equal(snapshotSendTimeoutMs(0), 10_000);
    assert.equal(snapshotSendTimeoutMs(256 * MiB), 10_000 + 256_000);
  });

  it("assertLimitsAtStart logs how much of the snapshot limit the largest state takes, and throws on a violation", () => {
    const lines: Record<string, unknown>[] = [];
    const frames = {
      clientMessageBytesMax: CLIENT_MESSAGE_BYTES_MAX_DEFAULT,
      peerMessageBytesMax: PEER_MESSAGE_BYTES_MAX_DEFAULT,
      snapshotChunkBytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
      snapshotBytesMax: SNAPSHOT_BYTES_MAX_DEFAULT,
    };
    const state = stateSizes(DEFAULT_STATE_LIMITS);
    assertLimitsAtStart({ frames, raft: RAFT_LIMITS_DEFAULT, state }, (f) => void lines.push(f));
    assert.deepEqual(
      [...lines],
      [
        {
          level: "info",
          event: "limits",
          stateImageBytesAtMaxima: state.image.totalBytes,
          snapshotBytesMax: SNAPSHOT_BYTES_MAX_DEFAULT,
          snapshotBytesForState: 252 * MiB,
        },
      ],
    );
    assertLimitsAtStart({ frames, raft: RAFT_LIMITS_DEFAULT, state: null }, (f) => void lines.push(f));
    assert.equal(lines.length, 1, "a witness has no state to report");
    assert.throws(
      () => assertLimitsAtStart({ frames: { ...frames, peerMessageBytesMax: 1 * MiB }, raft: RAFT_LIMITS_DEFAULT, state: null }, () => {}),
      LimitsError,
    );
    assert.throws(
      () => assertLimitsAtStart({ frames: { ...frames, snapshotBytesMax: 128 * MiB }, raft: RAFT_LIMITS_DEFAULT, state }, () => {}),
      /state image at the maxima/,
    );
  });
});

describe("startup with limits that do not fit", () => {
  /** Runs a member's main with a peer frame below one append batch; resolves with exit code and output. */
  function run(script: string, extra: readonly string[]): Promise<{ code: number | null; output: string }> {
    const args = [
      "--import",
      "tsx",
      new URL(script, import.meta.url).pathname,
      "--id",
      "a",
      "--cluster-id",
      "c",
      "--data-dir",
      "/nonexistent/tenure-limits-test",
      "--peer-listen",
      "127.0.0.1:0",
      "--client-listen",
      "127.0.0.1:0",
      "--members",
      "a=127.0.0.1:1/127.0.0.1:2,w=127.0.0.1:3/127.0.0.1:4",
      "--peer-message-bytes-max",
      "1048576",
      // Plaintext: the limits are checked before any port opens, TLS is not what this is about.
      "--insecure",
      ...extra,
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    return new Promise((resolve) => child.on("exit", (code) => resolve({ code, output })));
  }

  it("tenured and tenure-witness exit before opening anything, naming the relation", async () => {
    const [server, witness] = await Promise.all([run("./main.ts", []), run("../witness/main.ts", ["--id", "w", "--witnesses", "w"])]);
    for (const r of [server, witness]) {
      assert.notEqual(r.code, 0);
      assert.match(r.output, /LimitsError: limits do not fit together/);
      assert.match(r.output, /appendMessageBytesMax = 1069536/);
      assert.doesNotMatch(r.output, /"event":"started"/);
    }
  });
});
