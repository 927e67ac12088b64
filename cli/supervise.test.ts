// The lock-run supervisor on real child processes, with a validity the test controls: the child
// is signalled from the validity alone (SIGTERM, then SIGKILL), always before the validity ends.

import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { describe, it } from "node:test";
import { superviseChild, type SuperviseOptions } from "./supervise.ts";

type Event = { event: string; atMs: number; fields: Readonly<Record<string, unknown>> };

function options(over: Partial<SuperviseOptions> & { command: string; args: string[] }, events: Event[]): SuperviseOptions {
  return {
    env: process.env,
    validity: { validUntilMs: () => Number.POSITIVE_INFINITY, lost: new AbortController().signal },
    killGraceMs: 200,
    killMarginMs: 100,
    clock: () => performance.now(),
    pollMs: 10,
    interrupted: new AbortController().signal,
    onEvent: (event, fields) => events.push({ event, atMs: performance.now(), fields }),
    ...over,
  };
}

const at = (events: Event[], name: string): number => events.find((e) => e.event === name)?.atMs ?? Number.NaN;

describe("lock -- cmd supervisor", () => {
  it("passes the environment and exits with the child's own status when the validity holds", async () => {
    const events: Event[] = [];
    const o = await superviseChild(
      options(
        { command: "sh", args: ["-c", 'test "$TENURE_FENCING_TOKEN" = 42 && exit 7'], env: { ...process.env, TENURE_FENCING_TOKEN: "42" } },
        events,
      ),
    );
    assert.deepEqual([o.code, o.signal, o.stoppedFor, o.status], [7, null, null, 7]);
    assert.ok(!events.some((e) => e.event === "child-sigterm"));
  });

  it("keeps a child whose validity renewals move forward", async () => {
    const events: Event[] = [];
    const start = performance.now();
    // Renewed continuously: always 400 ms ahead, never within grace + margin (300 ms) of its end.
    const o = await superviseChild(
      options(
        { command: "sleep", args: ["0.6"], validity: { validUntilMs: () => performance.now() + 400, lost: new AbortController().signal } },
        events,
      ),
    );
    assert.equal(o.status, 0);
    assert.equal(o.stoppedFor, null);
    assert.ok(performance.now() - start >= 550);
  });

  it("SIGTERMs the child grace + margin before an unrenewed validity ends (sleep dies: 128 + 15)", async () => {
    const events: Event[] = [];
    const validUntil = performance.now() + 600;
    const o = await superviseChild(
      options({ command: "sleep", args: ["60"], validity: { validUntilMs: () => validUntil, lost: new AbortController().signal } }, events),
    );
    assert.equal(o.signal, "SIGTERM");
    assert.equal(o.status, 143);
    assert.equal(o.stoppedFor, "validity");
    const term = at(events, "child-sigterm");
    assert.ok(term >= validUntil - 300 - 1, `SIGTERM ${(validUntil - term).toFixed(0)} ms before the end, not earlier than 300`);
    assert.ok(at(events, "child-exited") < validUntil, "the child is gone before the validity ends");
    assert.ok(!events.some((e) => e.event === "child-sigkill"));
  });

  it("SIGKILLs a child that ignores SIGTERM after the grace, still before the validity ends (128 + 9)", async () => {
    const events: Event[] = [];
    const validUntil = performance.now() + 700;
    const o = await superviseChild(
      options(
        {
          command: "sh",
          args: ["-c", "trap '' TERM; sleep 60; sleep 60"],
          validity: { validUntilMs: () => validUntil, lost: new AbortController().signal },
        },
        events,
      ),
    );
    assert.equal(o.signal, "SIGKILL");
    assert.equal(o.status, 137);
    const term = at(events, "child-sigterm");
    const kill = at(events, "child-sigkill");
    assert.ok(kill - term >= 190, `SIGKILL ${(kill - term).toFixed(0)} ms after SIGTERM (grace 200)`);
    assert.ok(kill <= validUntil - 100 + 15, `SIGKILL ${(validUntil - kill).toFixed(0)} ms before the end (margin 100, poll 10)`);
    assert.ok(at(events, "child-exited") < validUntil, "dead before the validity ends");
  });

  it("SIGKILLs at once when the lock is lost, and stops the child when tenurectl is interrupted", async () => {
    const lost = new AbortController();
    const events: Event[] = [];
    const running = superviseChild(
      options({ command: "sleep", args: ["60"], validity: { validUntilMs: () => performance.now() + 10_000, lost: lost.signal } }, events),
    );
    await new Promise((r) => setTimeout(r, 100));
    lost.abort();
    const o = await running;
    assert.equal(o.stoppedFor, "lost");
    assert.equal(o.signal, "SIGKILL");

    const stop = new AbortController();
    const e2: Event[] = [];
    const r2 = superviseChild(options({ command: "sleep", args: ["60"], interrupted: stop.signal }, e2));
    await new Promise((r) => setTimeout(r, 100));
    stop.abort();
    const o2 = await r2;
    assert.equal(o2.stoppedFor, "interrupted");
    assert.equal(o2.status, 143);
  });

  it("reports a command that cannot start as 127", async () => {
    const o = await superviseChild(options({ command: "/nonexistent/tenurectl-test", args: [] }, []));
    assert.equal(o.status, 127);
  });
});
