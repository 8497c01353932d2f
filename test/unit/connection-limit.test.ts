import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConnectionLimit, type Closable } from "../../src/forward/connection-limit.ts";
import { createLogger } from "../../src/log.ts";

function conn(name: string, closed: string[]): Closable {
  return { destroy: () => closed.push(name) };
}

function recorder(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ verbosity: 0, write: (line) => lines.push(line) }) };
}

describe("the connection cap", () => {
  test("at the cap the oldest handshake is closed for a new connection; established ones are kept", () => {
    const closed: string[] = [];
    const { lines, log } = recorder();
    let now = 0;
    const limit = new ConnectionLimit({ max: 3, log, clock: () => now });
    const [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map((name) => conn(name, closed)) as [Closable, Closable, Closable, Closable, Closable];
    assert.ok(limit.admit(a));
    assert.ok(limit.admit(b));
    assert.ok(limit.admit(c));
    limit.established(a);
    assert.ok(limit.admit(d));
    assert.deepEqual(closed, ["b"]);
    assert.ok(limit.admit(e));
    assert.deepEqual(closed, ["b", "c"]);
    assert.equal(limit.size, 3);
    assert.deepEqual(lines, ["Warning: 3 connections are open (--max-connections); the oldest one still in its handshake was closed to let a new one in."]);
    now = 10_000;
    limit.release(d);
    assert.ok(limit.admit(conn("f", closed)));
    assert.ok(limit.admit(conn("g", closed)));
    assert.deepEqual(closed, ["b", "c", "e"]);
    assert.equal(lines[1], "Warning: 3 connections are open (--max-connections); the oldest one still in its handshake was closed to let a new one in. (1 more closed since the last such line)");
  });

  test("when every connection is established, the new one is turned away", () => {
    const closed: string[] = [];
    const { lines, log } = recorder();
    const limit = new ConnectionLimit({ max: 2, log });
    const a = conn("a", closed);
    const b = conn("b", closed);
    limit.admit(a);
    limit.admit(b);
    limit.established(a);
    limit.established(b);
    assert.equal(limit.admit(conn("c", closed)), false);
    assert.deepEqual(closed, ["c"]);
    assert.match(lines[0]!, /^Warning: 2 connections are open \(--max-connections\), all of them in use; a new one was turned away\. Raise --max-connections/);
    limit.release(a);
    assert.ok(limit.admit(conn("d", closed)));
  });
});

describe("the default cap and the open-file limit", () => {
  test("stays below the soft limit, with descriptors to spare", async () => {
    const { defaultMaxConnections, openFileLimits } = await import("../../src/forward/connection-limit.ts");
    assert.equal(defaultMaxConnections(undefined), 1024);
    assert.equal(defaultMaxConnections(1_048_576), 1024);
    assert.equal(defaultMaxConnections(1024), 960);
    assert.equal(defaultMaxConnections(50), 16);
    assert.deepEqual(openFileLimits("Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n"), { soft: 1024, hard: 524288 });
    assert.deepEqual(openFileLimits("Max open files            unlimited            unlimited            files\n"), { soft: undefined, hard: undefined });
    assert.deepEqual(openFileLimits(""), { soft: undefined, hard: undefined });
  });
});
