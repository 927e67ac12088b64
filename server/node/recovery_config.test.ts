// The core's recovery lines reach the process log, and the store's finding becomes
// RaftConfig.recovery: a core started with it rejects a vote and says so.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bootstrapState } from "../core/bootstrap.ts";
import { makeRaftConfig } from "../core/config.ts";
import { SeededRandom } from "../core/random.ts";
import { RaftCore } from "../core/raft.ts";
import { configWithRecovery } from "./recovery_config.ts";

describe("configWithRecovery", () => {
  it("starts the core in recovery and logs its recovery lines only", () => {
    const logged: Record<string, unknown>[] = [];
    const base = makeRaftConfig({ id: "c", random: new SeededRandom(1) });
    const core = new RaftCore(
      configWithRecovery(base, { untilIndex: 9 }, (f) => logged.push(f)),
      bootstrapState(["a", "b", "c"]),
    );
    assert.equal(core.recovering(), true);
    core.step({ kind: "vote", from: "b", to: "c", term: 1, preVote: true, transfer: false, lastIndex: 9, lastTerm: 1 });
    assert.deepEqual(
      logged.map((f) => f["line"]),
      [
        "c starts recovering untilIndex=9 lastIndex=0: no vote, no campaign, not counted in commits until caught up",
        "c rejects pre-vote from b at term 1: recovering untilIndex=9",
      ],
    );
    assert.ok(logged.every((f) => f["component"] === "raft" && f["event"] === "recovery"));
  });

  it("without a finding: a normal core, nothing logged", () => {
    const logged: Record<string, unknown>[] = [];
    const base = makeRaftConfig({ id: "c", random: new SeededRandom(1) });
    const core = new RaftCore(
      configWithRecovery(base, null, (f) => logged.push(f)),
      bootstrapState(["a", "b", "c"]),
    );
    core.campaign();
    assert.equal(core.recovering(), false);
    assert.deepEqual(logged, []);
  });
});
