import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DescriptorWatch, maxConnectionsWarning } from "../../src/forward/descriptor-watch.ts";

function rig(counts: Array<number | undefined | Error>) {
  let now = 0;
  const warnings: string[] = [];
  let asked = 0;
  const timers: Array<{ run: () => void; ms: number }> = [];
  const watch = new DescriptorWatch({
    limit: 256,
    count: async () => {
      const next = counts[asked++];
      if (next instanceof Error) throw next;
      return next;
    },
    log: { warn: (line: string) => void warnings.push(line) } as never,
    clock: () => now,
    schedule: (run, ms) => void timers.push({ run, ms }),
  });
  return { watch, warnings, timers, asked: () => asked, advance: (ms: number) => (now += ms) };
}

describe("DescriptorWatch", () => {
  test("warns once when the count comes within 16 of the limit, naming both numbers and the fix", async () => {
    const { watch, warnings } = rig([100, 240, 250]);
    assert.equal(await watch.check(), 100);
    assert.deepEqual(warnings, []);
    assert.equal(await watch.check(), 240);
    assert.equal(await watch.check(), 250);
    assert.deepEqual(warnings, [
      "240 of the 256 open files allowed (ulimit -n) are in use: at the limit the system drops new clients before safetunnel sees them. Raise the limit (ulimit -n in the shell that starts safetunnel, up to its hard limit, ulimit -Hn) or lower --max-connections.",
    ]);
  });

  test("says it again only after the count has come down below three quarters of the limit and risen again", async () => {
    const { watch, warnings } = rig([245, 200, 245, 150, 245]);
    for (let i = 0; i < 5; i++) await watch.check();
    assert.equal(warnings.length, 2);
  });

  test("accepted() counts at most once a second; connections within that second get one more count when it is over", async () => {
    const { watch, asked, advance, timers } = rig([10, 10, 10, 10]);
    watch.accepted();
    assert.equal(asked(), 1);
    await new Promise((resolve) => setImmediate(resolve));
    advance(400);
    watch.accepted();
    watch.accepted();
    assert.equal(asked(), 1);
    // One count scheduled for the end of the second, however many arrived: the last burst before the descriptors ran out is counted.
    assert.deepEqual(timers.map((timer) => timer.ms), [600]);
    advance(600);
    timers.shift()!.run();
    assert.equal(asked(), 2);
  });

  test("a count that fails for want of a descriptor (EMFILE, ENFILE) is the limit reached", async () => {
    const { watch, warnings } = rig([Object.assign(new Error("EMFILE: too many open files, scandir '/proc/self/fd'"), { code: "EMFILE" })]);
    assert.equal(await watch.check(), 256);
    assert.match(warnings[0]!, /^256 of the 256 open files allowed/);
  });

  test("a platform that cannot count (undefined, or a failed read) is asked no more", async () => {
    const unknown = rig([undefined, 250]);
    assert.equal(await unknown.watch.check(), undefined);
    unknown.advance(5000);
    unknown.watch.accepted();
    assert.equal(unknown.asked(), 1);
    const failing = rig([new Error("EACCES"), 250]);
    assert.equal(await failing.watch.check(), undefined);
    failing.advance(5000);
    failing.watch.accepted();
    assert.equal(failing.asked(), 1);
    assert.deepEqual(failing.warnings, []);
  });
});

describe("maxConnectionsWarning", () => {
  test("says when --max-connections is more than the open-file limit leaves for clients, and what fits", () => {
    assert.equal(
      maxConnectionsWarning(4000, 1024, 64),
      "--max-connections 4000 is more than the open-file limit leaves for clients (ulimit -n is 1024, less 64 for safetunnel itself): past 960 connections the system drops new clients without a word. Raise ulimit -n, or give --max-connections 960 or less.",
    );
  });

  test("is undefined when the cap fits, or when the limit is unknown", () => {
    assert.equal(maxConnectionsWarning(960, 1024, 64), undefined);
    assert.equal(maxConnectionsWarning(100000, undefined, 64), undefined);
  });
});
