import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  cidrContains,
  classifyHost,
  decideDestination,
  parseCidr,
  parseCidrList,
  type Cidr,
} from "../../src/socks/policy.ts";
import { TunnelError } from "../../src/errors.ts";
import { formatAddress } from "../../src/address.ts";

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const LOCALHOST4 = bytes(127, 0, 0, 1);
const LOCALHOST6 = bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

function refusesCidr(text: string, message: string): void {
  assert.throws(
    () => parseCidr(text),
    (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "USAGE");
      assert.equal(err.message, message);
      return true;
    },
  );
}

describe("parseCidr", () => {
  test("parses an IPv4 network", () => {
    assert.deepEqual(parseCidr("10.0.0.0/8"), { family: 4, bytes: bytes(10, 0, 0, 0), prefix: 8, text: "10.0.0.0/8" });
  });

  test("a bare IPv4 address is a /32", () => {
    assert.deepEqual(parseCidr("10.0.0.5"), { family: 4, bytes: bytes(10, 0, 0, 5), prefix: 32, text: "10.0.0.5/32" });
  });

  test("host bits below the prefix are cleared", () => {
    assert.deepEqual(parseCidr("10.1.2.3/8"), { family: 4, bytes: bytes(10, 0, 0, 0), prefix: 8, text: "10.0.0.0/8" });
    assert.equal(parseCidr("192.168.1.77/26").text, "192.168.1.64/26");
  });

  test("/0 covers everything of its family", () => {
    assert.deepEqual(parseCidr("0.0.0.0/0"), { family: 4, bytes: bytes(0, 0, 0, 0), prefix: 0, text: "0.0.0.0/0" });
    assert.equal(parseCidr("::/0").text, "::/0");
  });

  test("parses an IPv6 network and writes it in RFC 5952 form", () => {
    const cidr = parseCidr("2001:DB8:0:0::/32");
    assert.equal(cidr.family, 6);
    assert.equal(cidr.prefix, 32);
    assert.deepEqual(cidr.bytes, bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    assert.equal(cidr.text, "2001:db8::/32");
  });

  test("a bare IPv6 address is a /128", () => {
    assert.deepEqual(parseCidr("::1"), { family: 6, bytes: LOCALHOST6, prefix: 128, text: "::1/128" });
  });

  test("brackets and surrounding blanks are tolerated", () => {
    assert.equal(parseCidr(" [2001:db8::1]/64 ").text, "2001:db8::/64");
  });

  test("an IPv4-mapped network becomes the IPv4 network it maps", () => {
    assert.deepEqual(parseCidr("::ffff:10.0.0.0/104"), {
      family: 4,
      bytes: bytes(10, 0, 0, 0),
      prefix: 8,
      text: "10.0.0.0/8",
    });
  });

  test("junk is refused with an example of what works", () => {
    const hint = "expected an address or CIDR like 10.0.0.0/8 or 2001:db8::/32";
    refusesCidr("example.com", `Bad --allow-ip value 'example.com': ${hint}`);
    refusesCidr("", `Bad --allow-ip value '': ${hint}`);
    refusesCidr("10.0.0/8", `Bad --allow-ip value '10.0.0/8': ${hint}`);
    refusesCidr("010.0.0.0/8", `Bad --allow-ip value '010.0.0.0/8': ${hint}`);
    refusesCidr("256.0.0.0/8", `Bad --allow-ip value '256.0.0.0/8': ${hint}`);
    refusesCidr("fe80::1%eth0", `Bad --allow-ip value 'fe80::1%eth0': ${hint}`);
  });

  test("an out-of-range or malformed prefix is refused", () => {
    refusesCidr(
      "10.0.0.0/33",
      "Bad --allow-ip value '10.0.0.0/33': the prefix length must be a number from 0 to 32 for an IPv4 address",
    );
    refusesCidr(
      "10.0.0.0/",
      "Bad --allow-ip value '10.0.0.0/': the prefix length must be a number from 0 to 32 for an IPv4 address",
    );
    refusesCidr(
      "10.0.0.0/-1",
      "Bad --allow-ip value '10.0.0.0/-1': the prefix length must be a number from 0 to 32 for an IPv4 address",
    );
    refusesCidr(
      "::/129",
      "Bad --allow-ip value '::/129': the prefix length must be a number from 0 to 128 for an IPv6 address",
    );
    refusesCidr(
      "::/x",
      "Bad --allow-ip value '::/x': the prefix length must be a number from 0 to 128 for an IPv6 address",
    );
  });
});

describe("parseCidrList", () => {
  test("splits on commas and tolerates blanks and empty entries", () => {
    assert.deepEqual(
      parseCidrList(" 10.0.0.0/8 ,192.168.1.5,, 2001:db8::/32 ,").map((c) => c.text),
      ["10.0.0.0/8", "192.168.1.5/32", "2001:db8::/32"],
    );
  });

  test("an empty list allows nothing", () => {
    assert.deepEqual(parseCidrList(""), []);
  });

  test("one bad entry fails the whole list and is named", () => {
    assert.throws(() => parseCidrList("10.0.0.0/8, nope"), {
      code: "USAGE",
      message: "Bad --allow-ip value 'nope': expected an address or CIDR like 10.0.0.0/8 or 2001:db8::/32",
    });
  });
});

describe("cidrContains", () => {
  test("an IPv4 /8 contains its addresses and nothing else", () => {
    const net = parseCidr("10.0.0.0/8");
    assert.equal(cidrContains(net, bytes(10, 0, 0, 0)), true);
    assert.equal(cidrContains(net, bytes(10, 255, 255, 255)), true);
    assert.equal(cidrContains(net, bytes(11, 0, 0, 0)), false);
    assert.equal(cidrContains(net, bytes(9, 255, 255, 255)), false);
  });

  test("a prefix that is not a byte boundary splits inside a byte", () => {
    const net = parseCidr("192.168.1.64/26");
    assert.equal(cidrContains(net, bytes(192, 168, 1, 64)), true);
    assert.equal(cidrContains(net, bytes(192, 168, 1, 127)), true);
    assert.equal(cidrContains(net, bytes(192, 168, 1, 128)), false);
    assert.equal(cidrContains(net, bytes(192, 168, 1, 63)), false);
  });

  test("a /32 contains exactly one address", () => {
    const net = parseCidr("10.0.0.5/32");
    assert.equal(cidrContains(net, bytes(10, 0, 0, 5)), true);
    assert.equal(cidrContains(net, bytes(10, 0, 0, 4)), false);
  });

  test("0.0.0.0/0 contains every IPv4 address but no IPv6 one", () => {
    const net = parseCidr("0.0.0.0/0");
    assert.equal(cidrContains(net, bytes(255, 255, 255, 255)), true);
    assert.equal(cidrContains(net, bytes(0, 0, 0, 0)), true);
    assert.equal(cidrContains(net, LOCALHOST6), false);
  });

  test("::/0 contains every IPv6 address but no plain IPv4 one", () => {
    const net = parseCidr("::/0");
    assert.equal(cidrContains(net, LOCALHOST6), true);
    assert.equal(cidrContains(net, LOCALHOST4), false);
  });

  test("a /128 contains exactly one address", () => {
    const net = parseCidr("::1/128");
    assert.equal(cidrContains(net, LOCALHOST6), true);
    assert.equal(cidrContains(net, bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)), false);
  });

  test("an IPv6 /32 checks the first 32 bits", () => {
    const net = parseCidr("2001:db8::/32");
    assert.equal(cidrContains(net, classifyHost("2001:db8:ffff::1").address!), true);
    assert.equal(cidrContains(net, classifyHost("2001:db9::1").address!), false);
  });

  test("an IPv4-mapped IPv6 address is matched against IPv4 networks", () => {
    const mapped = classifyHost("::ffff:10.1.2.3").address!;
    assert.equal(cidrContains(parseCidr("10.0.0.0/8"), mapped), true);
    assert.equal(cidrContains(parseCidr("11.0.0.0/8"), mapped), false);
  });

  test("an IPv4-compatible address that is not mapped does not match IPv4 networks", () => {
    assert.equal(cidrContains(parseCidr("10.0.0.0/8"), classifyHost("::10.1.2.3").address!), false);
  });
});

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

describe("formatAddress", () => {
  test("writes IPv4 dotted", () => {
    assert.equal(formatAddress(bytes(192, 0, 2, 1)), "192.0.2.1");
  });

  test("compresses the longest zero run in IPv6 (RFC 5952 section 4.2.1)", () => {
    assert.equal(formatAddress(LOCALHOST6), "::1");
    assert.equal(formatAddress(new Uint8Array(16)), "::");
    assert.equal(formatAddress(classifyHost("2001:db8:0:0:0:0:2:1").address!), "2001:db8::2:1");
    assert.equal(formatAddress(classifyHost("2001:db8:0:0:1:0:0:1").address!), "2001:db8::1:0:0:1");
    assert.equal(formatAddress(classifyHost("1:0:0:0:0:0:0:0").address!), "1::");
  });

  test("does not compress a single zero group (RFC 5952 section 4.2.2)", () => {
    assert.equal(formatAddress(classifyHost("2001:db8:0:1:1:1:1:1").address!), "2001:db8:0:1:1:1:1:1");
  });

  test("writes hex in lower case without leading zeros (RFC 5952 sections 4.1 and 4.3)", () => {
    assert.equal(formatAddress(classifyHost("2001:0DB8:00AB:0000:0000:0000:0000:000F").address!), "2001:db8:ab::f");
  });

  test("writes IPv4-mapped addresses in mixed notation (RFC 5952 section 5)", () => {
    assert.equal(formatAddress(classifyHost("::ffff:c000:0201").address!), "::ffff:192.0.2.1");
  });

  test("refuses byte strings that are not 4 or 16 long", () => {
    assert.throws(() => formatAddress(bytes(1, 2, 3)), {
      code: "INTERNAL",
      message: "formatAddress needs 4 or 16 bytes, got 3",
    });
  });
});
