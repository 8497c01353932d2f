import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FOLD_WINDOW_MS, FoldWindow, foldedSince } from "../../src/fold-window.ts";

/** A FoldWindow on a clock the test moves. */
function foldWindow(maxKeys?: number) {
  const clock = { now: 5_000_000 };
  const window = new FoldWindow({ clock: () => clock.now, ...(maxKeys !== undefined ? { maxKeys } : {}) });
  return { window, clock };
}

describe("FoldWindow", () => {
  test("the first event of a key is full; the rest of its 10 s are folded; the next full one says how many", () => {
    const { window, clock } = foldWindow();
    assert.equal(window.admit("x11"), 0);
    clock.now += 1;
    assert.equal(window.admit("x11"), undefined);
    clock.now += FOLD_WINDOW_MS - 2;
    assert.equal(window.admit("x11"), undefined);
    clock.now += 1;
    assert.equal(window.admit("x11"), 2);
    clock.now += FOLD_WINDOW_MS;
    assert.equal(window.admit("x11"), 0);
  });

  test("keys are counted apart", () => {
    const { window } = foldWindow();
    assert.deepEqual(["a", "b", "a", "b", "c"].map((key) => window.admit(key)), [0, 0, undefined, undefined, 0]);
  });

  test("a custom window", () => {
    const clock = { now: 0 };
    const window = new FoldWindow({ clock: () => clock.now, windowMs: 100 });
    window.admit("k");
    clock.now = 99;
    assert.equal(window.admit("k"), undefined);
    clock.now = 100;
    assert.equal(window.admit("k"), 1);
  });

  test("when full, expired keys are forgotten first, then all", () => {
    const { window, clock } = foldWindow(2);
    window.admit("a");
    clock.now += FOLD_WINDOW_MS;
    window.admit("b");
    window.admit("c"); // full: "a" has expired and goes
    assert.equal(window.admit("b"), undefined, "b is still remembered");
    window.admit("d"); // full of live keys: all forgotten
    assert.equal(window.admit("b"), 0, "b was forgotten: a full line comes early");
  });
});

describe("foldedSince", () => {
  test("says how many were folded, or nothing", () => {
    assert.equal(foldedSince(3, "refused"), " (3 more refused since the last such line)");
    assert.equal(foldedSince(0, "dropped"), "");
  });
});
