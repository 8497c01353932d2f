import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { AttemptLimiter, attemptSource } from "../../src/serve/attempt-limiter.ts";
import { TunnelError } from "../../src/errors.ts";

/** A limiter on a clock the test moves by hand. */
function limiterAt(options: ConstructorParameters<typeof AttemptLimiter>[0] = {}): { limiter: AttemptLimiter; advance: (ms: number) => void } {
  let now = 1_000_000;
  const limiter = new AttemptLimiter({ clock: () => now, ...options });
  return { limiter, advance: (ms) => (now += ms) };
}

/** The delays seen before each of `count` failed attempts. */
function delaysOver(limiter: AttemptLimiter, address: string, count: number): number[] {
  const seen: number[] = [];
  for (let i = 0; i < count; i++) {
    seen.push(limiter.delayMs(address));
    limiter.failed(address);
  }
  return seen;
}

describe("AttemptLimiter delays", () => {
  test("the first three failures are free, then the delay doubles from 1 s up to 30 s", () => {
    const { limiter } = limiterAt();
    assert.deepEqual(delaysOver(limiter, "192.0.2.1", 12), [0, 0, 0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  });

  test("the options change the free failures, the first delay and the cap", () => {
    const { limiter } = limiterAt({ freeFailures: 1, baseDelayMs: 250, maxDelayMs: 1500 });
    assert.deepEqual(delaysOver(limiter, "192.0.2.1", 6), [0, 250, 500, 1000, 1500, 1500]);
    const strict = limiterAt({ freeFailures: 0 }).limiter;
    assert.deepEqual(delaysOver(strict, "192.0.2.1", 2), [1000, 2000]);
  });

  test("asking for the delay records nothing", () => {
    const { limiter } = limiterAt();
    for (let i = 0; i < 10; i++) assert.equal(limiter.delayMs("192.0.2.1"), 0);
    assert.equal(limiter.tracked, 0);
  });

  test("a huge number of failures stays at the cap", () => {
    const { limiter } = limiterAt();
    for (let i = 0; i < 5000; i++) limiter.failed("192.0.2.1");
    assert.equal(limiter.delayMs("192.0.2.1"), 30000);
  });

  test("success forgets the address", () => {
    const { limiter } = limiterAt();
    delaysOver(limiter, "192.0.2.1", 5);
    assert.equal(limiter.delayMs("192.0.2.1"), 4000);
    limiter.succeeded("192.0.2.1");
    assert.equal(limiter.delayMs("192.0.2.1"), 0);
    assert.equal(limiter.tracked, 0);
    assert.deepEqual(delaysOver(limiter, "192.0.2.1", 4), [0, 0, 0, 1000]);
  });

  test("each address has its own count", () => {
    const { limiter } = limiterAt();
    delaysOver(limiter, "192.0.2.1", 6);
    assert.equal(limiter.delayMs("192.0.2.2"), 0);
    assert.equal(limiter.delayMs("192.0.2.1"), 8000);
  });
});

describe("AttemptLimiter forgetting", () => {
  test("an address without a failure for 10 minutes is forgotten; a millisecond sooner it is not", () => {
    const { limiter, advance } = limiterAt();
    delaysOver(limiter, "192.0.2.1", 5);
    advance(599_999);
    assert.equal(limiter.delayMs("192.0.2.1"), 4000);
    advance(1);
    assert.equal(limiter.delayMs("192.0.2.1"), 0);
    limiter.failed("192.0.2.1");
    assert.equal(limiter.delayMs("192.0.2.1"), 0, "counting starts again from one failure");
  });

  test("every failure restarts the forgetting time", () => {
    const { limiter, advance } = limiterAt({ forgetAfterMs: 1000 });
    for (let i = 0; i < 5; i++) {
      limiter.failed("192.0.2.1");
      advance(900);
    }
    assert.equal(limiter.delayMs("192.0.2.1"), 4000);
  });

  test("stale addresses are dropped when others fail, so memory does not grow with old ones", () => {
    const { limiter, advance } = limiterAt({ forgetAfterMs: 1000 });
    limiter.failed("192.0.2.1");
    limiter.failed("192.0.2.2");
    advance(1000);
    limiter.failed("192.0.2.3");
    assert.equal(limiter.tracked, 1);
  });

  test("beyond maxTracked the address idle longest is forgotten", () => {
    const { limiter, advance } = limiterAt({ maxTracked: 2, freeFailures: 1 });
    limiter.failed("192.0.2.1");
    advance(1);
    limiter.failed("192.0.2.2");
    advance(1);
    limiter.failed("192.0.2.1");
    advance(1);
    limiter.failed("192.0.2.3");
    assert.equal(limiter.tracked, 2);
    assert.equal(limiter.delayMs("192.0.2.2"), 0, "idle longest, so forgotten");
    assert.equal(limiter.delayMs("192.0.2.1"), 2000, "two failures");
    assert.equal(limiter.delayMs("192.0.2.3"), 1000, "one failure");
  });

  test("a flood of distinct addresses never holds more than maxTracked", () => {
    const { limiter } = limiterAt({ maxTracked: 100 });
    for (let i = 0; i < 1000; i++) limiter.failed(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(limiter.tracked, 100);
  });
});

describe("AttemptLimiter sources", () => {
  test("an IPv4-mapped IPv6 address counts as its IPv4 address", () => {
    const { limiter } = limiterAt();
    delaysOver(limiter, "::ffff:192.0.2.1", 2);
    delaysOver(limiter, "192.0.2.1", 2);
    assert.equal(limiter.delayMs("::ffff:192.0.2.1"), 2000);
    assert.equal(limiter.tracked, 1);
  });

  test("IPv6 addresses in one /64 share a count; another /64 has its own", () => {
    const { limiter } = limiterAt();
    for (let i = 1; i <= 5; i++) limiter.failed(`2001:db8:1:2::${i.toString(16)}`);
    assert.equal(limiter.delayMs("2001:db8:1:2:ffff:ffff:ffff:ffff"), 4000);
    assert.equal(limiter.delayMs("2001:db8:1:3::1"), 0);
    limiter.succeeded("2001:db8:1:2::99");
    assert.equal(limiter.delayMs("2001:db8:1:2::1"), 0);
  });

  test("attemptSource spells the source: IPv4, or the IPv6 /64", () => {
    assert.equal(attemptSource("192.0.2.7"), "192.0.2.7");
    assert.equal(attemptSource("::ffff:192.0.2.7"), "192.0.2.7");
    assert.equal(attemptSource("2001:DB8:1:2:AAAA::1"), "2001:db8:1:2::/64");
    assert.equal(attemptSource("[2001:db8::1]"), "2001:db8::/64");
    assert.equal(attemptSource("fe80::1%eth0"), "fe80::/64");
    assert.equal(attemptSource("::1"), "::/64");
    assert.equal(attemptSource("/run/safetunnel.sock"), "/run/safetunnel.sock");
  });
});

describe("AttemptLimiter set-up", () => {
  test("works on its own clock", () => {
    const limiter = new AttemptLimiter();
    delaysOver(limiter, "192.0.2.1", 4);
    assert.equal(limiter.delayMs("192.0.2.1"), 2000);
  });

  test("refuses nonsense options", () => {
    for (const [options, message] of [
      [{ freeFailures: -1 }, "AttemptLimiter option freeFailures must be a number of at least 0, got -1"],
      [{ maxDelayMs: Number.NaN }, "AttemptLimiter option maxDelayMs must be a number of at least 0, got NaN"],
      [{ maxTracked: 0 }, "AttemptLimiter option maxTracked must be a number of at least 1, got 0"],
    ] as const) {
      assert.throws(
        () => new AttemptLimiter(options),
        (err: unknown) => err instanceof TunnelError && err.code === "INTERNAL" && err.message === message,
      );
    }
  });
});
