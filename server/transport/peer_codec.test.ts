import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import * as protoLoader from "@grpc/proto-loader";
import { encodeConfChange } from "../core/conf_change.ts";
import type { Message } from "../core/messages.ts";
import { PEER_PROTO_LOADER_OPTIONS, decodeBatch, decodeMessage, encodeBatch, encodeMessage, estimateMessageBytes } from "./peer_codec.ts";
import type { WirePeerBatch } from "./peer_codec.ts";

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

/** One message of every kind, with edge values (0, max safe, empty and binary data). */
const everyKind: readonly Message[] = [
  {
    kind: "append",
    from: "a",
    to: "b",
    term: 7,
    prevIndex: 10,
    prevTerm: 6,
    commit: 9,
    witnessFloor: 8,
    witnessFloorAppliedIndex: 9,
    entries: [
      { term: 6, index: 11, type: "normal", data: bytes() },
      { term: 7, index: 12, type: "normal", data: bytes(0, 255, 1, 128) },
      {
        term: 7,
        index: 13,
        type: "config",
        data: encodeConfChange({ kind: "simple", change: { op: "addLearner", nodeId: "w", witness: true } }),
      },
    ],
  },
  { kind: "append", from: "a", to: "b", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, witnessFloor: 0, entries: [] },
  { kind: "appendResponse", from: "b", to: "a", term: 7, index: 13, reject: false, rejectHintIndex: 0, rejectHintTerm: 0 },
  { kind: "appendResponse", from: "b", to: "a", term: 7, index: 40, reject: true, rejectHintIndex: 31, rejectHintTerm: 5 },
  {
    kind: "heartbeat",
    from: "a",
    to: "c",
    term: 7,
    commit: 13,
    readContext: Number.MAX_SAFE_INTEGER,
    witnessFloor: 12,
    witnessFloorAppliedIndex: 13,
  },
  { kind: "heartbeatResponse", from: "c", to: "a", term: 7, readContext: 0 },
  { kind: "vote", from: "c", to: "a", term: 8, preVote: true, transfer: false, lastIndex: 13, lastTerm: 7 },
  { kind: "vote", from: "c", to: "b", term: 9, preVote: false, transfer: true, lastIndex: 13, lastTerm: 7 },
  { kind: "voteResponse", from: "a", to: "c", term: 8, preVote: true, reject: false },
  { kind: "voteResponse", from: "b", to: "c", term: 9, preVote: false, reject: true },
  { kind: "voteResponse", from: "b", to: "c", term: 9, preVote: true, reject: false, committedIndex: 2 ** 40, committedTerm: 9 },
  {
    kind: "snapshot",
    from: "a",
    to: "b",
    term: 7,
    snapshot: {
      metadata: {
        index: 100,
        term: 6,
        confState: {
          voters: ["a", "b"],
          votersOutgoing: ["a", "b", "c"],
          learners: ["w"],
          learnersNext: ["c"],
          witnesses: ["w"],
          autoLeave: true,
        },
      },
      data: new Uint8Array(4096).map((_, i) => i % 251),
    },
  },
  { kind: "timeoutNow", from: "a", to: "b", term: 7 },
  // Answers of a member recovering lost log data (server/core/raft.ts "Recovery"); last, so the indexes above stay.
  { kind: "appendResponse", from: "b", to: "a", term: 7, index: 9, reject: false, rejectHintIndex: 0, rejectHintTerm: 0, recovering: true },
  { kind: "heartbeatResponse", from: "c", to: "a", term: 7, readContext: 3, recovering: true },
];

const definition = protoLoader.loadSync(fileURLToPath(new URL("../../proto/tenure/v1/peer.proto", import.meta.url)), {
  ...PEER_PROTO_LOADER_OPTIONS,
});
const sendMethod = (definition["tenure.v1.RaftPeer"] as Record<string, protoLoader.MethodDefinition<object, object>>)["Send"];
assert.ok(sendMethod, "RaftPeer.Send is defined");

/** Through real protobuf bytes, exactly as gRPC would carry it. */
function overTheWire(batch: WirePeerBatch): unknown {
  assert.ok(sendMethod);
  return sendMethod.requestDeserialize(sendMethod.requestSerialize(batch));
}

function mutate(m: Message, edit: (wire: Record<string, any>) => void): unknown {
  const wire = structuredClone(encodeMessage(m)) as Record<string, any>;
  edit(wire);
  return wire;
}

function rejects(raw: unknown, reasonPart: RegExp): void {
  const r = decodeMessage(raw);
  assert.equal(r.ok, false, "should be rejected");
  if (!r.ok) assert.match(r.reason, reasonPart);
}

describe("peer_codec round trip", () => {
  for (const m of everyKind) {
    it(`${m.kind} survives encode/decode in memory`, () => {
      assert.deepStrictEqual(decodeMessage(encodeMessage(m)), { ok: true, value: m });
    });
  }

  it("every kind survives real protobuf bytes, in one batch, in order", () => {
    for (const to of ["a", "b", "c"]) {
      const mine = everyKind.filter((m) => m.to === to);
      const from = mine[0]?.from ?? "";
      const same = mine.filter((m) => m.from === from);
      const raw = overTheWire(encodeBatch({ clusterId: "k1", from, to }, same));
      assert.deepStrictEqual(decodeBatch(raw, { clusterId: "k1", selfId: to }), { ok: true, from, messages: same });
    }
  });

  it("decoded bytes are plain Uint8Array copies, not views of the frame", () => {
    const m = everyKind[0];
    assert.ok(m?.kind === "append");
    const raw = overTheWire(encodeBatch({ clusterId: "k1", from: "a", to: "b" }, [m]));
    const r = decodeBatch(raw, { clusterId: "k1", selfId: "b" });
    assert.ok(r.ok && r.messages[0]?.kind === "append");
    const data = r.messages[0].entries[1]?.data;
    assert.ok(data);
    assert.equal(Object.getPrototypeOf(data), Uint8Array.prototype);
    assert.equal(data.byteOffset, 0);
    assert.equal(data.buffer.byteLength, 4);
  });

  it("estimateMessageBytes bounds the real encoded size", () => {
    for (const m of everyKind) {
      const real = sendMethod.requestSerialize(encodeBatch({ clusterId: "", from: m.from, to: m.to }, [m])).length;
      assert.ok(estimateMessageBytes(m) >= real - 8, `${m.kind}: estimate ${estimateMessageBytes(m)} < ${real}`);
    }
  });
});

describe("peer_codec rejects malformed input with a reason", () => {
  const append = everyKind[0] as Message;
  const heartbeat = everyKind[4] as Message;
  const snapshot = everyKind.find((m) => m.kind === "snapshot") as Message;

  it("non-objects and missing bodies", () => {
    for (const raw of [null, undefined, 3, "x", [], { from: "a", to: "b", term: "1" }]) rejects(raw, /object|body/);
    rejects(
      mutate(heartbeat, (w) => {
        w["vote"] = { pre_vote: true };
      }),
      /2 bodies/,
    );
  });

  it("bad node ids", () => {
    rejects(
      mutate(heartbeat, (w) => {
        w["from"] = "";
      }),
      /from/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["to"] = 7;
      }),
      /to/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["to"] = w["from"];
      }),
      /equals/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["from"] = "x".repeat(65);
      }),
      /longer/,
    );
  });

  it("numbers that are not safe unsigned integers", () => {
    rejects(
      mutate(heartbeat, (w) => {
        w["term"] = "9007199254740992";
      }),
      /safe/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["term"] = "18446744073709551615";
      }),
      /safe/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["term"] = "-1";
      }),
      /safe/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["term"] = 1.5;
      }),
      /safe/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["heartbeat"].commit = { low: 1, high: 0 };
      }),
      /type object/,
    );
    rejects(
      mutate(heartbeat, (w) => {
        w["heartbeat"].read_context = "1e3";
      }),
      /safe/,
    );
  });

  it("entries that are not contiguous, out of term order, or of unknown type", () => {
    rejects(
      mutate(append, (w) => {
        w["append"].entries[1].index = "14";
      }),
      /expected 12/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].prev_index = "11";
      }),
      /expected 12/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].entries[2].term = "6";
      }),
      /out of order/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].entries[2].term = "8";
      }),
      /out of order/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].prev_term = "8";
      }),
      /prev_term/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].entries[0].type = "ENTRY_TYPE_UNSPECIFIED";
      }),
      /type is invalid/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].entries[0].type = 5;
      }),
      /type is invalid/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].entries[0].data = "abc";
      }),
      /not bytes/,
    );
    rejects(
      mutate(append, (w) => {
        w["append"].entries = {};
      }),
      /not a list/,
    );
  });

  it("snapshots without metadata, voters or a sane term", () => {
    rejects(
      mutate(snapshot, (w) => {
        delete w["snapshot"].snapshot.metadata;
      }),
      /metadata is not an object/,
    );
    rejects(
      mutate(snapshot, (w) => {
        w["snapshot"].snapshot.metadata.conf_state.voters = [];
      }),
      /no voters/,
    );
    rejects(
      mutate(snapshot, (w) => {
        w["snapshot"].snapshot.metadata.conf_state.voters = ["a", "a"];
      }),
      /duplicates/,
    );
    rejects(
      mutate(snapshot, (w) => {
        w["snapshot"].snapshot.metadata.conf_state.learners = [""];
      }),
      /learners\[0\]/,
    );
    rejects(
      mutate(snapshot, (w) => {
        w["snapshot"].snapshot.metadata.term = "8";
      }),
      /above the message term/,
    );
    rejects(
      mutate(snapshot, (w) => {
        w["snapshot"].snapshot.metadata.index = "0";
      }),
      /both be 0 \(bootstrap\) or both >= 1/,
    );
    rejects(
      mutate(snapshot, (w) => {
        w["snapshot"].snapshot.metadata.conf_state.auto_leave = "yes";
      }),
      /boolean/,
    );
  });

  it("a throwing getter is a rejection, not a crash", () => {
    const hostile = {
      from: "a",
      to: "b",
      get term(): string {
        throw new Error("boom");
      },
    };
    rejects(hostile, /boom/);
  });
});

describe("peer_codec batch checks", () => {
  const hb = everyKind[4] as Message; // a -> c
  const batch = (edit: (b: Record<string, any>) => void = () => {}): unknown => {
    const b = structuredClone(encodeBatch({ clusterId: "k1", from: "a", to: "c" }, [hb, hb])) as Record<string, any>;
    edit(b);
    return b;
  };
  const code = (raw: unknown): string => {
    const r = decodeBatch(raw, { clusterId: "k1", selfId: "c" });
    return r.ok ? "OK" : r.code;
  };

  it("accepts a well-formed batch", () => assert.equal(code(batch()), "OK"));
  it("wrong cluster or addressee is FAILED_PRECONDITION", () => {
    assert.equal(
      code(
        batch((b) => {
          b["cluster_id"] = "k2";
        }),
      ),
      "FAILED_PRECONDITION",
    );
    assert.equal(
      code(
        batch((b) => {
          b["to"] = "b";
        }),
      ),
      "FAILED_PRECONDITION",
    );
    assert.equal(
      code(
        batch((b) => {
          b["messages"][1].to = "b";
        }),
      ),
      "FAILED_PRECONDITION",
    );
  });
  it("empty, foreign-sender or undecodable messages are INVALID_ARGUMENT", () => {
    assert.equal(
      code(
        batch((b) => {
          b["messages"] = [];
        }),
      ),
      "INVALID_ARGUMENT",
    );
    assert.equal(
      code(
        batch((b) => {
          b["messages"][1].from = "b";
        }),
      ),
      "INVALID_ARGUMENT",
    );
    assert.equal(
      code(
        batch((b) => {
          b["from"] = "";
        }),
      ),
      "INVALID_ARGUMENT",
    );
    assert.equal(
      code(
        batch((b) => {
          b["messages"][1].term = "x";
        }),
      ),
      "INVALID_ARGUMENT",
    );
    assert.equal(code(null), "INVALID_ARGUMENT");
  });
});
