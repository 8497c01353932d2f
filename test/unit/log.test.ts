import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, silentLogger, type Logger } from "../../src/log.ts";

const NOW = new Date("2024-05-06T07:08:09.010Z");

function capture(verbosity: number, json = false): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ verbosity, json, write: (line) => lines.push(line), now: () => NOW });
  return { log, lines };
}

/** One line at every level, in order. */
function emitAll(log: Logger): void {
  log.error("e");
  log.warn("w");
  log.info("i");
  log.debug(1, "d1");
  log.debug(2, "d2");
  log.debug(3, "d3");
}

describe("createLogger: levels by verbosity", () => {
  test("-q (verbosity -1) writes errors only", () => {
    const { log, lines } = capture(-1);
    emitAll(log);
    assert.deepEqual(lines, ["e"]);
  });

  test("the default (verbosity 0) writes errors, warnings and notices", () => {
    const { log, lines } = capture(0);
    emitAll(log);
    assert.deepEqual(lines, ["e", "Warning: w", "i"]);
  });

  test("-v (verbosity 1) adds debug1", () => {
    const { log, lines } = capture(1);
    emitAll(log);
    assert.deepEqual(lines, ["e", "Warning: w", "i", "debug1: d1"]);
  });

  test("-vvv (verbosity 3) writes everything with OpenSSH's debugN: prefixes", () => {
    const { log, lines } = capture(3);
    emitAll(log);
    assert.deepEqual(lines, ["e", "Warning: w", "i", "debug1: d1", "debug2: d2", "debug3: d3"]);
  });

  test("debugEnabled follows the verbosity", () => {
    assert.deepEqual([1, 2, 3].map((d) => capture(0).log.debugEnabled(d as 1 | 2 | 3)), [false, false, false]);
    assert.deepEqual([1, 2, 3].map((d) => capture(2).log.debugEnabled(d as 1 | 2 | 3)), [true, true, false]);
    assert.equal(capture(3).log.verbosity, 3);
  });

  test("human lines carry no fields and no timestamp", () => {
    const { log, lines } = capture(0);
    log.info("Refused SOCKS5 CONNECT", { event: "refused", destination: "1.2.3.4:80" });
    assert.deepEqual(lines, ["Refused SOCKS5 CONNECT"]);
  });

  test("silentLogger writes nothing and enables no debug output", () => {
    emitAll(silentLogger);
    assert.equal(silentLogger.debugEnabled(1), false);
  });
});

describe("createLogger: --json", () => {
  test("writes one object per line: time, level, msg, then the fields", () => {
    const { log, lines } = capture(0, true);
    log.warn("bind address ignored", { event: "gateway", port: 9001, ok: false, program: null });
    assert.deepEqual(lines, [
      '{"time":"2024-05-06T07:08:09.010Z","level":"warn","msg":"bind address ignored","event":"gateway","port":9001,"ok":false,"program":null}',
    ]);
  });

  test("uses the level names error, warn, info, debug1..3 and honours the verbosity", () => {
    const { log, lines } = capture(3, true);
    emitAll(log);
    assert.deepEqual(
      lines.map((line) => JSON.parse(line) as Record<string, unknown>),
      [
        ["error", "e"],
        ["warn", "w"],
        ["info", "i"],
        ["debug1", "d1"],
        ["debug2", "d2"],
        ["debug3", "d3"],
      ].map(([level, msg]) => ({ time: "2024-05-06T07:08:09.010Z", level, msg })),
    );
    const quiet = capture(-1, true);
    emitAll(quiet.log);
    assert.equal(quiet.lines.length, 1);
  });

  test("drops undefined fields and keeps a multi-line message on one line", () => {
    const { log, lines } = capture(0, true);
    log.error("first\nsecond", { code: "INTERNAL", detail: undefined });
    assert.deepEqual(lines, ['{"time":"2024-05-06T07:08:09.010Z","level":"error","msg":"first\\nsecond","code":"INTERNAL"}']);
    assert.equal(lines[0]!.includes("\n"), false);
  });
});
