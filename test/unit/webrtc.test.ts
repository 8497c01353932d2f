import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { asWebrtcReport, parseCandidate, stunLookupFix, webrtcFindings } from "../../src/leakcheck/webrtc.ts";

const FIX =
  'in Firefox media.peerconnection.ice.proxy_only_if_behind_proxy = true (or media.peerconnection.enabled = false); ' +
  'in Chromium set the policy "WebRtcIPHandling": "disable_non_proxied_udp" as a managed policy';

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
      { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN address 192.168.1.20", fix: FIX },
    ]);
  });

  test("a server-reflexive candidate is a leak: STUN was answered over UDP around the proxy", () => {
    assert.deepEqual(webrtcFindings({ candidates: ["candidate:2 1 udp 1 203.0.113.7 5000 typ srflx raddr 0.0.0.0 rport 0"] }), [
      { probe: "webrtc", severity: "leak", detail: "WebRTC reached a STUN server around the proxy (UDP from this machine), and learnt the address 203.0.113.7", fix: FIX },
    ]);
  });

  test("host candidates with LAN or public addresses are exposure; loopback is ignored", () => {
    assert.deepEqual(webrtcFindings({ candidates: ["candidate:1 1 udp 1 192.168.1.20 1 typ host", "candidate:1 1 udp 1 fd00::5 1 typ host", "candidate:1 1 udp 1 127.0.0.1 1 typ host"] }), [
      { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN addresses 192.168.1.20, fd00::5", fix: FIX },
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
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN addresses 192.168.1.20, fe80::1", fix: FIX },
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's public addresses 198.51.100.4, 2001:db8::7", fix: FIX },
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
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's LAN address 10.0.0.5", fix: FIX },
        { probe: "webrtc", severity: "exposure", detail: "WebRTC shows pages this machine's public address 198.51.100.4", fix: FIX },
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
});
