import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { within } from "../../src/deadline.ts";

describe("within", () => {
  test("gives the promise's value when it settles in time", async () => {
    assert.equal(await within(Promise.resolve("curl"), 1000), "curl");
    assert.equal(await within(new Promise((resolve) => setTimeout(() => resolve(7), 5)), 1000), 7);
  });

  test("gives undefined, never a rejection, when the promise rejects", async () => {
    assert.equal(await within(Promise.reject(new Error("EACCES")), 1000), undefined);
  });

  test("gives undefined after `ms` when the promise is still pending, and ignores its later answer", async () => {
    let settle: ((value: string) => void) | undefined;
    const pending = new Promise<string>((resolve) => (settle = resolve));
    const started = Date.now();
    assert.equal(await within(pending, 20), undefined);
    assert.ok(Date.now() - started >= 15, "waited about 20 ms");
    settle!("late");
    assert.equal(await pending, "late");
  });

  test("answers even when its timer is the only thing keeping the process alive", async () => {
    // A lookup that never settles and holds no handle: the wait must still end.
    assert.equal(await within(new Promise(() => {}), 10), undefined);
  });
});
