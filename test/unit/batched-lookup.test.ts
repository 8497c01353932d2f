import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as nextTurn } from "node:timers/promises";
import { BatchedLookup } from "../../src/platform/batched-lookup.ts";

/** A pass the test ends by hand, recording which keys each pass was given. */
function manualPasses(table: Record<string, number>) {
  const passes: string[][] = [];
  const ends: Array<() => void> = [];
  let running = 0;
  let mostAtOnce = 0;
  const lookup = new BatchedLookup<string, number>(async (wanted, found) => {
    passes.push([...wanted].sort());
    running++;
    mostAtOnce = Math.max(mostAtOnce, running);
    await new Promise<void>((resolve) => ends.push(resolve));
    for (const key of [...wanted]) if (key in table) found(key, table[key]!);
    running--;
  });
  return { lookup, passes, ends, mostAtOnce: () => mostAtOnce };
}

describe("BatchedLookup", () => {
  test("keys asked for during a pass wait for the next one, which answers them all together", async () => {
    const { lookup, passes, ends, mostAtOnce } = manualPasses({ a: 1, b: 2, c: 3 });
    const a = lookup.find("a");
    await nextTurn();
    const b = lookup.find("b");
    const c = lookup.find("c");
    const again = lookup.find("b");
    assert.deepEqual(passes, [["a"]], "b and c do not join the pass under way");
    ends.shift()!();
    assert.equal(await a, 1);
    await nextTurn();
    assert.deepEqual(passes, [["a"], ["b", "c"]]);
    ends.shift()!();
    assert.deepEqual(await Promise.all([b, c, again]), [2, 3, 2]);
    assert.equal(mostAtOnce(), 1, "one pass at a time");
  });

  test("a key the pass does not find is answered undefined, and later keys still get passes", async () => {
    const { lookup, ends } = manualPasses({ a: 1 });
    const missing = lookup.find("zzz");
    await nextTurn();
    ends.shift()!();
    assert.equal(await missing, undefined);
    const a = lookup.find("a");
    await nextTurn();
    ends.shift()!();
    assert.equal(await a, 1);
  });

  test("a key found early is answered before its pass ends; the pass can see what is still wanted", async () => {
    let wantedAfterFirst = -1;
    let finish!: () => void;
    const lookup = new BatchedLookup<string, string>(async (wanted, found) => {
      found("a", "A");
      wantedAfterFirst = wanted.size;
      await new Promise<void>((resolve) => (finish = resolve));
      found("b", "B");
    });
    const a = lookup.find("a");
    const b = lookup.find("b");
    assert.equal(await a, "A");
    assert.equal(wantedAfterFirst, 1);
    finish();
    assert.equal(await b, "B");
  });

  test("a pass that throws answers its keys undefined and the next pass still runs", async () => {
    let calls = 0;
    const lookup = new BatchedLookup<string, string>(async (_wanted, found) => {
      calls++;
      if (calls === 1) throw new Error("EACCES");
      found("a", "A");
    });
    assert.equal(await lookup.find("a"), undefined);
    assert.equal(await lookup.find("a"), "A");
  });

  test("a value found for a key nobody asked for is ignored", async () => {
    const lookup = new BatchedLookup<string, string>(async (_wanted, found) => {
      found("other", "X");
      found("a", "A");
      found("a", "second answer");
    });
    assert.equal(await lookup.find("a"), "A");
  });
});
