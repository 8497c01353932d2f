/**
 * Bounded waits that fail the test, naming what did not happen, instead of
 * hanging it: poll a condition, or give a promise a deadline.
 */
import assert from "node:assert/strict";
import { delay, within } from "./child.ts";

/**
 * Poll `condition` every 50 ms for up to 10 s; then fail with
 * "timed out waiting for <what>" and, when `describeState` says anything, what it says.
 *
 * @example
 * await waitFor(() => echo.connections === 1, "the echo target's connection", () => cli.stderr());
 */
export async function waitFor(condition: () => boolean, what: string, describeState: () => string = () => ""): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await delay(50);
  }
  const state = describeState();
  assert.fail(`timed out waiting for ${what}${state === "" ? "" : `; ${state}`}`);
}

/**
 * The promise's value, or a failure naming `what` when it has not settled
 * within `ms`; a rejection passes through unchanged.
 *
 * @example
 * const status = await bounded(cli.exited, "safetunnel to exit after SIGTERM", 30_000);
 */
export async function bounded<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  const value = await within(promise.then((v) => ({ v })), ms);
  if (value === undefined) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
  return value.v;
}
