import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { classifyHost, decideDestination } from "../../src/socks/policy.ts";
import { parseCidrList, type Cidr } from "../../src/cidr.ts";

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const LOCALHOST4 = bytes(127, 0, 0, 1);
const LOCALHOST6 = bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

describe("classifyHost", () => {
  test("dotted quads are IPv4", () => {
    assert.deepEqual(classifyHost("192.0.2.1"), { kind: "ipv4", address: bytes(192, 0, 2, 1) });
  });

  test("inet_aton's numeric forms are IPv4 because the far end would not look them up", () => {
    for (const host of ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "0x7F000001", "127.0.1", "0x7f.0.0.0x1", "017700000001"]) {
      assert.deepEqual(classifyHost(host), { kind: "ipv4", address: LOCALHOST4 }, host);
    }
  });

  test("zero and the largest single-number form are IPv4", () => {
    assert.deepEqual(classifyHost("0"), { kind: "ipv4", address: bytes(0, 0, 0, 0) });
    assert.deepEqual(classifyHost("4294967295"), { kind: "ipv4", address: bytes(255, 255, 255, 255) });
  });

  test("the last part fills the remaining bytes up to its limit", () => {
    assert.deepEqual(classifyHost("10.65535"), { kind: "ipv4", address: bytes(10, 0, 255, 255) });
    assert.deepEqual(classifyHost("1.16777215"), { kind: "ipv4", address: bytes(1, 255, 255, 255) });
    assert.deepEqual(classifyHost("1.2.65535"), { kind: "ipv4", address: bytes(1, 2, 255, 255) });
  });

  test("text after a blank is ignored, as BSD inet_aton does, so the host still counts as IPv4", () => {
    assert.deepEqual(classifyHost("127.0.0.1 evil.example"), { kind: "ipv4", address: LOCALHOST4 });
  });

  test("out-of-range numeric forms are names", () => {
    for (const host of ["4294967296", "256.0.0.1", "1.2.3.256", "1.16777216", "1.2.65536", "1.2.3.4.5", "08", "0x", "0xg"]) {
      assert.deepEqual(classifyHost(host), { kind: "name" }, host);
    }
  });

  test("names with digits stay names", () => {
    for (const host of ["1.example", "123abc", "3com.com", "1e100.net", "0x7f.example", "a.1.2.3", "example.com", ""]) {
      assert.deepEqual(classifyHost(host), { kind: "name" }, host);
    }
  });

  test("a trailing dot keeps a numeric-looking host a name", () => {
    assert.deepEqual(classifyHost("127.0.0.1."), { kind: "name" });
    assert.deepEqual(classifyHost("example.com."), { kind: "name" });
  });

  test("bare, bracketed and zoned IPv6 literals are IPv6", () => {
    assert.deepEqual(classifyHost("::1"), { kind: "ipv6", address: LOCALHOST6 });
    assert.deepEqual(classifyHost("[::1]"), { kind: "ipv6", address: LOCALHOST6 });
    assert.deepEqual(classifyHost("fe80::1%eth0"), {
      kind: "ipv6",
      address: bytes(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
    });
    assert.deepEqual(classifyHost("[fe80::1%25eth0]").kind, "ipv6");
  });

  test("IPv6 with an embedded IPv4 tail is parsed byte for byte", () => {
    assert.deepEqual(classifyHost("::ffff:1.2.3.4"), {
      kind: "ipv6",
      address: bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4),
    });
    assert.deepEqual(classifyHost("64:ff9b::192.0.2.33"), {
      kind: "ipv6",
      address: bytes(0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 33),
    });
  });

  test("a fully written IPv6 address is parsed byte for byte", () => {
    assert.deepEqual(classifyHost("2001:0db8:0001:0002:0003:0004:0005:0006"), {
      kind: "ipv6",
      address: bytes(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6),
    });
  });

  test("a bracketed IPv4 literal still counts as IPv4", () => {
    assert.deepEqual(classifyHost("[10.0.0.1]"), { kind: "ipv4", address: bytes(10, 0, 0, 1) });
  });
});

describe("decideDestination", () => {
  const allow: Cidr[] = parseCidrList("10.0.0.0/8, 2001:db8::/32");

  test("a name goes out without consulting the allow list", () => {
    assert.deepEqual(decideDestination({ kind: "name", host: "wikileaks.org" }, []), { allow: true, viaAllowList: false });
  });

  test("an IPv4 destination is refused when no allow list is given", () => {
    assert.deepEqual(decideDestination({ kind: "ipv4", host: "93.184.216.34" }, []), { allow: false, reason: "ip-literal" });
  });

  test("an IPv6 destination is refused when no allow list is given", () => {
    assert.deepEqual(decideDestination({ kind: "ipv6", host: "2606:2800:220:1::1" }, []), {
      allow: false,
      reason: "ip-literal",
    });
  });

  test("an IPv4 destination inside the allow list goes out and names the match", () => {
    assert.deepEqual(decideDestination({ kind: "ipv4", host: "10.20.30.40" }, allow), {
      allow: true,
      viaAllowList: true,
      matched: allow[0],
    });
  });

  test("an IPv4 destination outside the allow list is refused", () => {
    assert.deepEqual(decideDestination({ kind: "ipv4", host: "11.0.0.1" }, allow), { allow: false, reason: "ip-literal" });
  });

  test("an IPv6 destination inside the allow list goes out", () => {
    assert.deepEqual(decideDestination({ kind: "ipv6", host: "2001:db8::99" }, allow), {
      allow: true,
      viaAllowList: true,
      matched: allow[1],
    });
  });

  test("an IPv4-mapped IPv6 destination is matched against IPv4 networks", () => {
    assert.deepEqual(decideDestination({ kind: "ipv6", host: "::ffff:10.1.1.1" }, allow), {
      allow: true,
      viaAllowList: true,
      matched: allow[0],
    });
    assert.deepEqual(decideDestination({ kind: "ipv6", host: "::ffff:127.0.0.1" }, allow), {
      allow: false,
      reason: "ip-literal",
    });
  });

  test("a name that is really an IP literal is refused like one", () => {
    for (const host of ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::1]", "::1", "fe80::1%eth0"]) {
      assert.deepEqual(decideDestination({ kind: "name", host }, []), { allow: false, reason: "ip-literal" }, host);
    }
  });

  test("a name that is really an allowed IP literal goes out via the allow list", () => {
    assert.deepEqual(decideDestination({ kind: "name", host: "0xa.1" }, allow), {
      allow: true,
      viaAllowList: true,
      matched: allow[0],
    });
  });

  test("names with digits and trailing dots go out", () => {
    for (const host of ["1.example", "123abc", "127.0.0.1.", "localhost"]) {
      assert.deepEqual(decideDestination({ kind: "name", host }, []), { allow: true, viaAllowList: false }, host);
    }
  });

  test("an IP-kind destination whose text is not an address is refused", () => {
    assert.deepEqual(decideDestination({ kind: "ipv4", host: "example.com" }, parseCidrList("0.0.0.0/0, ::/0")), {
      allow: false,
      reason: "ip-literal",
    });
  });

  test("the first matching network is reported", () => {
    const nets = parseCidrList("10.0.0.0/16, 10.0.0.0/8");
    assert.equal(decideDestination({ kind: "ipv4", host: "10.0.5.5" }, nets).allow, true);
    assert.deepEqual(decideDestination({ kind: "ipv4", host: "10.0.5.5" }, nets), {
      allow: true,
      viaAllowList: true,
      matched: nets[0],
    });
    assert.deepEqual(decideDestination({ kind: "ipv4", host: "10.9.5.5" }, nets), {
      allow: true,
      viaAllowList: true,
      matched: nets[1],
    });
  });
});
