// The chaos checks have teeth, out of the model: every server clock running twice as fast as rho
// allows must show two holders believing at once, while the guard still fences every stale write.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runBroken, untilCaught } from "./teeth_kit.ts";

describe("chaos checks catch clocks beyond rho", { timeout: 240_000 }, () => {
  it("server clocks twice as fast as rho allows: two holders believe at once (the guard still fences)", async () => {
    // The overlap needs a pause that starts right after the client process was granted a lock:
    // wait for that grant up to 10 s (on a loaded machine the default 3 s often passes first).
    // A second and third seed only run when the first draw missed (untilCaught).
    const r = await untilCaught(
      [13, 14, 15],
      (seed) => runBroken({ seconds: 20, seed, clockRateOutOfModel: 2, faults: ["client-pause"], clientPauseGrantWaitMs: 10_000 }),
      (v) => v.includes("still believed it held"),
    );
    assert.ok(r.caught, `no overlap caught:\n${r.log}`);
    assert.ok(
      !r.run.violations.some((v) => v.startsWith("guard ") || v.startsWith("resource:")),
      `the guard accepted a stale write:\n${r.log}`,
    );
  });
});
