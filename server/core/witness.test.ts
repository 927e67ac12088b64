// The witness rules of DESIGN.md §4 at the core level (W3-W6), on the in-memory test cluster.
// Site A = a, site B = b, site C = w (the witness).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NO_BUGS } from "./config.ts";
import { TestCluster } from "../../testing/kits/raft_test_cluster.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function cluster(seed = 1): TestCluster {
  return new TestCluster(["a", "b", "w"], seed, NO_BUGS, ["w"]);
}

function cut(c: TestCluster, x: string, y: string): void {
  c.cut.add(`${x}-${y}`);
  c.cut.add(`${y}-${x}`);
}

describe("witness rules", () => {
  it("W4: a full voter never grants its vote to a witness whose log is not strictly newer", () => {
    const c = cluster();
    c.node("w").campaign();
    c.stabilize();
    assert.notEqual(c.node("w").status().role, "leader");
    c.node("a").campaign();
    c.stabilize();
    assert.equal(c.node("a").status().role, "leader");
  });

  it("W5/W6: a witness leader refuses proposals and reads; nobody transfers leadership to a witness", () => {
    const c = cluster();
    c.node("a").campaign();
    c.stabilize();
    const t = c.node("a").transferLeadership("w");
    assert.equal(t.ok, false);
    if (!t.ok) assert.equal(t.reason, "witness");
  });

  it("S3: A commits with W while B lags, A dies; W leads, catches B up, hands over; B holds every entry", () => {
    const c = cluster(3);
    c.node("a").campaign();
    c.stabilize();
    cut(c, "a", "b");
    const committed: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = c.node("a").propose(bytes(`x${i}`));
      assert.ok(r.ok);
      committed.push(r.index);
    }
    c.stabilize();
    assert.ok(c.node("a").status().commit >= Math.max(...committed), "A did not commit with W");
    assert.ok(c.node("b").status().lastIndex < Math.max(...committed), "B is not lagging");
    c.isolate("a"); // site A is gone for good
    cut(c, "a", "b");
    c.cut.delete("b-w");
    c.cut.delete("w-b");
    for (let i = 0; i < 200 && c.node("b").status().role !== "leader"; i++) {
      c.tickAll(1);
      if (c.node("w").status().role === "leader") {
        assert.equal(c.node("w").propose(bytes("no")).ok, false, "a witness leader accepted a proposal");
      }
    }
    assert.ok([...c.leaderOfTerm.values()].includes("w"), "the witness never led");
    assert.equal(c.node("b").status().role, "leader");
    for (const index of committed) assert.ok(c.node("b").entryAt(index) !== undefined || c.node("b").status().firstIndex > index);
    assert.ok(c.node("b").status().lastIndex >= Math.max(...committed));
    assert.ok(c.node("b").propose(bytes("after")).ok);
  });

  it("W3: the witness truncates only up to min(commit, lowest full-member match)", () => {
    const c = cluster(5);
    c.node("a").campaign();
    c.stabilize();
    cut(c, "a", "b");
    for (let i = 0; i < 6; i++) c.node("a").propose(bytes(`y${i}`));
    c.stabilize();
    c.tickAll(3);
    const bMatch = c.node("b").status().lastIndex;
    const marker = c.node("w").compactWitnessLog();
    if (marker) assert.ok(marker.metadata.index <= bMatch, `witness truncated to ${marker.metadata.index}, B holds ${bMatch}`);
    c.heal();
    c.tickAll(5);
    const healed = c.node("w").compactWitnessLog();
    assert.ok(healed, "with both full voters current the witness log should be truncated");
    assert.ok(healed.metadata.index <= c.node("b").status().lastIndex);
    assert.equal(healed.data.length, 0, "the marker holds no state");
  });
});
