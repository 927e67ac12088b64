// lockStatus().state is a typed LockState, not the wire's enum name.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lockStateOf } from "./client.ts";
import { TenureError } from "./errors.ts";

describe("lock states", () => {
  it("maps every MutexState the server sends", () => {
    assert.equal(lockStateOf("MUTEX_STATE_FREE"), "free");
    assert.equal(lockStateOf("MUTEX_STATE_HELD"), "held");
    assert.equal(lockStateOf("MUTEX_STATE_DELAYED"), "delayed");
  });

  it("an unknown state is an INTERNAL error naming it, not a guess", () => {
    assert.throws(
      () => lockStateOf("MUTEX_STATE_MELTED"),
      (e: unknown) => e instanceof TenureError && e.code === "INTERNAL" && /MUTEX_STATE_MELTED/.test(e.message),
    );
  });
});
