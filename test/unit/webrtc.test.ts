import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as webrtc from "../../src/leakcheck/webrtc.ts";
import { asWebrtcReport, isStunMessage, mergeWebrtcReports, parseCandidate, stunLookupFix, udpProbeFindings, webrtcFindings, type UdpProbe } from "../../src/leakcheck/webrtc.ts";

type WebrtcGathering = webrtc.WebrtcReport["gathering"];

const FIX =
  'in Firefox media.peerconnection.ice.proxy_only_if_behind_proxy = true (or media.peerconnection.enabled = false); ' +
  'in Chromium set the policy "WebRtcIPHandling": "disable_non_proxied_udp" as a managed policy' +
  `, or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"} in its profile's Preferences file (Default/Preferences in the user data folder); the --force-webrtc-ip-handling-policy switch is ignored`;

const ADDRESS_FIX =
  "in Firefox media.peerconnection.ice.proxy_only_if_behind_proxy = true, or media.peerconnection.ice.default_address_only = true to offer only the default address " +
  "(or media.peerconnection.enabled = false); " +
  'in Chromium set the policy "WebRtcIPHandling": "disable_non_proxied_udp" as a managed policy' +
  `, or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"} in its profile's Preferences file (Default/Preferences in the user data folder); the --force-webrtc-ip-handling-policy switch is ignored`;

describe("parseCandidate", () => {
  test("reads the address and type of a candidate line, with or without its a= and candidate: prefixes", () => {
    assert.deepEqual(parseCandidate("candidate:1 1 udp 2122260223 192.168.1.20 54400 typ host generation 0"), { address: "192.168.1.20", type: "host" });
    assert.deepEqual(parseCandidate("a=candidate:2 1 udp 1686052607 203.0.113.7 5000 typ srflx raddr 0.0.0.0 rport 0"), { address: "203.0.113.7", type: "srflx" });
    assert.deepEqual(parseCandidate("candidate:3 1 udp 2122260223 0a1b2c3d-e4f5.local 51000 typ host"), { address: "0a1b2c3d-e4f5.local", type: "host" });
  });

  test("gives undefined for anything that is not a candidate line", () => {
    for (const line of ["", "candidate:1 1 udp", "candidate:1 1 udp 1 1.2.3.4 5 host x", "hello world"]) assert.equal(parseCandidate(line), undefined, line);
  });
});

describe("webrtcFindings", () => {
  test("no report: WebRTC was not tested (info)", () => {
    assert.deepEqual(webrtcFindings(undefined), [
      { probe: "webrtc", severity: "info", detail: "WebRTC was not tested: the canary page's script did not report (JavaScript off, or not a browser)", fix: null },
    ]);
  });

  test("WebRTC unavailable in the browser: nothing can leak (info)", () => {
    assert.deepEqual(webrtcFindings({ candidates: [], error: "RTCPeerConnection is not available" }), [
      { probe: "webrtc", severity: "info", detail: "WebRTC did not run in this browser (RTCPeerConnection is not available): it cannot leak", fix: null },
    ]);
  });

  test("an error after some candidates were gathered still judges those candidates", () => {
    assert.deepEqual(webrtcFindings({ candidates: ["candidate:1 1 udp 1 192.168.1.20 1 typ host"], error: "timeout" }), [
      { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN address 192.168.1.20", fix: ADDRESS_FIX },
    ]);
  });

  test("a server-reflexive candidate is a leak: STUN was answered over UDP around the proxy", () => {
    assert.deepEqual(webrtcFindings({ candidates: ["candidate:2 1 udp 1 203.0.113.7 5000 typ srflx raddr 0.0.0.0 rport 0"] }), [
      { probe: "webrtc", severity: "leak", detail: "WebRTC reached a STUN server around the proxy (UDP from this machine), and learnt the address 203.0.113.7", fix: FIX },
    ]);
  });

  test("host candidates with LAN or public addresses are exposure; loopback is ignored", () => {
    assert.deepEqual(webrtcFindings({ candidates: ["candidate:1 1 udp 1 192.168.1.20 1 typ host", "candidate:1 1 udp 1 fd00::5 1 typ host", "candidate:1 1 udp 1 127.0.0.1 1 typ host"] }), [
      { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN addresses 192.168.1.20, fd00::5", fix: ADDRESS_FIX },
    ]);
    assert.equal(webrtcFindings({ candidates: ["candidate:1 1 udp 1 198.51.100.4 1 typ host"] })[0]!.detail, "WebRTC shows pages this machine's public address 198.51.100.4");
  });

  test("LAN and public host candidates together are two exposure findings, LAN first, each listing only its own addresses", () => {
    assert.deepEqual(
      webrtcFindings({
        candidates: [
          "candidate:1 1 udp 1 198.51.100.4 1 typ host",
          "candidate:1 1 udp 1 192.168.1.20 1 typ host",
          "candidate:1 1 udp 1 2001:db8::7 1 typ host",
          "candidate:1 1 udp 1 fe80::1 1 typ host",
          "candidate:1 1 udp 1 192.168.1.20 2 typ host",
        ],
      }),
      [
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN addresses 192.168.1.20, fe80::1", fix: ADDRESS_FIX },
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's public addresses 198.51.100.4, 2001:db8::7", fix: ADDRESS_FIX },
      ],
    );
  });

  test("a STUN answer with a LAN and a public host candidate: the leak, then one exposure finding each", () => {
    assert.deepEqual(
      webrtcFindings({
        candidates: [
          "candidate:1 1 udp 1 10.0.0.5 1 typ host",
          "candidate:1 1 udp 1 198.51.100.4 1 typ host",
          "candidate:2 1 udp 1 203.0.113.7 5000 typ srflx raddr 10.0.0.5 rport 1",
        ],
      }),
      [
        { probe: "webrtc", severity: "leak", detail: "WebRTC reached a STUN server around the proxy (UDP from this machine), and learnt the address 203.0.113.7", fix: FIX },
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN address 10.0.0.5", fix: ADDRESS_FIX },
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's public address 198.51.100.4", fix: ADDRESS_FIX },
      ],
    );
  });

  test("only mDNS names: nothing leaked (info)", () => {
    assert.deepEqual(webrtcFindings({ candidates: ["candidate:3 1 udp 1 0a1b2c3d-e4f5.local 51000 typ host"] }), [
      { probe: "webrtc", severity: "info", detail: "WebRTC showed only mDNS names (*.local) and got no answer from a STUN server", fix: null },
    ]);
  });

  test("the STUN-canary lookup fix adds Chromium's launch flags, its resolver rule sparing the proxy", () => {
    assert.equal(
      stunLookupFix({ host: "127.0.0.1", port: 9001 }),
      `${FIX}; and start Chromium with --proxy-server=socks5://127.0.0.1:9001 --proxy-bypass-list="<-loopback>" --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1" so it resolves nothing itself`,
    );
  });
});

describe("asWebrtcReport", () => {
  test("takes the webrtc object of a /report body, keeping only strings, at most 200", () => {
    assert.deepEqual(asWebrtcReport({ webrtc: { candidates: ["a", 1, "b"] } }), { candidates: ["a", "b"] });
    assert.equal(asWebrtcReport({ webrtc: { candidates: Array.from({ length: 500 }, () => "x") } })!.candidates.length, 200);
    assert.deepEqual(asWebrtcReport({ webrtc: { error: "off" } }), { candidates: [], error: "off" });
  });

  test("is undefined for anything else", () => {
    for (const body of [null, 5, "x", {}, { webrtc: null }, { webrtc: "x" }]) assert.equal(asWebrtcReport(body), undefined);
  });

  test("keeps how gathering ended when it is complete or timeout", () => {
    assert.deepEqual(asWebrtcReport({ webrtc: { candidates: ["a"], gathering: "complete" } }), { candidates: ["a"], gathering: "complete" });
    assert.deepEqual(asWebrtcReport({ webrtc: { candidates: [], gathering: "timeout", error: "x" } }), { candidates: [], error: "x", gathering: "timeout" });
  });

  test("leaves gathering out when it is anything else", () => {
    for (const gathering of ["gathering", "Complete", "", 1, true, null, ["complete"], { complete: true }]) {
      assert.deepEqual(asWebrtcReport({ webrtc: { candidates: ["a"], gathering } }), { candidates: ["a"] }, JSON.stringify(gathering));
    }
  });

  test("cuts an error to 200 characters", () => {
    assert.deepEqual(asWebrtcReport({ webrtc: { candidates: [], error: "e".repeat(300) } }), { candidates: [], error: "e".repeat(200) });
  });
});

describe("mergeWebrtcReports", () => {
  test("with no earlier report, the later one's candidates, error and gathering, duplicates dropped", () => {
    assert.deepEqual(mergeWebrtcReports(undefined, { candidates: ["a", "b", "a"], error: "x", gathering: "timeout" }), { candidates: ["a", "b"], error: "x", gathering: "timeout" });
    assert.deepEqual(mergeWebrtcReports(undefined, { candidates: [] }), { candidates: [] });
  });

  test("candidates of both, earlier first, each once", () => {
    assert.deepEqual(mergeWebrtcReports({ candidates: ["a", "b"] }, { candidates: ["b", "c", "a", "d"] }), { candidates: ["a", "b", "c", "d"] });
  });

  test("at most 200 candidates, the earlier report's first", () => {
    const earlier = Array.from({ length: 150 }, (_, i) => `e${i}`);
    const later = Array.from({ length: 150 }, (_, i) => `l${i}`);
    assert.deepEqual(mergeWebrtcReports({ candidates: earlier }, { candidates: later }), { candidates: [...earlier, ...later.slice(0, 50)] });
  });

  test("an error of either is kept; two distinct errors are joined by '; ', the same one kept once", () => {
    assert.deepEqual(mergeWebrtcReports({ candidates: [], error: "RTCPeerConnection is not available" }, { candidates: ["a"] }), { candidates: ["a"], error: "RTCPeerConnection is not available" });
    assert.deepEqual(mergeWebrtcReports({ candidates: ["a"] }, { candidates: [], error: "x" }), { candidates: ["a"], error: "x" });
    assert.deepEqual(mergeWebrtcReports({ candidates: [], error: "x" }, { candidates: [], error: "y" }), { candidates: [], error: "x; y" });
    assert.deepEqual(mergeWebrtcReports({ candidates: [], error: "x" }, { candidates: [], error: "x" }), { candidates: [], error: "x" });
  });

  test("joined errors are cut to 200 characters", () => {
    assert.deepEqual(mergeWebrtcReports({ candidates: [], error: "a".repeat(150) }, { candidates: [], error: "b".repeat(150) }), { candidates: [], error: `${"a".repeat(150)}; ${"b".repeat(48)}` });
  });

  test("gathering is complete if either completed, else timeout if either timed out, else absent", () => {
    const cases: [WebrtcGathering, WebrtcGathering, WebrtcGathering][] = [
      ["complete", "timeout", "complete"],
      ["timeout", "complete", "complete"],
      [undefined, "complete", "complete"],
      ["complete", undefined, "complete"],
      ["timeout", "timeout", "timeout"],
      [undefined, "timeout", "timeout"],
      ["timeout", undefined, "timeout"],
      [undefined, undefined, undefined],
    ];
    for (const [first, second, merged] of cases) {
      const report = (gathering: WebrtcGathering): webrtc.WebrtcReport => (gathering === undefined ? { candidates: [] } : { candidates: [], gathering });
      assert.deepEqual(mergeWebrtcReports(report(first), report(second)), report(merged), `${first} + ${second}`);
    }
  });

  test("the findings of a merged report judge both posts", () => {
    const merged = mergeWebrtcReports(
      { candidates: ["candidate:1 1 udp 1 192.168.1.20 1 typ host"], gathering: "timeout" },
      { candidates: ["candidate:2 1 udp 1 203.0.113.7 5000 typ srflx raddr 0.0.0.0 rport 0"], gathering: "complete" },
    );
    assert.deepEqual(webrtcFindings(merged), [
      { probe: "webrtc", severity: "leak", detail: "WebRTC reached a STUN server around the proxy (UDP from this machine), and learnt the address 203.0.113.7", fix: FIX },
      { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN address 192.168.1.20", fix: ADDRESS_FIX },
    ]);
  });
});

describe("the module's exports", () => {
  test("does not export WEBRTC_FIX: the findings and stunLookupFix carry its text", () => {
    assert.equal("WEBRTC_FIX" in webrtc, false);
  });
});

/** A STUN Binding request header (RFC 5389 section 6): type 0x0001, `length` bytes of attributes, the magic cookie, a 96-bit transaction ID. */
function bindingRequest(attributes: number[] = []): Uint8Array {
  return Uint8Array.of(0x00, 0x01, 0x00, attributes.length, 0x21, 0x12, 0xa4, 0x42, 0x6a, 0x4f, 0x1e, 0x22, 0x8b, 0x3c, 0x90, 0x05, 0x71, 0xd2, 0xee, 0x13, ...attributes);
}

describe("isStunMessage", () => {
  test("a 20-byte Binding request with the magic cookie is STUN", () => {
    assert.equal(isStunMessage(bindingRequest()), true);
  });

  test("a request with attributes whose length the header gives is STUN (here FINGERPRINT, 8 bytes)", () => {
    assert.equal(isStunMessage(bindingRequest([0x80, 0x28, 0x00, 0x04, 0x5a, 0x1b, 0x2c, 0x3d])), true);
  });

  test("a message lying inside a larger buffer is read at its own offset", () => {
    const pool = new Uint8Array(64).fill(0xff);
    pool.set(bindingRequest(), 13);
    assert.equal(isStunMessage(pool.subarray(13, 33)), true);
    assert.equal(isStunMessage(pool.subarray(12, 32)), false);
  });

  test("another cookie (an RFC 3489 request, or anything else) is not STUN", () => {
    const message = bindingRequest();
    message[7] = 0x43;
    assert.equal(isStunMessage(message), false);
  });

  test("either of the two top bits set is not STUN (RFC 7983 tells RTP/DTLS apart by them)", () => {
    for (const first of [0x40, 0x80, 0xc0]) {
      const message = bindingRequest();
      message[0] = first;
      assert.equal(isStunMessage(message), false, first.toString(16));
    }
  });

  test("a length that is not the rest of the datagram is not STUN", () => {
    const short = bindingRequest([0x80, 0x28, 0x00, 0x04, 0x5a, 0x1b, 0x2c, 0x3d]);
    short[3] = 4;
    assert.equal(isStunMessage(short), false, "says 4, carries 8");
    assert.equal(isStunMessage(Uint8Array.of(...bindingRequest(), 0, 0, 0, 0)), false, "says 0, carries 4");
  });

  test("a length that is not a multiple of 4 is not STUN, even when it matches", () => {
    assert.equal(isStunMessage(bindingRequest([1, 2, 3, 4, 5, 6])), false);
  });

  test("shorter than a STUN header is not STUN", () => {
    assert.equal(isStunMessage(bindingRequest().subarray(0, 19)), false);
    assert.equal(isStunMessage(new Uint8Array(0)), false);
  });
});

describe("udpProbeFindings", () => {
  const listening = { address: "192.168.1.20", port: 40000 };
  const report = { candidates: ["candidate:1 1 udp 1 0a1b2c3d-e4f5.local 51000 typ host"] };
  const TAIL = "UDP does not go through the proxy, so any page can make the browser reveal where it is";

  test("a listener that could not start: one info finding with its problem", () => {
    assert.deepEqual(udpProbeFindings({ problem: "this machine has no network address besides loopback, and browsers leave loopback out of WebRTC" }, report), [
      {
        probe: "webrtc",
        severity: "info",
        detail: "WebRTC's UDP was not watched: this machine has no network address besides loopback, and browsers leave loopback out of WebRTC; the candidates and the STUN name still were",
        fix: null,
      },
    ]);
  });

  test("one STUN request from a named program is a leak naming the sender and its program", () => {
    assert.deepEqual(udpProbeFindings({ listening, arrivals: [{ from: "192.168.1.20:51000", program: "firefox-esr" }], stunCount: 1, otherCount: 0 }, report), [
      {
        probe: "webrtc",
        severity: "leak",
        detail: `WebRTC sent a STUN request over UDP straight to 192.168.1.20:40000 (the page's second STUN server) from 192.168.1.20:51000 (firefox-esr): ${TAIL}`,
        fix: FIX,
      },
    ]);
  });

  test("three STUN requests from two sources, one unnamed, counted in all; a leak even without a report", () => {
    const probe: UdpProbe = { listening, arrivals: [{ from: "192.168.1.20:51000" }, { from: "[2001:db8::1]:51002", program: "chromium" }], stunCount: 3, otherCount: 0 };
    const leak = {
      probe: "webrtc",
      severity: "leak",
      detail: `WebRTC sent 3 STUN requests over UDP straight to 192.168.1.20:40000 (the page's second STUN server) from 192.168.1.20:51000, [2001:db8::1]:51002 (chromium): ${TAIL}`,
      fix: FIX,
    };
    assert.deepEqual(udpProbeFindings(probe, report), [leak]);
    assert.deepEqual(udpProbeFindings(probe, undefined), [leak]);
  });

  test("nothing arrived after the page reported: info that WebRTC did not go around the proxy (IPv6 listener bracketed)", () => {
    assert.deepEqual(udpProbeFindings({ listening, arrivals: [], stunCount: 0, otherCount: 0 }, report), [
      { probe: "webrtc", severity: "info", detail: "No UDP reached 192.168.1.20:40000, the page's second STUN server: WebRTC did not go around the proxy", fix: null },
    ]);
    assert.deepEqual(udpProbeFindings({ listening: { address: "2001:db8::1", port: 40000 }, arrivals: [], stunCount: 0, otherCount: 0 }, { candidates: [] }), [
      { probe: "webrtc", severity: "info", detail: "No UDP reached [2001:db8::1]:40000, the page's second STUN server: WebRTC did not go around the proxy", fix: null },
    ]);
  });

  test("a STUN request from another machine is a leak too, labelled so, never given a local program", () => {
    const findings = udpProbeFindings({ listening, arrivals: [{ from: "192.168.1.50:5353", elsewhere: true }], stunCount: 1, otherCount: 0 }, undefined);
    assert.equal(findings.length, 1);
    assert.equal(findings[0]!.severity, "leak");
    assert.match(findings[0]!.detail, /^WebRTC sent a STUN request over UDP straight to 192\.168\.1\.20:40000 \(the page's second STUN server\) from 192\.168\.1\.50:5353 \(another machine\): /);
  });

  test("the page gathered nothing before its timer fired: no UDP, said with both readings (kept inside the proxy, or no time to try)", () => {
    assert.deepEqual(udpProbeFindings({ listening, arrivals: [], stunCount: 0, otherCount: 0 }, { candidates: [], gathering: "timeout" }), [
      {
        probe: "webrtc",
        severity: "info",
        detail:
          "No UDP reached 192.168.1.20:40000, the page's second STUN server, and WebRTC gathered no candidate within 3 s: it is kept inside the proxy, or had no time to try (a busy machine: open the page again to be sure)",
        fix: null,
      },
    ]);
  });

  test("a timeout after some candidates, or a completed gathering with none, still says no UDP went around the proxy", () => {
    const noUdp = { probe: "webrtc", severity: "info", detail: "No UDP reached 192.168.1.20:40000, the page's second STUN server: WebRTC did not go around the proxy", fix: null };
    const silent: UdpProbe = { listening, arrivals: [], stunCount: 0, otherCount: 0 };
    assert.deepEqual(udpProbeFindings(silent, { ...report, gathering: "timeout" }), [noUdp]);
    assert.deepEqual(udpProbeFindings(silent, { candidates: [], gathering: "complete" }), [noUdp]);
  });

  test("STUN arrivals and other datagrams are reported as ever when the page gathered nothing in time", () => {
    const timedOut: webrtc.WebrtcReport = { candidates: [], gathering: "timeout" };
    assert.deepEqual(udpProbeFindings({ listening, arrivals: [{ from: "192.168.1.20:51000" }], stunCount: 1, otherCount: 1 }, timedOut), [
      {
        probe: "webrtc",
        severity: "leak",
        detail: `WebRTC sent a STUN request over UDP straight to 192.168.1.20:40000 (the page's second STUN server) from 192.168.1.20:51000: ${TAIL}`,
        fix: FIX,
      },
      { probe: "webrtc", severity: "info", detail: "1 UDP datagram that was not STUN arrived at 192.168.1.20:40000; not counted", fix: null },
    ]);
  });

  test("nothing arrived and the page did not report, or WebRTC did not run: silence proves nothing, no finding", () => {
    const silent: UdpProbe = { listening, arrivals: [], stunCount: 0, otherCount: 0 };
    assert.deepEqual(udpProbeFindings(silent, undefined), []);
    assert.deepEqual(udpProbeFindings(silent, { candidates: [], error: "RTCPeerConnection is not available" }), []);
  });

  test("datagrams that were not STUN are counted apart, one or more", () => {
    assert.deepEqual(udpProbeFindings({ listening, arrivals: [], stunCount: 0, otherCount: 1 }, undefined), [
      { probe: "webrtc", severity: "info", detail: "1 UDP datagram that was not STUN arrived at 192.168.1.20:40000; not counted", fix: null },
    ]);
    assert.deepEqual(udpProbeFindings({ listening, arrivals: [{ from: "192.168.1.20:51000" }], stunCount: 1, otherCount: 2 }, report), [
      {
        probe: "webrtc",
        severity: "leak",
        detail: `WebRTC sent a STUN request over UDP straight to 192.168.1.20:40000 (the page's second STUN server) from 192.168.1.20:51000: ${TAIL}`,
        fix: FIX,
      },
      { probe: "webrtc", severity: "info", detail: "2 UDP datagrams that were not STUN arrived at 192.168.1.20:40000; not counted", fix: null },
    ]);
  });
});
