import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { canonicalAddress, isOneOf, networkAddresses, type InterfaceAddress } from "../../src/platform/interface-addresses.ts";

const v4 = (address: string, internal = false): InterfaceAddress => ({ address, family: "IPv4", internal });
const v6 = (address: string, internal = false): InterfaceAddress => ({ address, family: "IPv6", internal });

describe("networkAddresses", () => {
  test("a laptop: loopback left out, IPv4 first, then IPv6, each in the order listed", () => {
    assert.deepEqual(
      networkAddresses({
        lo: [v4("127.0.0.1", true), v6("::1", true)],
        wlan0: [v4("192.168.1.20"), v6("2001:db8::20"), v6("fe80::1c2d:3eff:fe4f:5a6b")],
        docker0: [v4("172.17.0.1"), v6("2001:db8:1::1")],
      }),
      ["192.168.1.20", "172.17.0.1", "2001:db8::20", "2001:db8:1::1"],
    );
  });

  test("internal addresses are left out whatever they are", () => {
    assert.deepEqual(networkAddresses({ odd: [v4("10.0.0.2", true), v6("2001:db8::1", true)], eth0: [v4("10.0.0.3")] }), ["10.0.0.3"]);
  });

  test("loopback is left out even when not flagged internal: all of 127/8, ::1, and IPv4-mapped loopback", () => {
    assert.deepEqual(networkAddresses({ lo0: [v4("127.0.0.1"), v4("127.0.1.1"), v6("::1"), v6("::ffff:127.0.0.1")], eth0: [v4("10.0.0.2")] }), ["10.0.0.2"]);
  });

  test("IPv6 link-local (fe80::/10) is left out, zone or none; the neighbouring fec0::/10 is not", () => {
    assert.deepEqual(
      networkAddresses({ eth0: [v6("fe80::1"), v6("FE80::1%eth0"), v6("febf:ffff::1"), v6("fec0::1"), v6("fe7f::1")] }),
      ["fec0::1", "fe7f::1"],
    );
  });

  test("an address listed twice, however spelled, is listed once, in RFC 5952 spelling", () => {
    assert.deepEqual(
      networkAddresses({
        eth0: [v4("10.0.0.2"), v6("2001:DB8:0:0::1")],
        eth0_alias: [v4("10.0.0.2"), v6("2001:db8::1"), v6("2001:0db8:0000:0000:0000:0000:0000:0001")],
      }),
      ["10.0.0.2", "2001:db8::1"],
    );
  });

  test("an IPv6 address listed before an IPv4 one still comes after it", () => {
    assert.deepEqual(networkAddresses({ a: [v6("2001:db8::1")], b: [v4("192.168.1.20")], c: [v6("2001:db8::2"), v4("10.0.0.2")] }), [
      "192.168.1.20",
      "10.0.0.2",
      "2001:db8::1",
      "2001:db8::2",
    ]);
  });

  test("Node's older numeric families, interfaces listed as undefined, and no interfaces at all", () => {
    assert.deepEqual(networkAddresses({ eth0: [{ address: "10.0.0.2", family: 4, internal: false }], gone: undefined }), ["10.0.0.2"]);
    assert.deepEqual(networkAddresses({}), []);
  });

  test("entries that are not addresses are skipped", () => {
    assert.deepEqual(networkAddresses({ odd: [v4(""), v4("10.0.0.256"), v4("localhost"), v4("010.0.0.2")], eth0: [v4("10.0.0.2")] }), ["10.0.0.2"]);
  });
});

describe("isOneOf", () => {
  test("compares addresses however they are spelled", () => {
    assert.equal(isOneOf("2001:DB8::0:1", ["2001:db8::1"]), true);
    assert.equal(isOneOf("2001:0db8:0:0:0:0:0:1", ["10.0.0.2", "2001:db8::1"]), true);
    assert.equal(isOneOf("10.0.0.2", ["10.0.0.2"]), true);
  });

  test("is false for another address, and when the list is empty", () => {
    assert.equal(isOneOf("10.0.0.3", ["10.0.0.2"]), false);
    assert.equal(isOneOf("2001:db8::2", ["2001:db8::1"]), false);
    assert.equal(isOneOf("10.0.0.2", []), false);
  });

  test("is false for names and zone-scoped addresses, even when the list holds the same text", () => {
    assert.equal(isOneOf("localhost", ["localhost"]), false);
    assert.equal(isOneOf("fe80::1%eth0", ["fe80::1%eth0", "fe80::1"]), false);
  });

  test("an IPv4-mapped address is not its IPv4 address", () => {
    assert.equal(isOneOf("::ffff:10.0.0.2", ["10.0.0.2"]), false);
  });
});

describe("canonicalAddress", () => {
  test("IPv4 stays dotted", () => {
    assert.equal(canonicalAddress("192.168.1.20"), "192.168.1.20");
  });

  test("IPv6 in RFC 5952 spelling: lower case, no leading zeros, the longest zero run compressed", () => {
    assert.equal(canonicalAddress("2001:DB8::0:1"), "2001:db8::1");
    assert.equal(canonicalAddress("2001:0db8:0000:0000:0001:0000:0000:0001"), "2001:db8::1:0:0:1");
    assert.equal(canonicalAddress("0:0:0:0:0:0:0:1"), "::1");
    assert.equal(canonicalAddress("::FFFF:10.0.0.2"), "::ffff:10.0.0.2");
  });

  test("names, zone ids, brackets, ports and malformed addresses give undefined", () => {
    for (const text of ["localhost", "example.org", "fe80::1%eth0", "[2001:db8::1]", "10.0.0.2:3478", "10.0.0", "010.0.0.2", "2001:db8::g", ""]) {
      assert.equal(canonicalAddress(text), undefined, text);
    }
  });
});
