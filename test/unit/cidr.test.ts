import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cidrContains, parseCidr, parseCidrList } from "../../src/cidr.ts";
import { parseIPv6 } from "../../src/address.ts";
import { TunnelError } from "../../src/errors.ts";

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
    assert.equal(cidrContains(net, parseIPv6("2001:db8:ffff::1")!), true);
    assert.equal(cidrContains(net, parseIPv6("2001:db9::1")!), false);
  });

  test("an IPv4-mapped IPv6 address is matched against IPv4 networks", () => {
    const mapped = parseIPv6("::ffff:10.1.2.3")!;
    assert.equal(cidrContains(parseCidr("10.0.0.0/8"), mapped), true);
    assert.equal(cidrContains(parseCidr("11.0.0.0/8"), mapped), false);
  });

  test("an IPv4-compatible address that is not mapped does not match IPv4 networks", () => {
    assert.equal(cidrContains(parseCidr("10.0.0.0/8"), parseIPv6("::10.1.2.3")!), false);
  });
});
