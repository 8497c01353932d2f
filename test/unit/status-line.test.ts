import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatDuration, statusLine, statusSummary, RATE_WINDOW_MS } from "../../src/status/status-line.ts";
import { LiveStatus, REDRAW_MS } from "../../src/status/live-status.ts";
import { createStats, type TrafficStats } from "../../src/forward/stats.ts";

function stats(fields: Partial<TrafficStats>): TrafficStats {
  return { ...createStats(), ...fields };
}

describe("formatDuration", () => {
  test("seconds, then minutes and seconds, hours and minutes, days and hours", () => {
    assert.deepEqual([0, 999, 12_000, 60_000, 307_000, 3_600_000, 3_723_000, 86_400_000 + 4 * 3_600_000].map(formatDuration), ["0s", "0s", "12s", "1m00s", "5m07s", "1h00m", "1h02m", "1d04h"]);
  });
});

describe("statusLine", () => {
  const busy = stats({ connections: 16, active: 2, bytesUp: 1_234_000, bytesDown: 15_000_000, refusals: 1, lastRefused: "firefox", failures: 3 });

  test("up: state and time, open connections, refusals with the last program, failures, then traffic with rates over the window", () => {
    const samples = [{ at: 62_000, bytesUp: 1_114_000, bytesDown: 11_700_000 }];
    assert.equal(
      statusLine({ up: true, since: 0 }, busy, samples, 65_000, 200),
      "[up 1m05s] 2 open | 1 refused (firefox) | 3 failed | up 1.2 MB, 40.0 kB/s | down 15.0 MB, 1.1 MB/s",
    );
  });

  test("reconnecting, counted from the drop; no refusal yet says 0 refused", () => {
    assert.equal(statusLine({ up: false, since: 50_000 }, stats({}), [], 62_000, 200), "[reconnecting 12s] 0 open | 0 refused | 0 failed | up 0 B, 0 B/s | down 0 B, 0 B/s");
  });

  test("samples older than the rate window are not used; none inside it gives 0 B/s", () => {
    const old = [{ at: 0, bytesUp: 0, bytesDown: 0 }];
    assert.match(statusLine({ up: true, since: 0 }, busy, old, RATE_WINDOW_MS + 1, 200), /up 1\.2 MB, 0 B\/s \| down 15\.0 MB, 0 B\/s$/);
  });

  test("cut to one column less than the terminal, with an ellipsis, so it never wraps", () => {
    const line = statusLine({ up: true, since: 0 }, busy, [], 65_000, 40);
    assert.equal(line, "[up 1m05s] 2 open | 1 refused (firef...");
    assert.equal(line.length, 39);
  });
});

describe("statusSummary", () => {
  test("the state, open connections and the exit summary's counters, with outages when there were any", () => {
    const counters = stats({ connections: 16, active: 2, bytesUp: 1_234_000, bytesDown: 15_000_000, refusals: 1, failures: 0 });
    assert.equal(statusSummary({ up: true, since: 0 }, counters, 65_000), "Status: up for 1m05s; 2 open; 16 connections, 1.2 MB up, 15.0 MB down, 1 refused (IP address), 0 failed.");
    assert.equal(
      statusSummary({ up: false, since: 60_000 }, counters, 65_000, { outages: 2, downMs: 41_000 }),
      "Status: reconnecting for 5s; 2 open; 16 connections, 1.2 MB up, 15.0 MB down, 1 refused (IP address), 0 failed, 2 outages (41 s down).",
    );
  });
});

describe("LiveStatus on a terminal", () => {
  function rig() {
    const written: string[] = [];
    let tick: (() => void) | undefined;
    let stopped = false;
    let now = 10_000;
    const counters = stats({});
    const live = new LiveStatus(
      { write: (text) => written.push(text), columns: () => 80 },
      { stats: counters, connection: () => ({ up: true, since: 10_000 }), outages: () => undefined },
      {
        clock: () => now,
        every: (ms, next) => {
          assert.equal(ms, REDRAW_MS);
          tick = next;
          return { stop: () => (stopped = true) };
        },
      },
    );
    return { written, live, counters, tick: () => tick?.(), advance: (ms: number) => (now += ms), stopped: () => stopped };
  }

  test("draws at start and on each tick, writes log lines above the line and draws it again, and clears it when stopped", () => {
    const r = rig();
    r.live.above("before start");
    r.live.start();
    r.counters.active = 1;
    r.advance(500);
    r.tick();
    r.live.above("Warning: a line");
    r.live.afterEnter();
    r.live.stop();
    r.live.above("after stop");
    assert.deepEqual(r.written, [
      "before start\n",
      "\r\x1b[K[up 0s] 0 open | 0 refused | 0 failed | up 0 B, 0 B/s | down 0 B, 0 B/s",
      "\r\x1b[K[up 0s] 1 open | 0 refused | 0 failed | up 0 B, 0 B/s | down 0 B, 0 B/s",
      "\r\x1b[KWarning: a line\n[up 0s] 1 open | 0 refused | 0 failed | up 0 B, 0 B/s | down 0 B, 0 B/s",
      "\x1b[A\r\x1b[K",
      "\r\x1b[K",
      "after stop\n",
    ]);
    assert.equal(r.stopped(), true);
  });

  test("rates come from the draws inside the window", () => {
    const r = rig();
    r.live.start();
    r.counters.bytesDown = 2_000_000;
    r.advance(1000);
    r.tick();
    assert.match(r.written.at(-1)!, /down 2\.0 MB, 2\.0 MB\/s$/);
  });
});
