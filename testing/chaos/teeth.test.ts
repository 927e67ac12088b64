// The chaos checks have teeth: the same harness, pointed at a server in a deliberately broken
// test mode (tenured --test-mode --test-bugs ..., never on by default), must report violations of
// the right kind. Each run is short and uses the faults that expose its bug. The out-of-model
// clock is teeth_clock.test.ts (a file of its own so the runs can go side by side).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runBroken, untilCaught } from "./teeth_kit.ts";

describe("chaos checks catch broken servers", { timeout: 240_000 }, () => {
  it("stale-local-reads: a member answering reads from its own state is not linearizable", async () => {
    const r = await untilCaught(
      [11, 111],
      (seed) =>
        runBroken({ seconds: 20, seed, bugs: ["stale-local-reads"], faults: ["partition", "one-way", "pause", "delay"], readers: 4 }),
      (v) => v.includes("not linearizable"),
    );
    assert.ok(r.caught, `no stale read caught:\n${r.log}`);
  });

  it("read-before-applied with a slow state machine: a lagging new leader answers from its old state, not linearizable", async () => {
    // --test-apply-delay-ms 10: a killed member replays its log slowly after its restart; once it
    // leads, the bug answers confirmed reads before it applied them. Seed 8 was caught in each of
    // its 40 s runs (the stale read 10 to 25 s in), seeds 6 and 7 too (testing/chaos/README.md).
    const r = await untilCaught(
      [8, 6],
      (seed) =>
        runBroken({
          seconds: 40,
          seed,
          bugs: ["read-before-applied"],
          applyDelayMs: 10,
          faults: ["kill", "pause", "partition"],
          readers: 8,
        }),
      (v) => v.includes("not linearizable"),
    );
    assert.ok(r.caught, `no stale read caught:\n${r.log}`);
  });

  it("grant-without-lease-check: a grant on a revoked lease is reported", async () => {
    // 15 s, not 8: at load 12 one 8 s run reported no dead-lease grant (passes when quiet). The
    // ghost holder a dead-lease grant makes has no owner, so the prober may release it (state's
    // checkHolder allows it only under this switch) and the cluster keeps running.
    const r = await untilCaught(
      [12, 112],
      (seed) => runBroken({ seconds: 15, seed, bugs: ["grant-without-lease-check"], faults: ["delay"] }),
      (v) => v.includes("on a lease whose revoke was acknowledged"),
    );
    assert.ok(r.caught, `no dead-lease grant caught:\n${r.log}`);
  });
});
