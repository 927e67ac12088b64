// The Ready loop (ready_loop.ts): (1) it runs the contract of server/core/ready.ts in order,
// persist -> send -> apply -> advance -> the role's step, bounded per pass, and its test-only bugs
// really do send before persisting (sendBeforePersist) or persist the hard state after sending
// (hardStateAfterSend); (2) on a real RaftCore cluster a recorder (testing/kits DurabilityRecorder)
// checks on EVERY Ready that no message of it left while a write of it was not yet durable, and
// catches both bugs; (3) it is the ONLY Ready loop: no other file under server/, witness/,
// testing/ or tools/ takes a Ready from a core or advances one (DESIGN.md §1 "one Ready loop
// drives every role"), so a fifth copy cannot grow back unnoticed.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Message } from "../core/messages.ts";
import type { Ready } from "../core/ready.ts";
import type { Entry, Snapshot } from "../core/types.ts";
import type { StorageWrite } from "../storage/raft_storage.ts";
import { TestCluster, type TestClusterOptions } from "../../testing/kits/raft_test_cluster.ts";
import { ReadyLoop, type ReadyLoopOptions } from "./ready_loop.ts";

// ------------------------------------------------------------------ the order

const entry = (index: number): Entry => ({ term: 1, index, type: "normal", data: new Uint8Array([index]) });
const snapshotAt = (index: number): Snapshot => ({
  metadata: {
    index,
    term: 1,
    confState: { voters: ["a"], votersOutgoing: [], learners: [], learnersNext: [], witnesses: [], autoLeave: false },
  },
  data: new Uint8Array(0),
});
const heartbeat: Message = { kind: "heartbeat", from: "a", to: "b", term: 1, commit: 0, readContext: 0, witnessFloor: 0 };
/** A leader's append of entry 2 (sent before its own write when parked). */
const append: Message = {
  kind: "append",
  from: "a",
  to: "b",
  term: 1,
  prevIndex: 1,
  prevTerm: 1,
  entries: [entry(2)],
  commit: 1,
  witnessFloor: 0,
};
/** A vote refusal: leaves only after the write. */
const refusal: Message = { kind: "voteResponse", from: "a", to: "c", term: 1, reject: true } as Message;

function readyWith(n: number, parts: Partial<Ready> = {}): Ready {
  return {
    softState: null,
    hardState: { term: 1, vote: "a", commit: n },
    snapshot: null,
    entries: [entry(n)],
    committedEntries: [],
    messages: [heartbeat],
    readStates: [],
    mustSync: true,
    ...parts,
  };
}

/**
 * Records every call of the loop on its core, storage, transport and applier, in order. With
 * `heldWrites`, the storage has saveInBackground: it logs the write and holds its callback there.
 */
function recordingLoop(
  readies: Ready[],
  extra: Partial<ReadyLoopOptions> = {},
  heldWrites?: ((error: Error | null) => void)[],
): { loop: ReadyLoop; log: string[] } {
  const log: string[] = [];
  const queue = [...readies];
  let outstanding: Ready | null = null;
  const loop = new ReadyLoop({
    core: {
      hasReady: () => outstanding === null && queue.length > 0,
      ready: () => {
        const rd = queue.shift();
        assert.ok(rd && outstanding === null, "ready() with nothing to take or a Ready outstanding");
        outstanding = rd;
        log.push(`ready ${rd.hardState?.commit}`);
        return rd;
      },
      advance: (rd) => {
        assert.equal(rd, outstanding, "advance() of a Ready that is not outstanding");
        outstanding = null;
        log.push(`advance ${rd.hardState?.commit}`);
      },
    },
    storage: {
      save: (w: StorageWrite) =>
        log.push(
          `save hs=${w.hardState?.commit} entries=${w.entries.map((e) => e.index).join(",")}${w.snapshot ? ` snap=${w.snapshot.metadata.index}` : ""}`,
        ),
      saveSnapshotAndCompact: (s) => log.push(`compact ${s.metadata.index}`),
      ...(heldWrites === undefined
        ? {}
        : {
            saveInBackground: (w: StorageWrite, done: (error: Error | null) => void) => {
              log.push(`background save hs=${w.hardState?.commit} entries=${w.entries.map((e) => e.index).join(",")}`);
              heldWrites.push(done);
            },
          }),
    },
    transport: { send: (ms) => log.push(`send ${ms.length}`) },
    applier: {
      restoreSnapshot: (s) => log.push(`restore ${s.metadata.index}`),
      applyEntry: (e) => log.push(`apply ${e.index}`),
      softStateChanged: (s) => log.push(`soft ${s.role}`),
      afterAdvance: (rd, compact) => {
        log.push(`after ${rd.hardState?.commit}`);
        if (rd.committedEntries.length > 0) compact(snapshotAt(rd.committedEntries.length), null);
      },
    },
    readiesPerPassMax: 100,
    ...extra,
  });
  return { loop, log };
}

describe("ReadyLoop", () => {
  it("persists in one save, then sends, then applies, then advances, then runs the role's step", () => {
    const rd = readyWith(7, {
      softState: { role: "follower", term: 1, leader: "b" },
      snapshot: snapshotAt(3),
      committedEntries: [entry(4), entry(5)],
    });
    const { loop, log } = recordingLoop([rd]);
    assert.equal(loop.process(), 1);
    assert.deepEqual(log, [
      "ready 7",
      "save hs=7 entries=7 snap=3",
      "send 1",
      "restore 3",
      "apply 4",
      "apply 5",
      "soft follower",
      "advance 7",
      "after 7",
      "compact 2",
    ]);
  });

  it("sends nothing for a Ready without messages, and a storage throw stops the cycle before any send", () => {
    const quiet = recordingLoop([readyWith(1, { messages: [] })]);
    quiet.loop.process();
    assert.deepEqual(quiet.log, ["ready 1", "save hs=1 entries=1", "advance 1", "after 1"]);

    const { loop, log } = recordingLoop([readyWith(2)], {
      storage: {
        save: () => {
          throw new Error("disk gone");
        },
        saveSnapshotAndCompact: () => {},
      },
    });
    assert.throws(() => loop.process(), /disk gone/);
    assert.deepEqual(log, ["ready 2"], "nothing was sent, applied or advanced");
  });

  it("writes a Ready without fsync only when mustSync is false (a commit-index-only change)", () => {
    const syncs: (boolean | undefined)[] = [];
    const commitOnly = readyWith(3, { entries: [], mustSync: false });
    const { loop } = recordingLoop([readyWith(2), commitOnly], {
      storage: { save: (w: StorageWrite) => syncs.push(w.sync), saveSnapshotAndCompact: () => {} },
    });
    loop.process();
    assert.deepEqual(syncs, [true, false]);
  });

  it("a leader's appends and heartbeats leave before its own write; the write, the rest, apply and advance at the next pass", () => {
    const elected = readyWith(1, { messages: [] }); // term 1 and vote a saved: the leader's own
    const own = readyWith(2, { committedEntries: [entry(1)], messages: [append, heartbeat, refusal] });
    const { loop, log } = recordingLoop([elected, own], { leaderSendsBeforePersist: true });
    assert.equal(loop.process(), 2);
    assert.deepEqual(log.slice(4), ["ready 2", "send 2"], "appends out, nothing written, applied or advanced");
    assert.equal(loop.parked(), true);
    loop.process(); // the next pass, after the turn put the appends on the wire
    assert.deepEqual(log.slice(6), ["save hs=2 entries=2", "send 1", "apply 1", "advance 2", "after 2", "compact 1"]);
    assert.equal(loop.parked(), false);
  });

  it("finishParked() persists and advances a parked Ready at once (the node calls it before any input)", () => {
    const { loop, log } = recordingLoop([readyWith(1, { messages: [] }), readyWith(2, { hardState: null, messages: [append] })], {
      leaderSendsBeforePersist: true,
    });
    loop.process();
    loop.finishParked();
    assert.deepEqual(log.slice(4), ["ready undefined", "send 1", "save hs=undefined entries=2", "advance undefined", "after undefined"]);
    loop.finishParked(); // nothing parked: a no-op
    assert.equal(log.length, 9);
  });

  it("backgroundWrites: the parked Ready's write starts with its appends; nothing more until the storage reports it durable", () => {
    const pending: ((error: Error | null) => void)[] = [];
    let durableCalls = 0;
    const elected = readyWith(1, { messages: [] });
    const own = readyWith(2, { committedEntries: [entry(1)], messages: [append, refusal] });
    const next = readyWith(3, { messages: [] });
    const { loop, log } = recordingLoop(
      [elected, own, next],
      { leaderSendsBeforePersist: true, backgroundWrites: { onWriteDurable: () => durableCalls++ } },
      pending,
    );
    loop.process();
    assert.deepEqual(log.slice(4), ["ready 2", "send 1", "background save hs=2 entries=2"], "appends out, then the write started");
    assert.equal(loop.writing(), true);
    assert.equal(loop.process(), 0, "a pass while the write is in flight does nothing");
    assert.equal(loop.finishParked(), false);
    assert.equal(log.length, 7);
    assert.equal(durableCalls, 0);
    pending.shift()?.(null);
    assert.equal(durableCalls, 1, "the owner is told to run a pass");
    assert.equal(loop.writing(), false);
    assert.equal(loop.parked(), true, "still parked until a pass finishes it");
    assert.equal(log.length, 7, "the callback itself sends, applies and advances nothing");
    loop.process();
    assert.deepEqual(log.slice(7, 13), ["send 1", "apply 1", "advance 2", "after 2", "compact 1", "ready 3"], "no second save");
    assert.equal(log[13], "save hs=3 entries=3", "a Ready without appends is written in the pass, as before");
  });

  it("backgroundWrites: a failed background write is thrown by the pass that would finish the Ready, before anything of it leaves", () => {
    const held: ((error: Error | null) => void)[] = [];
    const { loop, log } = recordingLoop(
      [readyWith(1, { messages: [] }), readyWith(2, { messages: [append, refusal] })],
      { leaderSendsBeforePersist: true, backgroundWrites: { onWriteDurable: () => {} } },
      held,
    );
    loop.process();
    const before = log.length;
    held.shift()?.(new Error("fdatasync failed: EIO"));
    assert.throws(() => loop.process(), /EIO/);
    assert.equal(log.length, before, "the refusal was not sent, nothing applied or advanced");
  });

  it("acknowledgements, votes, a new term or vote, a snapshot: persisted before anything is sent", () => {
    const ack: Message = {
      kind: "appendResponse",
      from: "b",
      to: "a",
      term: 1,
      index: 1,
      reject: false,
      rejectHintIndex: 0,
      rejectHintTerm: 0,
    };
    const append: Message = {
      kind: "append",
      from: "a",
      to: "b",
      term: 2,
      prevIndex: 0,
      prevTerm: 0,
      entries: [entry(1)],
      commit: 0,
      witnessFloor: 0,
    };
    const cases: Ready[] = [
      readyWith(1, { hardState: null, messages: [ack] }), // a follower's write and its acknowledgement
      readyWith(1, { messages: [append] }), // term and vote never saved by this loop: unknown, so wait
      readyWith(1, { hardState: null, snapshot: snapshotAt(0), messages: [append] }),
      readyWith(1, { hardState: null, entries: [], messages: [append] }), // nothing to overlap
    ];
    for (const rd of cases) {
      const { loop, log } = recordingLoop([rd], { leaderSendsBeforePersist: true });
      loop.process();
      assert.equal(loop.parked(), false);
      assert.ok(log[1]?.startsWith("save") && log[2] === "send 1", log.join(" | "));
    }
    // A leader's Ready whose term or vote changed since the last write (a single voter electing itself).
    const elected = readyWith(1, { messages: [] });
    const newTerm = readyWith(2, { hardState: { term: 2, vote: "a", commit: 1 }, messages: [append] });
    const { loop, log } = recordingLoop([elected, newTerm], { leaderSendsBeforePersist: true });
    loop.process();
    assert.equal(loop.parked(), false);
    assert.deepEqual(log.slice(4, 7), ["ready 1", "save hs=1 entries=2", "send 1"]);
  });

  it("handles at most readiesPerPassMax Readies per pass; processOne handles one", () => {
    const { loop, log } = recordingLoop([readyWith(1), readyWith(2), readyWith(3)], { readiesPerPassMax: 2 });
    assert.equal(loop.process(), 2);
    assert.equal(loop.processOne(), true);
    assert.equal(loop.processOne(), false);
    assert.deepEqual(
      log.filter((l) => l.startsWith("ready")),
      ["ready 1", "ready 2", "ready 3"],
    );
  });

  it("the test-only bug sends first and makes the write durable only at the next pass", () => {
    const rd = readyWith(5, { committedEntries: [entry(5)] });
    const { loop, log } = recordingLoop([rd], { testOnlyBugSendBeforePersist: true });
    loop.process();
    assert.deepEqual(log, ["ready 5", "send 1", "apply 5", "advance 5", "after 5"], "nothing durable yet");
    loop.process(); // a crash before this pass would have lost what the messages promised
    assert.deepEqual(log.slice(5), ["save hs=5 entries=5", "compact 1"]);
  });

  it("the test-only hardStateAfterSend bug saves the entries, sends, then saves the hard state", () => {
    const rd = readyWith(6, { snapshot: snapshotAt(2), committedEntries: [entry(6)] });
    const { loop, log } = recordingLoop([rd], { testOnlyBugHardStateAfterSend: true });
    loop.process();
    assert.deepEqual(log, [
      "ready 6",
      "save hs=undefined entries=6 snap=2",
      "send 1",
      "save hs=6 entries=",
      "restore 2",
      "apply 6",
      "advance 6",
      "after 6",
      "compact 1",
    ]);
  });
});

// ------------------------------------------------------------------ durable before send, every Ready

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Elections, proposals, a partition and its heal, a leadership transfer, a membership change. */
function workout(options: TestClusterOptions): TestCluster {
  const c = new TestCluster(["a", "b", "c"], 3, undefined, [], options);
  c.node("a").campaign();
  c.stabilize();
  for (let i = 0; i < 5; i++) c.node("a").propose(bytes(`x${i}`));
  c.stabilize();
  c.isolate("a");
  c.tickAll(40); // b or c wins a new term; a steps down (CheckQuorum)
  const leader = c.leaders().find((id) => id !== "a");
  if (leader) for (let i = 0; i < 5; i++) c.node(leader).propose(bytes(`y${i}`));
  c.heal();
  c.tickAll(5);
  const now = c.leaders()[0];
  if (now) {
    c.node(now).transferLeadership(now === "a" ? "b" : "a");
    c.stabilize();
  }
  const last = c.leaders()[0];
  if (last) {
    c.node(last).proposeConfChange({ kind: "simple", change: { op: "addLearner", nodeId: "d", witness: false } });
    c.tickAll(3);
  }
  return c;
}

describe("ReadyLoop on a real RaftCore cluster", () => {
  it("no message of any Ready leaves while a write of that Ready is not yet durable", () => {
    const c = workout({ throwOnDurabilityViolation: false });
    assert.deepEqual(c.durabilityViolations(), []);
    const recorders = [...c.recorders.values()];
    const sum = (f: (r: (typeof recorders)[number]) => number): number => recorders.reduce((n, r) => n + f(r), 0);
    // The workout must exercise the rule, or it proves nothing.
    assert.ok(sum((r) => r.readies) > 100, `only ${sum((r) => r.readies)} Readies`);
    assert.ok(sum((r) => r.saves) > 50 && sum((r) => r.sends) > 50, "few saves or sends");
    assert.ok(new Set(c.leaderOfTerm.values()).size >= 2, "leadership never changed");
  });

  it("the recorder catches both loop bugs on the same workout", () => {
    for (const bug of ["sendBeforePersist", "hardStateAfterSend"] as const) {
      const c = workout({ throwOnDurabilityViolation: false, loopBugs: { [bug]: true } });
      const violations = c.durabilityViolations();
      assert.ok(violations.length > 0, `${bug} not caught`);
      if (bug === "hardStateAfterSend") {
        const hardStateLate = violations.every((v) => /before hard state term=\d+ vote=\w+ was durable/.test(v));
        assert.ok(hardStateLate, violations[0]);
      }
    }
  });
});

// ------------------------------------------------------------------ no second copy

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const scannedDirs = ["server", "witness", "testing", "tools"];
/** The one place allowed to take a Ready from a core and advance it. */
const loopFiles = ["server/node/ready_loop.ts"];

function sources(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return d.name === "node_modules" ? [] : sources(p);
    return d.name.endsWith(".ts") ? [p] : [];
  });
}

/**
 * Comments and string literals blanked (newlines kept), so prose and messages do not count. The
 * pattern spells quotes and backticks as \x22 \x27 \x60 so that this file scans cleanly too.
 */
const commentOrString =
  /\/\*[\s\S]*?\*\/|\/\/[^\n]*|\x60(?:\\[\s\S]|[^\x60\\])*\x60|\x22(?:\\.|[^\x22\\\n])*\x22|\x27(?:\\.|[^\x27\\\n])*\x27/g;

function code(source: string): string {
  return source.replace(commentOrString, (m) => m.replace(/[^\n]/g, " "));
}

/**
 * Call sites of a Ready cycle in one file: `x.ready()` (the only way to take a Ready from a core)
 * and `x.advance(rd)` where `rd` is declared a Ready in the file (`rd: Ready`, or assigned from
 * a `.ready()` call). A clock's `advance(600)` or `advance(TICK_MS)` is not a Ready.
 */
export function readyCallSites(source: string): string[] {
  const c = code(source);
  const line = (at: number): number => c.slice(0, at).split("\n").length;
  const hits: string[] = [];
  for (const m of c.matchAll(/\.\s*ready\s*\(\s*\)/g)) hits.push(`${line(m.index)}: takes a Ready (.ready())`);
  for (const m of c.matchAll(/\.\s*advance\s*\(\s*([A-Za-z_$][\w$]*)\s*\)/g)) {
    const name = (m[1] ?? "").replace(/\$/g, "\\$");
    const typed = new RegExp(`\\b${name}\\s*\\??\\s*:\\s*(?:Readonly<)?Ready\\b`).test(c);
    const taken = new RegExp(`\\b${name}\\s*=[^;\\n]*\\.\\s*ready\\s*\\(\\s*\\)`).test(c);
    if (typed || taken) hits.push(`${line(m.index)}: advances a Ready (.advance(${name}))`);
  }
  return hits;
}

function copies(files: readonly string[], read: (f: string) => string): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const rel = relative(repoRoot, file);
    if (loopFiles.includes(rel)) continue;
    for (const hit of readyCallSites(read(file))) problems.push(`${rel}:${hit}`);
  }
  return problems;
}

describe("one Ready loop", () => {
  it("no file but ready_loop.ts takes a Ready from a core or advances one", () => {
    const files = scannedDirs.flatMap((d) => sources(join(repoRoot, d)));
    const names = files.map((f) => relative(repoRoot, f));
    for (const user of [
      "server/node/raft_node.ts",
      "witness/witness_node.ts",
      "testing/sim/sim_node.ts",
      "testing/sim/interaction_env.ts",
    ]) {
      assert.ok(names.includes(user), `${user} not found: the scan looks in the wrong place`);
    }
    const read = (f: string): string => readFileSync(f, "utf8");
    assert.ok(readyCallSites(read(join(repoRoot, loopFiles[0] ?? ""))).length >= 2, "the rule finds nothing even in the loop itself");
    assert.deepEqual(copies(files, read), []);
  });

  it("the rule catches a copied loop, and not a clock, a comment or a message", () => {
    const fake = join(repoRoot, "witness/fake_loop.ts");
    const source = [
      "// a comment may say core.ready() and core.advance(rd)",
      'const why = "advance() with a Ready that is not the outstanding one; call .ready() first";',
      "clock.advance(TICK_MS); c.advance(600);",
      "function pass(core: RaftCore): void {",
      "  const rd = core.ready();",
      "  storage.save(rd); transport.send(rd.messages);",
      "  core.advance(rd);",
      "}",
      "function again(ready: Ready): void { this.core.advance(ready); }",
    ].join("\n");
    assert.deepEqual(
      copies([fake], () => source),
      [
        "witness/fake_loop.ts:5: takes a Ready (.ready())",
        "witness/fake_loop.ts:7: advances a Ready (.advance(rd))",
        "witness/fake_loop.ts:9: advances a Ready (.advance(ready))",
      ],
    );
  });
});
