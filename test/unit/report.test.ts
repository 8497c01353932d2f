import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { findingJsonLine, renderHuman, renderJsonLines, verdictJsonLine } from "../../src/leakcheck/report.ts";
import { decideVerdict, type LeakcheckResult } from "../../src/leakcheck/verdict.ts";

const PROXY = { host: "127.0.0.1", port: 9001 };

/** Chromium on socks4:// with one WebRTC candidate and Chromium's probe socket: a small LEAK. */
const LEAK_RESULT: LeakcheckResult = decideVerdict({
  proxy: PROXY,
  proxyCheck: { kind: "ours" },
  canary: { arrivedByName: false, waitedSeconds: 60 },
  ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 4, program: "chromium" }],
  findings: [
    { probe: "resolver", severity: "info", detail: "suspect, not counted as a lookup: chromium holds UDP 192.0.2.2:59890 -> 8.8.8.8:53", fix: null },
    { probe: "webrtc", severity: "exposure", detail: "a host candidate carries 192.168.1.20", fix: "set the policy WebRtcIPHandling = disable_non_proxied_udp" },
  ],
});

describe("renderHuman", () => {
  test("prints the table: probe, result and detail, each fix on the line below, leaks first and the verdict last", () => {
    assert.equal(
      renderHuman(LEAK_RESULT),
      [
        "PROBE     RESULT    DETAIL",
        "canary    leak      Nothing arrived through the proxy for the canary within 60 s: the browser resolved its name locally (and found nothing) or does not use the proxy",
        "                    fix: use SOCKS v5 at 127.0.0.1:9001 in the browser and make the app send names: Firefox: network.proxy.socks5_remote_dns = true; Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
        "canary    leak      1 SOCKS4 request from chromium carried an IP address instead of a name (first: 93.184.216.34:443) and was refused: the client resolved those names locally",
        "                    fix: start Chromium with --proxy-server=socks5://127.0.0.1:9001 (socks5, not socks4)",
        "webrtc    exposure  a host candidate carries 192.168.1.20",
        "                    fix: set the policy WebRtcIPHandling = disable_non_proxied_udp",
        "resolver  info      suspect, not counted as a lookup: chromium holds UDP 192.0.2.2:59890 -> 8.8.8.8:53",
        "verdict   LEAK      2 leaks (canary): apply the fixes above and run leakcheck again (exit 1)",
        "",
      ].join("\n"),
    );
  });

  test("a PASS with a single finding keeps the columns as wide as their headings and the verdict word", () => {
    const result = decideVerdict({ proxy: PROXY, proxyCheck: { kind: "ours" }, canary: { arrivedByName: true, waitedSeconds: 3 }, ipLiteralRequests: [], findings: [] });
    assert.equal(
      renderHuman(result),
      "PROBE    RESULT  DETAIL\ncanary   info    The canary arrived through the proxy as a name\nverdict  PASS    The canary arrived through the proxy as a name and nothing leaked (exit 0)\n",
    );
  });

  test("UNTESTED with no findings prints the heading and the verdict only", () => {
    const result = decideVerdict({
      proxy: PROXY,
      proxyCheck: { kind: "absent", found: "nothing listens on 127.0.0.1:9001" },
      canary: { arrivedByName: false, waitedSeconds: 0 },
      ipLiteralRequests: [],
      findings: [],
    });
    assert.equal(
      renderHuman(result),
      "PROBE    RESULT    DETAIL\nverdict  UNTESTED  Could not test: nothing listens on 127.0.0.1:9001; start the tunnel first (safetunnel -D 9001 user@host) (exit 2)\n",
    );
  });

  test("control characters and newlines in a program name or a pref value are shown escaped, never sent to the terminal", () => {
    const result: LeakcheckResult = {
      verdict: "PASS",
      exitCode: 0,
      findings: [{ probe: "resolver", severity: "info", detail: "evil\x1b[2J\nverdict PASS holds a socket", fix: "set x = \x07" }],
      summary: "ok",
    };
    assert.equal(
      renderHuman(result),
      "PROBE     RESULT  DETAIL\nresolver  info    evil\\x1b[2J\\nverdict PASS holds a socket\n                  fix: set x = \\x07\nverdict   PASS    ok (exit 0)\n",
    );
  });
});

describe("renderJsonLines", () => {
  test("every line parses; a line per finding in report order, and the last is the verdict with all findings", () => {
    const text = renderJsonLines(LEAK_RESULT);
    assert.equal(text.endsWith("\n"), true);
    const lines = text.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.length, 5);
    assert.deepEqual(
      lines.slice(0, 4).map((line) => [line.type, line.probe, line.severity]),
      [
        ["finding", "canary", "leak"],
        ["finding", "canary", "leak"],
        ["finding", "webrtc", "exposure"],
        ["finding", "resolver", "info"],
      ],
    );
    const verdict = lines.at(-1)!;
    assert.deepEqual(Object.keys(verdict), ["type", "verdict", "exitCode", "summary", "findings"]);
    assert.deepEqual([verdict.type, verdict.verdict, verdict.exitCode, verdict.summary], ["verdict", "LEAK", 1, "2 leaks (canary): apply the fixes above and run leakcheck again"]);
    assert.deepEqual(verdict.findings, LEAK_RESULT.findings);
  });

  test("each finding carries exactly probe, severity, detail and fix (null when nothing needs changing)", () => {
    const extra = { probe: "resolver", severity: "info", detail: "curl holds a socket", fix: null, program: "curl" } as const;
    assert.equal(findingJsonLine(extra), '{"type":"finding","probe":"resolver","severity":"info","detail":"curl holds a socket","fix":null}');
    assert.equal(
      verdictJsonLine({ verdict: "PASS", exitCode: 0, findings: [extra], summary: "ok" }),
      '{"type":"verdict","verdict":"PASS","exitCode":0,"summary":"ok","findings":[{"probe":"resolver","severity":"info","detail":"curl holds a socket","fix":null}]}',
    );
  });

  test("a result without findings is the verdict line alone", () => {
    assert.equal(renderJsonLines({ verdict: "UNTESTED", exitCode: 2, findings: [], summary: "could not test" }), '{"type":"verdict","verdict":"UNTESTED","exitCode":2,"summary":"could not test","findings":[]}\n');
  });
});
