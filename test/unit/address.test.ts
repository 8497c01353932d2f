import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { formatAddress, hostPort, isLoopbackAddress, parseIPv4, parseIPv6, parsePortNumber, unbracket } from "../../src/address.ts";

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

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

describe("formatAddress", () => {
  test("writes IPv4 dotted", () => {
    assert.equal(formatAddress(bytes(192, 0, 2, 1)), "192.0.2.1");
  });

  test("compresses the longest zero run in IPv6 (RFC 5952 section 4.2.1)", () => {
    assert.equal(formatAddress(parseIPv6("::1")!), "::1");
    assert.equal(formatAddress(new Uint8Array(16)), "::");
    assert.equal(formatAddress(parseIPv6("2001:db8:0:0:0:0:2:1")!), "2001:db8::2:1");
    assert.equal(formatAddress(parseIPv6("2001:db8:0:0:1:0:0:1")!), "2001:db8::1:0:0:1");
    assert.equal(formatAddress(parseIPv6("1:0:0:0:0:0:0:0")!), "1::");
  });

  test("does not compress a single zero group (RFC 5952 section 4.2.2)", () => {
    assert.equal(formatAddress(parseIPv6("2001:db8:0:1:1:1:1:1")!), "2001:db8:0:1:1:1:1:1");
  });

  test("writes hex in lower case without leading zeros (RFC 5952 sections 4.1 and 4.3)", () => {
    assert.equal(formatAddress(parseIPv6("2001:0DB8:00AB:0000:0000:0000:0000:000F")!), "2001:db8:ab::f");
  });

  test("writes IPv4-mapped addresses in mixed notation (RFC 5952 section 5)", () => {
    assert.equal(formatAddress(parseIPv6("::ffff:c000:0201")!), "::ffff:192.0.2.1");
  });

  test("refuses byte strings that are not 4 or 16 long", () => {
    assert.throws(() => formatAddress(bytes(1, 2, 3)), {
      code: "INTERNAL",
      message: "formatAddress needs 4 or 16 bytes, got 3",
    });
  });
});

describe("unbracket", () => {
  test("strips the brackets of an IPv6 host and nothing else", () => {
    assert.equal(unbracket("[::1]"), "::1");
    assert.equal(unbracket("[2001:db8::1]"), "2001:db8::1");
    assert.equal(unbracket("::1"), "::1");
    assert.equal(unbracket("example.org"), "example.org");
    assert.equal(unbracket("[::1"), "[::1");
    assert.equal(unbracket("[]"), "");
  });
});

describe("isLoopbackAddress", () => {
  test("is true for 127.0.0.0/8, ::1 and IPv4-mapped loopback", () => {
    for (const address of ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
      assert.equal(isLoopbackAddress(address), true, address);
    }
  });

  test("is false for other addresses and for names, localhost included", () => {
    for (const address of ["128.0.0.1", "10.0.0.1", "::", "::2", "::ffff:10.0.0.1", "localhost", "127.0.0.1.example", "", "0.0.0.0"]) {
      assert.equal(isLoopbackAddress(address), false, address);
    }
  });
});

describe("parsePortNumber", () => {
  test("takes decimal ports from 1 (or 0 when allowed) to 65535", () => {
    assert.equal(parsePortNumber("22"), 22);
    assert.equal(parsePortNumber("65535"), 65535);
    assert.equal(parsePortNumber("0"), undefined);
    assert.equal(parsePortNumber("0", 0), 0);
    assert.equal(parsePortNumber("007"), 7);
  });

  test("refuses names, signs, blanks and out-of-range numbers", () => {
    for (const text of ["", "ssh", "-1", "+22", " 22", "22 ", "65536", "123456", "0x16", "2e3"]) {
      assert.equal(parsePortNumber(text), undefined, text);
    }
  });
});
