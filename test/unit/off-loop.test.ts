/**
 * OffLoop: the job runs on a worker thread, from its source text, so the
 * event loop keeps turning while it blocks; its errors come back as
 * rejections; a job that reaches outside its body is caught by the
 * first run, not silently run elsewhere.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OffLoop } from "../../src/platform/off-loop.ts";
import { bounded } from "../helpers/wait.ts";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Blocks (no await possible in a job) until `path` exists, for at most 5 s. */
function waitForFile(path: string, filesystem: typeof import("node:fs")): string {
  const until = Date.now() + 5000;
  while (Date.now() < until) if (filesystem.existsSync(path)) return "seen";
  return "never created";
}

describe("OffLoop", () => {
  test("runs a blocking job on a worker: the loop creates the file the job waits for", async () => {
    const dir = await mkdtemp(join(tmpdir(), "off-loop-"));
    dirs.push(dir);
    const flag = join(dir, "flag");
    const offLoop = new OffLoop(waitForFile);
    const result = offLoop.run(flag);
    // Only possible if the job is not holding this thread: on the loop it would answer "never created".
    setImmediate(() => void writeFile(flag, ""));
    assert.equal(await bounded(result, "the job's answer", 10_000), "seen");
    assert.equal(offLoop.offLoop, true);
    assert.ok(existsSync(flag));
  });

  test("sends the request and returns the result by structured clone, one answer per run", async () => {
    const offLoop = new OffLoop((request: { words: string[] }) => request.words.map((word) => word.length));
    const answers = await Promise.all([offLoop.run({ words: ["a", "bb"] }), offLoop.run({ words: ["ccc"] })]);
    assert.deepEqual(answers, [[1, 2], [3]]);
  });

  test("a job that throws rejects that run with its message; the next run still works", async () => {
    const offLoop = new OffLoop((request: number) => {
      if (request < 0) throw new Error(`negative: ${request}`);
      return request * 2;
    });
    await assert.rejects(offLoop.run(-1), { message: "negative: -1" });
    assert.equal(await offLoop.run(21), 42);
    assert.equal(offLoop.offLoop, true);
  });

  test("a job that is not self-contained fails on the worker, naming what it used", async () => {
    const secret = 7;
    // Uses a variable from outside its body: fine on the loop, a ReferenceError on the worker.
    const offLoop = new OffLoop((request: number) => request + secret);
    await assert.rejects(offLoop.run(1), /secret/);
    // The worker itself is healthy, so it stays; only this job is wrong. A job must be self-contained.
    assert.equal(offLoop.offLoop, true);
  });
});
