/**
 * OffLoop: the agent runs on a worker thread, from its source text, so the
 * event loop keeps turning while it blocks; it takes inputs while its own
 * work is under way; an agent that reaches outside its body fails on the
 * worker, names what it used, and from then on runs fresh on the loop.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OffLoop, type AgentTools } from "../../src/platform/off-loop.ts";
import { bounded } from "../helpers/wait.ts";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Outputs of an OffLoop, awaited one at a time. */
function collector<Output>(): { onOutput(output: Output): void; next(what: string): Promise<Output> } {
  const outputs: Output[] = [];
  const waiters: Array<(output: Output) => void> = [];
  return {
    onOutput(output) {
      const waiter = waiters.shift();
      if (waiter !== undefined) waiter(output);
      else outputs.push(output);
    },
    next(what) {
      if (outputs.length > 0) return Promise.resolve(outputs.shift()!);
      return bounded(new Promise<Output>((resolve) => waiters.push(resolve)), what, 10_000);
    },
  };
}

/** Blocks (an agent cannot await) until the path it is sent exists, for at most 5 s. */
function waitForFile(post: (answer: string) => void, tools: AgentTools): (path: string) => void {
  return (path) => {
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      if (tools.fs.existsSync(path)) {
        post("seen");
        return;
      }
    }
    post("never created");
  };
}

/** Counts steps from "start" until it is sent "stop", which only a message delivered mid-work can do. */
function countUntilStopped(post: (answer: string) => void, tools: AgentTools): (input: string) => void {
  let stopped = false;
  let steps = 0;
  const step = (): void => {
    steps += 1;
    if (stopped) post(`stopped after ${steps > 1 ? "some" : "no"} steps`);
    else if (steps >= 1_000_000) post("never stopped");
    else tools.setImmediate(step);
  };
  return (input) => {
    if (input === "start") tools.setImmediate(step);
    if (input === "stop") stopped = true;
  };
}

describe("OffLoop", () => {
  test("runs a blocking agent on a worker: the loop creates the file the agent waits for", async () => {
    const dir = await mkdtemp(join(tmpdir(), "off-loop-"));
    dirs.push(dir);
    const flag = join(dir, "flag");
    const outputs = collector<string>();
    const offLoop = new OffLoop(waitForFile, { onOutput: outputs.onOutput, onRestart: () => assert.fail("the worker died") });
    offLoop.busy = true;
    offLoop.send(flag);
    // Only possible if the agent is not holding this thread: on the loop it would answer "never created".
    setImmediate(() => void writeFile(flag, ""));
    assert.equal(await outputs.next("the agent's answer"), "seen");
    offLoop.busy = false;
    assert.equal(offLoop.offLoop, true);
    assert.ok(existsSync(flag));
  });

  test("takes inputs while its own stepped work is under way", async () => {
    const outputs = collector<string>();
    const offLoop = new OffLoop(countUntilStopped, { onOutput: outputs.onOutput, onRestart: () => assert.fail("the worker died") });
    offLoop.busy = true;
    offLoop.send("start");
    setTimeout(() => offLoop.send("stop"), 50);
    assert.equal(await outputs.next("the count"), "stopped after some steps");
    offLoop.busy = false;
    assert.equal(offLoop.offLoop, true);
  });

  test("an agent that is not self-contained fails on the worker, naming what it used, and then runs fresh on the loop", async () => {
    const secret = 7;
    const outputs = collector<number>();
    let restarts = 0;
    // Uses a variable from outside its body: fine on the loop, a ReferenceError on the worker.
    const offLoop = new OffLoop<number, number>((post) => (input) => post(input + secret), {
      onOutput: outputs.onOutput,
      onRestart: () => {
        restarts += 1;
        offLoop.send(1);
      },
    });
    offLoop.busy = true;
    offLoop.send(1);
    assert.equal(await outputs.next("the answer after the restart"), 8);
    offLoop.busy = false;
    assert.equal(restarts, 1);
    assert.equal(offLoop.offLoop, false);
    assert.match(String(offLoop.failure?.message), /secret/);
  });
});
