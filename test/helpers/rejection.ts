/**
 * The error a promise rejects with, checked to be of the expected class;
 * fails the test when the promise resolves instead.
 */
import assert from "node:assert/strict";

/**
 * @example
 * const err = await rejection(listenAll(...), TunnelError);
 * assert.equal(err.code, "PORT_IN_USE");
 */
export async function rejection<E extends Error>(promise: Promise<unknown>, kind: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof kind, `expected a ${kind.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${kind.name}, but the promise resolved`);
}
