import { test } from "node:test";
import assert from "node:assert/strict";
import { checkLinearizability } from "./linearizability.ts";
import { checkInvariants } from "./invariants.ts";
import { acq, gw, read, rel, val } from "./testkit.ts";

test("sequential lock life cycle with guard writes is linearizable", () => {
  const h = [
    acq(1, "a", 0, 10, 5),
    gw(2, "r", 5, 11, 20, "accepted"),
    val(3, "a", 5, 21, 25, true),
    read(4, "a", 26, 30, 5),
    rel(5, "a", 5, 31, 40, true),
    read(6, "a", 41, 45, null),
    acq(7, "a", 46, 50, 9),
    gw(8, "r", 4, 51, 60, "stale"),
    gw(9, "r", 9, 61, 70, "accepted"),
  ];
  const r = checkLinearizability(h);
  assert.equal(r.verdict, "ok", r.explanation);
  assert.deepEqual(checkInvariants(h, { holders: { a: 9 }, store: { r: { token: 9 } } }), []);
});

test("concurrent acquires may be granted in either order; expiry explains a grant while held", () => {
  const h = [acq(1, "a", 0, 20, 7), acq(2, "a", 5, 15, 6), read(3, "a", 21, 22, 7)];
  assert.equal(checkLinearizability(h).verdict, "ok");
  // acquire 2 granted while 1 still held: the checker inserts the lease expiry of token 3
  const h2 = [acq(1, "a", 0, 1, 3), acq(2, "a", 10, 11, 4), val(3, "a", 3, 12, 13, false)];
  assert.equal(checkLinearizability(h2).verdict, "ok");
});

test("a read-holder returning a token older than a completed grant fails, naming the operations", () => {
  const h = [acq(1, "a", 0, 10, 1), rel(2, "a", 1, 11, 12, true), acq(3, "a", 13, 20, 2), read(4, "a", 21, 25, 1)];
  const r = checkLinearizability(h);
  assert.equal(r.verdict, "illegal");
  assert.match(r.explanation, /lock:a/);
  assert.match(r.explanation, /op 4 \[c4\] read-holder\(a\) -> \{"token":1\}/);
  assert.match(r.explanation, /holder=2|holder=none/);
});

test("a stale read served by a follower (old holder after a newer grant completed) fails", () => {
  const h = [acq(1, "a", 0, 5, 10), acq(2, "a", 20, 25, 11), read(3, "a", 30, 31, 10)];
  const r = checkLinearizability(h);
  assert.equal(r.verdict, "illegal");
  assert.match(r.explanation, /op 3/);
  // validate says the old token is still current: also stale
  const h2 = [acq(1, "a", 0, 5, 10), acq(2, "a", 20, 25, 11), val(3, "a", 10, 30, 31, true)];
  assert.equal(checkLinearizability(h2).verdict, "illegal");
});

test("two acquires returning the same token fail both checkers", () => {
  const h = [acq(1, "a", 0, 10, 4), acq(2, "a", 5, 15, 4)];
  assert.equal(checkLinearizability(h).verdict, "illegal");
  const v = checkInvariants(h);
  assert.ok(v.some((x) => x.invariant === "token-duplicate" && /op 1/.test(x.message) && /op 2/.test(x.message)));
});

test("tokens must increase in acknowledged order", () => {
  const h = [acq(1, "a", 0, 10, 8), rel(2, "a", 8, 11, 12, true), acq(3, "a", 20, 30, 7)];
  assert.equal(checkLinearizability(h).verdict, "illegal");
  const v = checkInvariants(h);
  assert.equal(v.length, 1);
  assert.equal(v[0]?.invariant, "token-order");
  assert.match(v[0]?.message ?? "", /op 1 .* op 3/);
});

test("a release naming a non-current token cannot succeed", () => {
  const h = [acq(1, "a", 0, 10, 8), acq(2, "a", 11, 12, 9), rel(3, "a", 8, 13, 14, true)];
  assert.equal(checkLinearizability(h).verdict, "illegal");
});

test("a guard accepting a lower token after a higher one completed fails", () => {
  const h = [gw(1, "r", 9, 0, 10, "accepted"), gw(2, "r", 7, 20, 30, "accepted")];
  const r = checkLinearizability(h);
  assert.equal(r.verdict, "illegal");
  assert.match(r.explanation, /resource:r/);
  assert.match(r.explanation, /op 2/);
  const v = checkInvariants(h);
  assert.equal(v[0]?.invariant, "guard-stale-accepted");
  // concurrent: the lower one may have been applied first
  assert.equal(checkLinearizability([gw(1, "r", 9, 0, 10, "accepted"), gw(2, "r", 7, 5, 30, "accepted")]).verdict, "ok");
  // a stale answer with no higher accepted write is also wrong
  assert.equal(checkLinearizability([gw(1, "r", 3, 0, 10, "stale")]).verdict, "illegal");
});

test("ambiguous acquire: taking effect or not are both accepted", () => {
  // took effect: its token 6 is later read, though no successful acquire returned it
  const took = [acq(1, "a", 0, 10, "amb"), read(2, "a", 20, 21, 6), acq(3, "a", 30, 31, 7)];
  assert.equal(checkLinearizability(took).verdict, "ok");
  // never returned, no effect seen
  const none = [acq(1, "a", 0, 10, "never"), read(2, "a", 20, 21, null), acq(3, "a", 30, 31, 7)];
  assert.equal(checkLinearizability(none).verdict, "ok");
  // it cannot explain a token below one already granted and completed
  const bad = [acq(1, "a", 0, 5, 9), acq(2, "a", 6, 10, "amb"), read(3, "a", 20, 21, 6)];
  assert.equal(checkLinearizability(bad).verdict, "illegal");
  // nor take effect before it was invoked
  const early = [read(1, "a", 0, 5, 6), acq(2, "a", 10, 20, "amb")];
  assert.equal(checkLinearizability(early).verdict, "illegal");
});

test("ambiguous guard write: later stale or later accepted lower write both pass; failed writes are dropped", () => {
  const base = gw(1, "r", 5, 0, 10, "amb");
  assert.equal(checkLinearizability([base, gw(2, "r", 3, 20, 30, "stale")]).verdict, "ok");
  assert.equal(checkLinearizability([base, gw(2, "r", 3, 20, 30, "accepted")]).verdict, "ok");
  // a definitely failed write had no effect, so it cannot explain a stale answer
  assert.equal(checkLinearizability([gw(1, "r", 5, 0, 10, "fail"), gw(2, "r", 3, 20, 30, "stale")]).verdict, "illegal");
});

test("final state: store must hold the last accepted write; acknowledged grants must not be lost", () => {
  const h = [acq(1, "a", 0, 10, 4), gw(2, "r", 4, 11, 20, "accepted", "x"), gw(3, "r", 2, 21, 30, "stale", "y")];
  assert.deepEqual(checkInvariants(h, { holders: { a: 4 }, store: { r: { token: 4, value: "x" } } }), []);
  const v1 = checkInvariants(h, { store: { r: { token: 2, value: "y" } } });
  assert.equal(v1[0]?.invariant, "final-store");
  assert.equal(checkInvariants(h, { store: { r: null } })[0]?.invariant, "final-store");
  const v2 = checkInvariants(h, { holders: { a: null } });
  assert.equal(v2[0]?.invariant, "grant-lost");
  assert.match(v2[0]?.message ?? "", /op 1/);
  assert.deepEqual(checkInvariants(h, { holders: { a: null }, expired: [{ name: "a", token: 4 }] }), []);
  assert.equal(
    checkInvariants(h, { holders: { a: 3 } }).some((x) => x.invariant === "grant-lost"),
    true,
  );
});

test("expiry recorded (the lock simulation's log): nothing frees a lock but a release", () => {
  const recorded = { lockExpiry: "recorded" as const };
  // A grant while held needs the internal expiry step: legal by default, illegal when every expiry is in the history.
  const held = [acq(1, "a", 0, 1, 3), acq(2, "a", 10, 11, 4)];
  assert.equal(checkLinearizability(held).verdict, "ok");
  assert.equal(checkLinearizability(held, recorded).verdict, "illegal");
  // A stale read of a free lock after a grant completed: explained by expiry by default, caught when recorded.
  const staleFree = [acq(1, "a", 0, 5, 10), read(2, "a", 10, 12, null)];
  assert.equal(checkLinearizability(staleFree).verdict, "ok");
  assert.equal(checkLinearizability(staleFree, recorded).verdict, "illegal");
  // ValidateToken may answer false for the holder (its lease lapsed, the expiry not yet applied):
  // the holder stays the holder, and a Status after it still shows it (legal in both modes).
  const lapsed = [acq(1, "a", 0, 5, 10), val(2, "a", 10, 10, 12, false), read(3, "a", 13, 14, 10)];
  assert.equal(checkLinearizability(lapsed).verdict, "ok");
  assert.equal(checkLinearizability(lapsed, recorded).verdict, "ok");
  // A release, revoke or expiry recorded as a release frees it; a later grant then follows.
  const cycle = [
    acq(1, "a", 0, 0, 10),
    rel(2, "a", 10, 5, 5, true),
    read(3, "a", 6, 7, null),
    acq(4, "a", 8, 8, 11),
    val(5, "a", 11, 9, 9, true),
  ];
  assert.equal(checkLinearizability(cycle, recorded).verdict, "ok");
});
