import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DnsObservation } from "../../src/leakcheck/dns-frames.ts";
import { CANARY_LOOKUP_FIX, canariesIn, namesCanary, resolverFindings } from "../../src/leakcheck/resolver-findings.ts";

const CANARY = "x7k2.safetunnel.invalid";
const STUN = "s9q1.safetunnel.invalid";

function seen(overrides: Partial<DnsObservation>): DnsObservation {
  return {
    protocol: "dns",
    transport: "udp",
    from: { address: "127.0.0.1", port: 41000 },
    to: { address: "127.0.0.53", port: 53 },
    query: true,
    names: [],
    types: ["A"],
    ...overrides,
  };
}

describe("namesCanary", () => {
  test("matches the canary and names under it, whatever their case and final dot", () => {
    assert.equal(namesCanary(CANARY, CANARY), true);
    assert.equal(namesCanary("X7K2.SafeTunnel.Invalid.", CANARY), true);
    assert.equal(namesCanary(`www.${CANARY}`, CANARY), true);
    assert.equal(namesCanary(CANARY, `${CANARY}.`), true);
  });

  test("does not match a name that merely ends in the same letters or contains the canary", () => {
    assert.equal(namesCanary(`ax7k2.safetunnel.invalid`, CANARY), false);
    assert.equal(namesCanary(`${CANARY}.example.org`, CANARY), false);
    assert.equal(namesCanary("safetunnel.invalid", CANARY), false);
    assert.equal(namesCanary("anything", ""), false);
  });
});

describe("resolverFindings", () => {
  test("nothing seen gives no findings", () => {
    assert.deepEqual(resolverFindings([], [CANARY]), []);
  });

  test("a query for the canary through the local resolver is a leak that says where and who asked", () => {
    const findings = resolverFindings([seen({ names: [CANARY], interfaceName: "lo" })], [CANARY, STUN]);
    assert.deepEqual(findings, [
      {
        probe: "resolver",
        severity: "leak",
        detail: `The canary ${CANARY} was looked up through the local resolver at 127.0.0.53:53 by 127.0.0.1:41000 on lo: the browser resolved it itself instead of sending the name to the proxy.`,
        fix: CANARY_LOOKUP_FIX,
      },
    ]);
    assert.equal(CANARY_LOOKUP_FIX, "make the browser send names to the proxy: the Firefox and Chromium findings say which setting to change");
  });

  test("one leak per canary, counting its messages, naming the process and an IPv6 resolver in brackets", () => {
    const findings = resolverFindings(
      [
        seen({ names: [`Www.${CANARY.toUpperCase()}.`], processId: 77, to: { address: "::1", port: 53 }, types: ["A"] }),
        seen({ names: [`www.${CANARY}`], to: { address: "::1", port: 53 }, types: ["AAAA"] }),
        seen({ names: [STUN], interfaceIndex: 1 }),
      ],
      [CANARY, STUN],
    );
    assert.deepEqual(
      findings.map((finding) => [finding.severity, finding.detail]),
      [
        ["leak", `The canary ${CANARY} was looked up through the local resolver at [::1]:53 by 127.0.0.1:41000 (process 77, 2 messages): the browser resolved it itself instead of sending the name to the proxy.`],
        ["leak", `The canary ${STUN} was looked up through the local resolver at 127.0.0.53:53 by 127.0.0.1:41000 on interface 1: the browser resolved it itself instead of sending the name to the proxy.`],
      ],
    );
  });

  test("one message naming the canary in two questions counts once", () => {
    const [finding] = resolverFindings([seen({ names: [CANARY, `_https._tcp.${CANARY}`], types: ["A", "HTTPS"] })], [CANARY]);
    assert.doesNotMatch(finding!.detail, /messages/);
  });

  test("an mDNS or LLMNR query for the canary is a leak that went to the whole local network", () => {
    const findings = resolverFindings(
      [
        seen({ protocol: "mdns", names: [CANARY], from: { address: "192.168.1.5", port: 5353 }, to: { address: "224.0.0.251", port: 5353 } }),
        seen({ protocol: "llmnr", names: [CANARY], from: { address: "fe80::5", port: 50000 }, to: { address: "ff02::1:3", port: 5355 } }),
      ],
      [CANARY],
    );
    assert.deepEqual(
      findings.map((finding) => [finding.severity, finding.detail]),
      [
        ["leak", `The canary ${CANARY} was asked for by multicast DNS (mDNS) from 192.168.1.5:5353, to the whole local network: the browser resolved it itself instead of sending the name to the proxy.`],
        ["leak", `The canary ${CANARY} was asked for by LLMNR from [fe80::5]:50000, to the whole local network: the browser resolved it itself instead of sending the name to the proxy.`],
      ],
    );
  });

  test("a reply naming the canary is proof enough when its query was not captured", () => {
    const [finding] = resolverFindings([seen({ query: false, names: [CANARY], from: { address: "127.0.0.53", port: 53 }, to: { address: "127.0.0.1", port: 41000 } })], [CANARY]);
    assert.equal(finding!.severity, "leak");
    assert.equal(
      finding!.detail,
      `A reply from the local resolver at 127.0.0.53:53 to 127.0.0.1:41000 names the canary ${CANARY}: the browser resolved it itself instead of sending the name to the proxy.`,
    );
  });

  test("other names looked up during the test are one info finding per protocol, listed once each, bounded", () => {
    const names = Array.from({ length: 14 }, (_, i) => `site${i}.example`);
    const findings = resolverFindings(
      [
        ...names.map((name) => seen({ names: [name] })),
        seen({ names: ["SITE0.example."] }),
        seen({ query: false, names: ["reply-only.example"] }),
        seen({ protocol: "mdns", names: ["_ipp._tcp.local"] }),
      ],
      [CANARY],
    );
    assert.deepEqual(findings, [
      {
        probe: "resolver",
        severity: "info",
        detail:
          "14 other names were looked up through the local resolver during the test: site0.example, site1.example, site2.example, site3.example, site4.example, " +
          "site5.example, site6.example, site7.example, site8.example, site9.example and 4 more (a capture does not say which program asked).",
        fix: null,
      },
      {
        probe: "resolver",
        severity: "info",
        detail: "1 other name was looked up by multicast DNS (mDNS) during the test: _ipp._tcp.local (a capture does not say which program asked).",
        fix: null,
      },
    ]);
    assert.match(resolverFindings([seen({ names: ["a.example", "b.example"] })], [], { maxNamesListed: 1 })[0]!.detail, /: a\.example and 1 more \(/);
  });

  test("DNS over TLS is one exposure per server, counting connections, never a leak", () => {
    const dot = (port: number, server = "9.9.9.9"): DnsObservation =>
      seen({ protocol: "dot", transport: "tcp", from: { address: "192.168.1.5", port }, to: { address: server, port: 853 }, names: [], types: [] });
    const findings = resolverFindings([dot(50001), dot(50001), dot(50002), dot(50003, "2620:fe::fe")], [CANARY]);
    assert.deepEqual(
      findings.map((finding) => [finding.severity, finding.detail]),
      [
        ["exposure", "Encrypted DNS (DNS over TLS) left this machine for 9.9.9.9:853 (2 connections): the network cannot read the names, but sees that this machine resolves names itself, outside the tunnel, and 9.9.9.9:853 sees every one."],
        ["exposure", "Encrypted DNS (DNS over TLS) left this machine for [2620:fe::fe]:853 (1 connection): the network cannot read the names, but sees that this machine resolves names itself, outside the tunnel, and [2620:fe::fe]:853 sees every one."],
      ],
    );
    assert.ok(findings.every((finding) => finding.fix !== null && finding.fix.length < 160));
  });

  describe("webrtcCanaries", () => {
    const WEBRTC_FIX = "keep WebRTC inside the proxy";
    const stunLookup = (overrides: Partial<DnsObservation> = {}): DnsObservation => seen({ names: [`www.${STUN}`], ...overrides });
    const stunDetail = `The canary ${STUN} was looked up through the local resolver at 127.0.0.53:53 by 127.0.0.1:41000: the browser resolved it itself instead of sending the name to the proxy.`;

    test("a lookup of a WebRTC canary is probe webrtc with webrtcFix; the page canary's stays probe resolver", () => {
      assert.deepEqual(resolverFindings([seen({ names: [CANARY] }), stunLookup()], [CANARY, STUN], { webrtcCanaries: [STUN], webrtcFix: WEBRTC_FIX }), [
        {
          probe: "resolver",
          severity: "leak",
          detail: `The canary ${CANARY} was looked up through the local resolver at 127.0.0.53:53 by 127.0.0.1:41000: the browser resolved it itself instead of sending the name to the proxy.`,
          fix: CANARY_LOOKUP_FIX,
        },
        { probe: "webrtc", severity: "leak", detail: stunDetail, fix: WEBRTC_FIX },
      ]);
    });

    test("a WebRTC canary is a canary even when canaries does not list it", () => {
      assert.deepEqual(resolverFindings([stunLookup()], [CANARY], { webrtcCanaries: [STUN], webrtcFix: WEBRTC_FIX }), [{ probe: "webrtc", severity: "leak", detail: stunDetail, fix: WEBRTC_FIX }]);
      assert.deepEqual(resolverFindings([stunLookup()], [], { webrtcCanaries: [STUN], webrtcFix: WEBRTC_FIX }), [{ probe: "webrtc", severity: "leak", detail: stunDetail, fix: WEBRTC_FIX }]);
    });

    test("matched whatever its case and final dot, in either list", () => {
      assert.deepEqual(resolverFindings([stunLookup()], [`${STUN.toUpperCase()}.`], { webrtcCanaries: [`${STUN}.`], webrtcFix: WEBRTC_FIX }), [
        { probe: "webrtc", severity: "leak", detail: stunDetail, fix: WEBRTC_FIX },
      ]);
    });

    test("without webrtcFix the fix is CANARY_LOOKUP_FIX", () => {
      assert.deepEqual(resolverFindings([stunLookup()], [CANARY, STUN], { webrtcCanaries: [STUN] }), [{ probe: "webrtc", severity: "leak", detail: stunDetail, fix: CANARY_LOOKUP_FIX }]);
    });

    test("one webrtc finding per protocol, like any canary's leak", () => {
      const mdns = stunLookup({ protocol: "mdns", from: { address: "192.168.1.5", port: 5353 }, to: { address: "224.0.0.251", port: 5353 } });
      assert.deepEqual(resolverFindings([stunLookup(), stunLookup({ types: ["AAAA"] }), mdns], [CANARY], { webrtcCanaries: [STUN], webrtcFix: WEBRTC_FIX }), [
        {
          probe: "webrtc",
          severity: "leak",
          detail: `The canary ${STUN} was looked up through the local resolver at 127.0.0.53:53 by 127.0.0.1:41000 (2 messages): the browser resolved it itself instead of sending the name to the proxy.`,
          fix: WEBRTC_FIX,
        },
        {
          probe: "webrtc",
          severity: "leak",
          detail: `The canary ${STUN} was asked for by multicast DNS (mDNS) from 192.168.1.5:5353, to the whole local network: the browser resolved it itself instead of sending the name to the proxy.`,
          fix: WEBRTC_FIX,
        },
      ]);
    });

    test("decides by the canary matched, not by its name appearing in the detail: other names, DoT and the page canary are untouched", () => {
      const findings = resolverFindings(
        [seen({ names: [`${STUN}.example.org`] }), seen({ protocol: "dot", transport: "tcp", to: { address: "9.9.9.9", port: 853 } }), seen({ names: [`www.${CANARY}`] })],
        [CANARY],
        { webrtcCanaries: [STUN], webrtcFix: WEBRTC_FIX },
      );
      assert.deepEqual(
        findings.map((finding) => [finding.probe, finding.severity, finding.fix === WEBRTC_FIX]),
        [
          ["resolver", "leak", false],
          ["resolver", "exposure", false],
          ["resolver", "info", false],
        ],
      );
      assert.equal(findings[2]!.detail, `1 other name was looked up through the local resolver during the test: ${STUN}.example.org (a capture does not say which program asked).`);
    });

    test("no lookup of a WebRTC canary: no webrtc finding", () => {
      assert.deepEqual(resolverFindings([], [CANARY], { webrtcCanaries: [STUN], webrtcFix: WEBRTC_FIX }), []);
    });
  });

  test("leaks come before exposures, exposures before info", () => {
    const findings = resolverFindings(
      [
        seen({ names: ["other.example"] }),
        seen({ protocol: "dot", transport: "tcp", to: { address: "1.1.1.1", port: 853 } }),
        seen({ names: [CANARY] }),
      ],
      [CANARY],
    );
    assert.deepEqual(
      findings.map((finding) => finding.severity),
      ["leak", "exposure", "info"],
    );
  });
});

describe("canariesIn", () => {
  test("finds the canaries of any check, in the order first seen, from names at or under them, once each", () => {
    const observations = [
      seen({ names: ["www.3F2A.canary.safetunnel.invalid.", "example.org"] }),
      seen({ names: ["3f2a-stun.canary.safetunnel.invalid"] }),
      seen({ names: ["3f2a.canary.safetunnel.invalid"] }),
    ];
    assert.deepEqual(canariesIn(observations), ["3f2a.canary.safetunnel.invalid", "3f2a-stun.canary.safetunnel.invalid"]);
  });

  test("the domain itself, other .invalid names, the control name and look-alikes under other domains are not canaries", () => {
    const observations = [
      seen({ names: ["canary.safetunnel.invalid", "control.safetunnel.invalid", "x.canary.other.invalid", "x.canary.safetunnel.invalid.example.org", "xcanary.safetunnel.invalid"] }),
    ];
    assert.deepEqual(canariesIn(observations), []);
  });
});
