import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { hostPort, parseIPv4, parseIPv6 } from "../../src/address.ts";

describe("hostPort", () => {
  test("puts IPv6 addresses in brackets and leaves names and IPv4 alone", () => {
    assert.equal(hostPort("::1", 9001), "[::1]:9001");
    assert.equal(hostPort("2001:db8::1", 443), "[2001:db8::1]:443");
    assert.equal(hostPort("[::1]", 80), "[::1]:80");
    assert.equal(hostPort("127.0.0.1", 9001), "127.0.0.1:9001");
    assert.equal(hostPort("example.org", 443), "example.org:443");
  });
});

describe("parseIPv4 and parseIPv6", () => {
  test("read the usual spellings into bytes and refuse anything else", () => {
    assert.deepEqual(parseIPv4("10.0.0.5"), Uint8Array.from([10, 0, 0, 5]));
    assert.equal(parseIPv4("10.0.0"), null);
    assert.deepEqual(parseIPv6("::1"), Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
    assert.deepEqual(parseIPv6("0:0:0:0:0:0:0:1"), parseIPv6("::1"));
    assert.deepEqual(parseIPv6("::ffff:1.2.3.4")!.subarray(10), Uint8Array.from([0xff, 0xff, 1, 2, 3, 4]));
    assert.equal(parseIPv6("fe80::1%eth0"), null);
    assert.equal(parseIPv6("example.org"), null);
  });
});
